-- expect:
DELETE FROM products WHERE handle = 'no-such-product';
