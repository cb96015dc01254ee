-- expect: not-transactional:error
ALTER SYSTEM SET work_mem = '64MB';
