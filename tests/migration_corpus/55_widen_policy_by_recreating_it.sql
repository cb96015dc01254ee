-- expect: policy-widened:error
DROP POLICY cart_items_app_select ON cart_items;
CREATE POLICY cart_items_app_select ON cart_items FOR SELECT TO afilo_app USING (true);
