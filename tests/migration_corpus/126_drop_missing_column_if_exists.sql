-- expect:
ALTER TABLE products DROP COLUMN IF EXISTS legacy_code;
