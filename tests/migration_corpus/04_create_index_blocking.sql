-- expect: blocking-index-build:error
CREATE INDEX ix_products_title ON products (title);
