-- in-transaction: no
-- expect: blocking-maintenance:error:30
VACUUM FULL products;
