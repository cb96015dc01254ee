-- expect: table-rewrite:error:30
ALTER TABLE products ADD COLUMN number integer GENERATED ALWAYS AS IDENTITY;
