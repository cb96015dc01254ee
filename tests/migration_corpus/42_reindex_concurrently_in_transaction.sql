-- expect: not-transactional:error
REINDEX TABLE CONCURRENTLY products;
