-- expect: table-rewrite:error:30
ALTER TABLE products ADD COLUMN legacy_id uuid DEFAULT gen_random_uuid();
