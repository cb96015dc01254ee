"""The database roles afilo-db relies on, as SQL that both the migration and `afilo-db db roles` run.

- the **owner** runs migrations and operator commands and owns every object. It must bypass row
  level security (a superuser, as on the embedded server, or a role with BYPASSRLS, as Neon's
  project owner): with FORCE ROW LEVEL SECURITY an owner that does not is held to the policies,
  and no policy names it.
- `afilo_app` is what the application connects as (DATABASE_URL): a login role that owns nothing,
  holds only the grants the policies in `afilo_db.security.policies` give it, and cannot bypass
  them.
- `afilo_service` is the service context: trusted back-end work (webhooks, admin jobs) switches to
  it for one transaction with `service_context()`. It cannot log in. `afilo_app` is a member that
  does NOT inherit its rights (NOINHERIT), so the service policies apply only after the explicit
  switch.

Roles belong to the whole cluster, not to one database: the migration creates them when the
connected role may (`CREATEROLE`), and a downgrade leaves them in place for the other databases.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg
from psycopg import sql

from afilo_db.db.embedded import APPLICATION_ROLE

APP_ROLE: Final = APPLICATION_ROLE
SERVICE_ROLE: Final = "afilo_service"

# Each attribute spelled out: a role created by hand must not quietly gain one.
_RESTRICTED = "NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION NOINHERIT"

CREATE_ROLES_SQL: Final = f"""
DO $roles$
BEGIN
  IF NOT (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
    RAISE NOTICE 'role % may not create roles: {APP_ROLE} and {SERVICE_ROLE} must exist already '
      '(`afilo-db db roles` prints the SQL to create them)', current_user;
    RETURN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{SERVICE_ROLE}') THEN
    CREATE ROLE {SERVICE_ROLE} NOLOGIN {_RESTRICTED};
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
    -- LOGIN without a password: nobody can log in until `afilo-db up` or `db roles` sets one.
    CREATE ROLE {APP_ROLE} LOGIN {_RESTRICTED};
  END IF;
  IF NOT pg_has_role('{APP_ROLE}', '{SERVICE_ROLE}', 'MEMBER') THEN
    GRANT {SERVICE_ROLE} TO {APP_ROLE};
  END IF;
END
$roles$
"""

# Refuses to build policies on roles that would make them worthless.
VERIFY_ROLES_SQL: Final = f"""
DO $verify$
DECLARE
  missing text[] := ARRAY(
    SELECT name FROM unnest(ARRAY['{APP_ROLE}', '{SERVICE_ROLE}']) AS name
    WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name));
  unsafe text[];
BEGIN
  IF cardinality(missing) > 0 THEN
    RAISE EXCEPTION 'roles % do not exist and % may not create them', missing, current_user
      USING HINT = 'run `afilo-db db roles`, execute the SQL it prints as a role with CREATEROLE, '
                   'then migrate again';
  END IF;
  unsafe := ARRAY(
    SELECT rolname FROM pg_roles
    WHERE rolname IN ('{APP_ROLE}', '{SERVICE_ROLE}')
      AND (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb OR rolreplication));
  IF cardinality(unsafe) > 0 THEN
    RAISE EXCEPTION 'roles % must be NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION',
      unsafe;
  END IF;
  IF pg_has_role('{APP_ROLE}', '{SERVICE_ROLE}', 'USAGE') THEN
    RAISE EXCEPTION '{APP_ROLE} inherits the rights of {SERVICE_ROLE}: it must be NOINHERIT';
  END IF;
  IF pg_has_role('{APP_ROLE}', current_user, 'MEMBER') THEN
    RAISE EXCEPTION '{APP_ROLE} is a member of the owner %', current_user;
  END IF;
END
$verify$
"""


def login_password_sql(connection: psycopg.Connection[Any], password: str) -> sql.Composed:
    """`ALTER ROLE afilo_app LOGIN PASSWORD ...` with a SCRAM verifier, never the password itself,
    so that neither the server log nor a SQL editor's history holds it."""
    verifier = connection.pgconn.encrypt_password(
        password.encode(), APP_ROLE.encode(), b"scram-sha-256"
    )
    return sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
        sql.Identifier(APP_ROLE), sql.Literal(verifier.decode())
    )


def app_role_exists(connection: psycopg.Connection[Any]) -> bool:
    row = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone()
    return row is not None


def owner_bypasses_rls(connection: psycopg.Connection[Any]) -> bool:
    row = connection.execute(
        "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    return bool(row and row[0])
