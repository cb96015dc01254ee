-- expect: access-revoked:error
REVOKE DELETE ON cart_items FROM afilo_app;
