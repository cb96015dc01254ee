-- expect:
DROP POLICY purchases_app_select ON purchases;
CREATE POLICY purchases_app_select ON purchases AS PERMISSIVE FOR SELECT TO afilo_app
    USING (user_id = (SELECT current_user_profile_id()));
