-- expect: rls-weakened:error
ALTER TABLE downloads NO FORCE ROW LEVEL SECURITY;
