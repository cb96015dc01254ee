-- expect: table-rewrite:error:30
ALTER TABLE products ADD COLUMN title_length integer GENERATED ALWAYS AS (length(title)) STORED;
