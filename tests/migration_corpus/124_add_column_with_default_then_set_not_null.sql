-- expect: set-not-null-scan:warning:30
ALTER TABLE products ADD COLUMN rank integer DEFAULT 0;
ALTER TABLE products ALTER COLUMN rank SET NOT NULL;
