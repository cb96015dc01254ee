-- expect: blocking-index-build:error, constraint-violated:error
CREATE UNIQUE INDEX uq_products_status ON products (status);
