-- expect: role-privileges:error
ALTER TABLE products OWNER TO afilo_app;
