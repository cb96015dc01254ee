"""Who the current transaction acts for: a user (`as_user`) or the back end (`service_context`).

Both set transaction-local settings with `set_config(..., true)`, never session ones: behind a
pooler in transaction mode the next transaction on the same server connection may belong to
somebody else, and PostgreSQL reverts a local setting at COMMIT or ROLLBACK. Each context also
switches the role for the transaction (`set_config('role', ...)`, as `SET LOCAL ROLE` does), so
that it holds whatever the connection logged in as: `as_user` on the application role's login,
`service_context` on the service role's own login (SERVICE_DATABASE_URL), either on an owner
connection in tests and operator tools. The application role cannot become the service role:
`service_context` on its connection raises ForbiddenError.

The caller owns the transaction; these never commit.
"""

from __future__ import annotations

from types import TracebackType
from typing import Final

import psycopg
from sqlalchemy import Connection, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session

from afilo_db.errors import ForbiddenError, ValidationError
from afilo_db.security.policies import CLERK_USER_ID_SETTING
from afilo_db.security.roles import APP_ROLE, SERVICE_ROLE
from afilo_db.validation.checks import clerk_user_id_problem

# One round trip: the role, then the user. Returns what was there before, to restore on exit.
SET_CONTEXT_SQL: Final = f"""
SELECT current_setting('role'), coalesce(current_setting('{CLERK_USER_ID_SETTING}', true), ''),
       set_config('role', :role, true), set_config('{CLERK_USER_ID_SETTING}', :clerk_user_id, true)
"""
RESTORE_CONTEXT_SQL: Final = f"""
SELECT set_config('role', :role, true), set_config('{CLERK_USER_ID_SETTING}', :clerk_user_id, true)
"""

Executor = Session | Connection


def _check_clerk_user_id(clerk_user_id: str) -> None:
    problem = clerk_user_id_problem(clerk_user_id)
    if problem is not None:
        raise ValidationError({"clerk_user_id": problem})


def _transaction_usable(executor: Executor) -> bool:
    connection = executor.connection() if isinstance(executor, Session) else executor
    dbapi = connection.connection.dbapi_connection
    if not isinstance(dbapi, psycopg.Connection):
        return False
    return dbapi.info.transaction_status != psycopg.pq.TransactionStatus.INERROR


class TransactionContext:
    """Set when created, until the transaction ends; used as a `with` block, only until the
    block ends (the previous context is put back, also when the block raises)."""

    def __init__(self, executor: Executor, role: str, clerk_user_id: str) -> None:
        self._executor = executor
        try:
            row = executor.execute(
                text(SET_CONTEXT_SQL), {"role": role, "clerk_user_id": clerk_user_id}
            ).one()
        except ProgrammingError as error:
            if not isinstance(error.orig, psycopg.errors.InsufficientPrivilege):
                raise
            raise ForbiddenError(
                f"this connection may not act as {role}: the service context needs the service "
                "role's own login (SERVICE_DATABASE_URL, `afilo-db db url --service`), and user "
                "contexts the application role's"
            ) from error
        self._previous = {"role": row[0], "clerk_user_id": row[1]}

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # An error may have aborted the transaction: its end reverts the settings anyway.
        if exc_type is None or _transaction_usable(self._executor):
            self._executor.execute(text(RESTORE_CONTEXT_SQL), self._previous)


def as_user(executor: Executor, clerk_user_id: str) -> TransactionContext:
    """Act for the user with this Clerk id for the rest of the transaction, or, written as
    `with as_user(session, id):`, until the block ends. One statement; the block's end is one more.

    Policies then show and accept only that user's rows. An unknown id reaches nothing.
    Raises ValidationError (field `clerk_user_id`) for a malformed id, before running anything.
    """
    _check_clerk_user_id(clerk_user_id)
    return TransactionContext(executor, APP_ROLE, clerk_user_id)


def service_context(executor: Executor) -> TransactionContext:
    """Trusted back-end work (webhook handlers, admin jobs): every row of the tables the service
    role is granted, and no user set, for the rest of the transaction or the `with` block.
    Only on a connection that logged in as the service role (SERVICE_DATABASE_URL) or the owner;
    on the application role's, raises ForbiddenError (and the transaction is aborted)."""
    return TransactionContext(executor, SERVICE_ROLE, "")
