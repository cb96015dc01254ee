-- expect: constraint-violated:error
ALTER TABLE products ALTER COLUMN included_in_tier SET NOT NULL;
