-- expect: policy-widened:error
ALTER POLICY downloads_app_select ON downloads USING (true);
