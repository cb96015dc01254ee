-- expect: breaking-change:error
ALTER TABLE products RENAME COLUMN title TO name;
