"""The database roles afilo-db relies on, as SQL that both the migration and `afilo-db db roles` run.

- the **owner** runs migrations and operator commands and owns every object. It must bypass row
  level security (a superuser, as on the embedded server, or a role with BYPASSRLS, as Neon's
  project owner): with FORCE ROW LEVEL SECURITY an owner that does not is held to the policies,
  and no policy names it.
- `afilo_app` is what the application connects as (DATABASE_URL): a login role that owns nothing,
  holds only the grants the policies in `afilo_db.security.policies` give it, and cannot bypass
  them.
- `afilo_service` is trusted back-end work (webhook handlers, admin jobs): a login of its own
  (SERVICE_DATABASE_URL), held to the service policies. Nobody else is a member of it: the
  application role cannot switch to it by any SET ROLE or set_config form, so a compromised
  application, or a session setting left behind a transaction-mode pooler, cannot reach it.

Roles belong to the whole cluster, not to one database: the migration creates them when the
connected role may (`CREATEROLE`), and a downgrade leaves them in place for the other databases.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg
from psycopg import sql

from afilo_db.db.embedded import APPLICATION_ROLE, SERVICE_LOGIN_ROLE

APP_ROLE: Final = APPLICATION_ROLE
SERVICE_ROLE: Final = SERVICE_LOGIN_ROLE

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
  -- LOGIN without a password: nobody can log in until `afilo-db up` or `db roles` sets one.
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{SERVICE_ROLE}') THEN
    CREATE ROLE {SERVICE_ROLE} LOGIN {_RESTRICTED};
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
    CREATE ROLE {APP_ROLE} LOGIN {_RESTRICTED};
  END IF;
  ALTER ROLE {SERVICE_ROLE} LOGIN;
  -- Before 0004_billing the application role was a member, to switch for one transaction.
  IF EXISTS (SELECT FROM pg_auth_members
             WHERE roleid = '{SERVICE_ROLE}'::regrole AND member = '{APP_ROLE}'::regrole) THEN
    REVOKE {SERVICE_ROLE} FROM {APP_ROLE} CASCADE;
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
  IF pg_has_role('{APP_ROLE}', '{SERVICE_ROLE}', 'MEMBER') THEN
    RAISE EXCEPTION '{APP_ROLE} is a member of {SERVICE_ROLE}: it could switch to the service role';
  END IF;
  unsafe := ARRAY(
    SELECT name FROM unnest(ARRAY['{APP_ROLE}', '{SERVICE_ROLE}']) AS name
    WHERE pg_has_role(name, current_user, 'MEMBER'));
  IF cardinality(unsafe) > 0 THEN
    RAISE EXCEPTION 'roles % are members of the owner %', unsafe, current_user;
  END IF;
END
$verify$
"""


LOGIN_ROLES: Final = (APP_ROLE, SERVICE_ROLE)


def login_password_sql(
    connection: psycopg.Connection[Any], password: str, role: str = APP_ROLE
) -> sql.Composed:
    """`ALTER ROLE <role> LOGIN PASSWORD ...` with a SCRAM verifier, never the password itself,
    so that neither the server log nor a SQL editor's history holds it."""
    verifier = connection.pgconn.encrypt_password(
        password.encode(), role.encode(), b"scram-sha-256"
    )
    return sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
        sql.Identifier(role), sql.Literal(verifier.decode())
    )


def role_exists(connection: psycopg.Connection[Any], role: str = APP_ROLE) -> bool:
    row = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    return row is not None


def owner_bypasses_rls(connection: psycopg.Connection[Any]) -> bool:
    row = connection.execute(
        "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    return bool(row and row[0])
