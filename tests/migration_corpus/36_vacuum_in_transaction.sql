-- expect: not-transactional:error
VACUUM ANALYZE products;
