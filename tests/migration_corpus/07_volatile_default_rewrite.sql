-- expect: table-rewrite:error
ALTER TABLE products ADD COLUMN legacy_id uuid DEFAULT gen_random_uuid();
