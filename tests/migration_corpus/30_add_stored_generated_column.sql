-- expect: table-rewrite:error
ALTER TABLE products ADD COLUMN title_length integer GENERATED ALWAYS AS (length(title)) STORED;
