-- expect: constraint-violated:error:30
ALTER TABLE products ADD CONSTRAINT ck_products_title_short CHECK (length(title) < 3);
