"""The login roles' passwords: set up on the embedded server, printed as SQL for a hosted one."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from afilo_db.db.databases import admin_connection
from afilo_db.db.target import DatabaseTarget
from afilo_db.errors import OperationError
from afilo_db.security import roles
from afilo_db.security.roles import LOGIN_ROLES, SERVICE_ROLE


def _set_embedded_passwords(target: DatabaseTarget) -> None:
    assert target.embedded is not None
    with admin_connection(target.direct_url) as connection:
        for role in LOGIN_ROLES:
            if not roles.role_exists(connection, role):
                raise OperationError(
                    f"the role {role} does not exist yet: run `afilo-db up` "
                    "(or `afilo-db migrate deploy`) first"
                )
            password = target.embedded.role_password(role)
            connection.execute(roles.login_password_sql(connection, password, role))


def app_url(target: DatabaseTarget) -> str:
    """The URL the application connects with: DATABASE_URL as configured, or, on the embedded
    server, the application role with the password generated for it (the passwords of both
    login roles are set here)."""
    if target.embedded is not None:
        _set_embedded_passwords(target)
    return target.app_url


def service_url(target: DatabaseTarget) -> str:
    """The URL trusted back-end work (webhook handlers, admin jobs) connects with, as the
    service role: SERVICE_DATABASE_URL as configured, or the embedded server's service login."""
    if target.embedded is not None:
        _set_embedded_passwords(target)
    if target.service_url is None:
        raise OperationError(
            f"SERVICE_DATABASE_URL is not set: give the {SERVICE_ROLE} role a password "
            "(`afilo-db db roles`) and set SERVICE_DATABASE_URL to its URL"
        )
    return target.service_url


@dataclass(frozen=True)
class RolesScript:
    sql: str
    """Idempotent SQL that creates the roles and gives the login roles their passwords."""
    new_passwords: dict[str, str]
    """Passwords generated for this script (hosted databases), by role; empty when the embedded
    server keeps them (`afilo-db db url --app` / `--service` show the URLs)."""
    owner: str
    owner_bypasses_rls: bool


def roles_script(target: DatabaseTarget) -> RolesScript:
    """What an operator runs, as a role that may create roles, where migrations cannot create
    the roles themselves. Only SCRAM verifiers of the passwords go into the SQL."""
    new_passwords: dict[str, str] = {}
    passwords: dict[str, str] = {}
    for role in LOGIN_ROLES:
        if target.embedded is None:
            passwords[role] = new_passwords[role] = secrets.token_urlsafe(24)
        else:
            passwords[role] = target.embedded.role_password(role)
    with admin_connection(target.direct_url) as connection:
        owner_row = connection.execute("SELECT current_user").fetchone()
        owner = str(owner_row[0]) if owner_row else ""
        statements = [
            roles.CREATE_ROLES_SQL.strip(),
            *(
                roles.login_password_sql(connection, passwords[role], role).as_string(connection)
                for role in LOGIN_ROLES
            ),
        ]
        bypasses = roles.owner_bypasses_rls(connection)
    header = (
        "-- afilo-db roles: run as a role that may create roles (CREATEROLE); it is safe to run"
        "\n-- again. Then `afilo-db migrate deploy` (as the owner) creates the grants and policies."
    )
    body = "\n\n".join(statement + ";" for statement in statements)
    return RolesScript(f"{header}\n{body}\n", new_passwords, owner, bypasses)
