-- expect: policy-widened:error
DROP POLICY cart_items_app_select ON cart_items;
