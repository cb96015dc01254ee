-- expect: constraint-violated:error:30
ALTER TABLE products ADD COLUMN badge text DEFAULT 'new';
ALTER TABLE products ADD CONSTRAINT ck_products_badge_short CHECK (length(badge) <= 2);
