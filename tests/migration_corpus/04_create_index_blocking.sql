-- expect: blocking-index-build:error:30
CREATE INDEX ix_products_title ON products (title);
