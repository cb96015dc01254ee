-- expect: role-privileges:error
CREATE ROLE reporting NOLOGIN BYPASSRLS;
