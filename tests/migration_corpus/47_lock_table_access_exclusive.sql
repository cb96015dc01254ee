-- expect: explicit-lock:error:30
LOCK TABLE products IN ACCESS EXCLUSIVE MODE;
UPDATE products SET updated_at = now() WHERE handle = 'no-such-product';
