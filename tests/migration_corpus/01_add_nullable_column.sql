-- expect:
ALTER TABLE products ADD COLUMN subtitle text;
