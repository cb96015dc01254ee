-- expect: unparsable:error
ALTER TABLE products ADD COLUMN;
