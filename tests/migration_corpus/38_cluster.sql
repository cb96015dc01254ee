-- expect: blocking-maintenance:error:30
CLUSTER products USING pk_products;
