-- expect: breaking-change:error
ALTER TABLE product_collections RENAME TO collections;
