-- expect: constraint-violated:error:8
ALTER TABLE products ALTER COLUMN included_in_tier SET NOT NULL;
