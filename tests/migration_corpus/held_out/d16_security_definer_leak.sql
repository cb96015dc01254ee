-- expect: security-definer-search-path:error
CREATE FUNCTION leak_products() RETURNS SETOF products LANGUAGE sql SECURITY DEFINER
    AS 'SELECT * FROM products';
