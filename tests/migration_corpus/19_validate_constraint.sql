-- expect:
ALTER TABLE products VALIDATE CONSTRAINT ck_products_title_format;
