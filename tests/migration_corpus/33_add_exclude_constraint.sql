-- expect: blocking-index-build:error:30
ALTER TABLE products ADD CONSTRAINT ex_products_handle EXCLUDE USING gist (handle WITH =);
