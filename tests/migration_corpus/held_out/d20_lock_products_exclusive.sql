-- expect: explicit-lock:error:30
LOCK TABLE products IN EXCLUSIVE MODE;
