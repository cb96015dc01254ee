-- expect: blocking-index-build:error
ALTER TABLE products ADD CONSTRAINT uq_products_title UNIQUE (title);
