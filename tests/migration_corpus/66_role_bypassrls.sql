-- expect: role-privileges:error
ALTER ROLE afilo_app BYPASSRLS;
