-- expect:
REVOKE DELETE ON cart_items FROM afilo_app;
