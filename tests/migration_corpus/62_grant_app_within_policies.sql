-- expect:
GRANT SELECT ON products TO afilo_app;
GRANT UPDATE (display_name) ON user_profiles TO afilo_app;
