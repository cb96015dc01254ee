"""The application role's login: set up on the embedded server, printed as SQL for a hosted one."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from afilo_db.db.databases import admin_connection
from afilo_db.db.target import DatabaseTarget
from afilo_db.errors import OperationError
from afilo_db.security import roles
from afilo_db.security.roles import APP_ROLE


def app_url(target: DatabaseTarget) -> str:
    """The URL the application connects with: DATABASE_URL as configured, or, on the embedded
    server, the application role with the password generated for it (set on the role here)."""
    if target.embedded is None:
        return target.app_url
    password = target.embedded.role_password(APP_ROLE)
    with admin_connection(target.direct_url) as connection:
        if not roles.app_role_exists(connection):
            raise OperationError(
                f"the role {APP_ROLE} does not exist yet: run `afilo-db up` "
                "(or `afilo-db migrate deploy`) first"
            )
        connection.execute(roles.login_password_sql(connection, password))
    return target.app_url


@dataclass(frozen=True)
class RolesScript:
    sql: str
    """Idempotent SQL that creates the roles and gives the application role its password."""
    new_password: str | None
    """A password generated for this script (hosted databases); None when the embedded server
    keeps it (`afilo-db db url --app` shows the URL)."""
    owner: str
    owner_bypasses_rls: bool


def roles_script(target: DatabaseTarget) -> RolesScript:
    """What an operator runs, as a role that may create roles, where migrations cannot create
    the roles themselves. Only a SCRAM verifier of the password goes into the SQL."""
    new_password: str | None = None
    if target.embedded is None:
        password = new_password = secrets.token_urlsafe(24)
    else:
        password = target.embedded.role_password(APP_ROLE)
    with admin_connection(target.direct_url) as connection:
        owner_row = connection.execute("SELECT current_user").fetchone()
        owner = str(owner_row[0]) if owner_row else ""
        statements = [
            roles.CREATE_ROLES_SQL.strip(),
            roles.login_password_sql(connection, password).as_string(connection),
        ]
        bypasses = roles.owner_bypasses_rls(connection)
    header = (
        "-- afilo-db roles: run as a role that may create roles (CREATEROLE); it is safe to run"
        "\n-- again. Then `afilo-db migrate deploy` (as the owner) creates the grants and policies."
    )
    body = "\n\n".join(statement + ";" for statement in statements)
    return RolesScript(f"{header}\n{body}\n", new_password, owner, bypasses)
