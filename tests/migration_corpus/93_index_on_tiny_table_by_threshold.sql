-- tiny-rows: 1000
-- expect:
CREATE INDEX ix_products_title ON products (title);
