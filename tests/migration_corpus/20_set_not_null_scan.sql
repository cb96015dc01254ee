-- expect: set-not-null-scan:warning
ALTER TABLE products ALTER COLUMN description SET NOT NULL;
