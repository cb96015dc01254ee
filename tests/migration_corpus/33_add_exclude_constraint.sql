-- expect: blocking-index-build:error
ALTER TABLE products ADD CONSTRAINT ex_products_handle EXCLUDE USING gist (handle WITH =);
