-- in-transaction: no
-- expect:
CREATE INDEX CONCURRENTLY ix_products_title ON products (title);
