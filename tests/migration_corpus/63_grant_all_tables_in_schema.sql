-- expect: grant-widened:error
GRANT SELECT ON ALL TABLES IN SCHEMA public TO afilo_app;
