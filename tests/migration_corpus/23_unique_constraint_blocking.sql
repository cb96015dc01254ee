-- expect: blocking-index-build:error:30
ALTER TABLE products ADD CONSTRAINT uq_products_title UNIQUE (title);
