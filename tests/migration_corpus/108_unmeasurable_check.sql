-- expect: unmeasured:error
ALTER TABLE products ADD CONSTRAINT ck_products_numeric_title CHECK (title::integer > 0);
