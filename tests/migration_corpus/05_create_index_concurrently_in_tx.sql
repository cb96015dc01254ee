-- expect: not-transactional:error
CREATE INDEX CONCURRENTLY ix_products_title ON products (title);
