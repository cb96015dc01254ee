-- expect: security-definer-search-path:error
CREATE FUNCTION product_count() RETURNS bigint LANGUAGE sql SECURITY DEFINER
AS $$ SELECT count(*) FROM products $$;
