-- expect:
CREATE FUNCTION product_total() RETURNS bigint LANGUAGE sql SECURITY DEFINER
SET search_path FROM CURRENT
AS $$ SELECT count(*) FROM public.products $$;
