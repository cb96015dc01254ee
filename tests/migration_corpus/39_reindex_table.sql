-- expect: blocking-maintenance:error:30
REINDEX TABLE products;
