-- expect: set-not-null-scan:warning:30
UPDATE products SET included_in_tier = 'free' WHERE included_in_tier IS NULL;
ALTER TABLE products ALTER COLUMN included_in_tier SET NOT NULL;
