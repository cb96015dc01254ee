-- expect: access-revoked:error
REVOKE SELECT ON products FROM afilo_app;
