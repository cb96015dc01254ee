-- expect: constraint-scan:warning:30
ALTER TABLE products ADD COLUMN subtitle text;
ALTER TABLE products ADD CONSTRAINT ck_products_subtitle_length CHECK (length(subtitle) <= 200);
