-- expect: constraint-scan:warning:30
ALTER TABLE products ADD CONSTRAINT ck_products_description_length CHECK (length(description) < 100000);
