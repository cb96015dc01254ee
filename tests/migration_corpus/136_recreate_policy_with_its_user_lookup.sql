-- expect:
DROP POLICY cart_items_app_select ON cart_items;
CREATE POLICY cart_items_app_select ON cart_items AS PERMISSIVE FOR SELECT TO afilo_app
    USING (user_id = (SELECT id FROM public.user_profiles WHERE clerk_user_id = (SELECT current_clerk_user_id())));
