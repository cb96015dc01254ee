-- expect: rls-weakened:error
ALTER TABLE cart_items DISABLE ROW LEVEL SECURITY;
