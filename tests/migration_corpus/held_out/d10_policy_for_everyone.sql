-- expect: policy-widened:error
CREATE POLICY products_everyone ON products FOR SELECT TO afilo_app USING (true);
