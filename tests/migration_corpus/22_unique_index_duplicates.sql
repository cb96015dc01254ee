-- expect: blocking-index-build:error:30, constraint-violated:error:30
CREATE UNIQUE INDEX uq_products_status ON products (status);
