-- expect: set-not-null-scan:warning:30
ALTER TABLE products ALTER COLUMN stripe_product_id SET NOT NULL;
