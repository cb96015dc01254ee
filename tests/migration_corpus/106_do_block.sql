-- expect: unclassified:error
DO $$ BEGIN UPDATE products SET title = title; END $$;
