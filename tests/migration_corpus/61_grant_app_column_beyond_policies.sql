-- expect: grant-widened:error
GRANT UPDATE (subscription_tier) ON user_profiles TO afilo_app;
