-- expect: grant-widened:error
GRANT DELETE ON user_subscriptions TO afilo_app;
