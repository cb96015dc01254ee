-- expect: role-privileges:error
GRANT pg_read_all_data TO afilo_app;
