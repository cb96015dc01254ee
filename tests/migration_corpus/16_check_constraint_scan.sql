-- expect: constraint-scan:warning
ALTER TABLE products ADD CONSTRAINT ck_products_description_length CHECK (length(description) < 100000);
