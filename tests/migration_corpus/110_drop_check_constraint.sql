-- expect:
ALTER TABLE products DROP CONSTRAINT ck_products_title_format;
