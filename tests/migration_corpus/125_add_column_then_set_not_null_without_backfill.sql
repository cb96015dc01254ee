-- expect: constraint-violated:error:30
ALTER TABLE products ADD COLUMN rank integer;
ALTER TABLE products ALTER COLUMN rank SET NOT NULL;
