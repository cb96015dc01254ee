-- expect: not-transactional:error
DROP INDEX CONCURRENTLY ix_products_tags;
