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

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import TracebackType
from typing import Any, Final, NamedTuple

import psycopg
from sqlalchemy import Connection, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session

from afilo_db.db.hot import Alone, Read, Statement
from afilo_db.errors import ForbiddenError, ValidationError
from afilo_db.security.policies import CLERK_USER_ID_SETTING, CURRENT_USER
from afilo_db.security.roles import APP_ROLE, SERVICE_ROLE
from afilo_db.validation.checks import clerk_user_id_problem

# One round trip: the role, then the user. Returns what was there before, to restore on exit.
SET_CONTEXT_SQL: Final = f"""
SELECT current_setting('role'), coalesce(current_setting('{CLERK_USER_ID_SETTING}', true), ''),
       set_config('role', :role, true), set_config('{CLERK_USER_ID_SETTING}', :clerk_user_id, true)
"""
_SET_CONTEXT = (
    f"SELECT set_config('role', {{role}}, true),"
    f" set_config('{CLERK_USER_ID_SETTING}', {{clerk_user_id}}, true)"
)
RESTORE_CONTEXT_SQL: Final = _SET_CONTEXT.format(role=":role", clerk_user_id=":clerk_user_id")
# The same, in psycopg's style, for hot reads that send it with their query (afilo_db.db.hot).
USER_CONTEXT_SQL: Final = _SET_CONTEXT.format(role="%(role)s", clerk_user_id="%(clerk_user_id)s")

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
            raise context_forbidden(role) from error
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


@dataclass(slots=True)
class UserRead:
    """One read as one user, in the two shapes `afilo_db.db.hot.fetch` takes."""

    before: list[tuple[str, dict[str, str]]]
    """The context (`user_context`): sent first, in the same round trip, in an open transaction."""
    query: str
    parameters: dict[str, Any]
    alone: Alone
    """The context and the query as one statement, for a read that runs on its own (shorter on
    the application role's login: see `user_read_sql`)."""
    alone_parameters: dict[str, Any]
    """The parameters of `alone`: the query's and the user's (a read's function takes them)."""

    def with_planned(self, planned: Statement | None) -> Read:
        """The read for `afilo_db.db.hot.fetch`, with its server-side function's call."""
        return Read(self.query, self.parameters, self.before, self.alone, planned)


@dataclass(frozen=True)
class OwnRows:
    """Where a user-scoped read finds the user's rows: the table whose policy limits them to
    the user, and the column (as the query names it) that holds the user's profile id."""

    table: str
    column: str

    def filtered_by(self, template: str, user: str) -> str:
        """`template` with its `{own_rows}` written as `column = user` (no row-level security
        needed: the caller picks the user)."""
        return template.format(own_rows=f"{self.column} = {user}")


class UserReadSql(NamedTuple):
    in_transaction: str
    """The query, for a transaction whose context is set."""
    in_transaction_as_app: str
    """`in_transaction` for the application role: the user's rows left to its policies."""
    alone: str
    """The context and the query as one statement, with %(clerk_user_id)s."""
    alone_as_app: str
    """`alone` for the application role's login: the user's rows left to its policies."""


@lru_cache(maxsize=64)
def user_read_sql(template: str, rows: OwnRows) -> UserReadSql:
    """`template` as a read of the user's own rows, in its four forms."""
    # The user's rows by the lookup the policies hold, on every login: an index condition. The
    # owner and the service role, which see every row, have only this one. A condition that
    # depends on the login (the policy in force, else the user's id) cannot be an index
    # condition: those logins would read the whole table.
    own_rows = f"{rows.column} = {CURRENT_USER}"
    in_transaction = template.format(own_rows=own_rows)
    alone, alone_as_app = (
        # The lateral reference to `context` makes PostgreSQL compute the context first and only
        # then run the query, whose policies then see it; were that order ever broken, the
        # policies would find no user and show no rows (they fail closed).
        "SELECT own.* FROM"
        f" (SELECT set_config('{CLERK_USER_ID_SETTING}', %(clerk_user_id)s, true){guard})"
        f" AS context (clerk_user_id) CROSS JOIN LATERAL"
        f" ({template.format(own_rows=f'context.clerk_user_id IS NOT NULL{condition}')} OFFSET 0)"
        " AS own"
        for condition, guard in (
            (f" AND {own_rows}", ""),
            # The application role's policy on `rows.table` is this very condition: repeated,
            # it was a second lookup and index condition on every user read (bench/hot_paths.py,
            # the user reads). The guard keeps it true to its name wherever the login is not
            # the role (a pooler that logs in as another): no context, no rows.
            ("", f" WHERE current_user = '{APP_ROLE}'"),
        )
    )
    return UserReadSql(in_transaction, template.format(own_rows="true"), alone, alone_as_app)


def read_as_user(
    template: str,
    rows: OwnRows,
    clerk_user_id: str,
    parameters: Mapping[str, Any] | None = None,
) -> UserRead:
    """A read as the user with this Clerk id, from a query (psycopg placeholders) that names the
    condition on the user's rows as `{own_rows}` and ends with ORDER BY or LIMIT, or with nothing.

    In an open transaction the context is sent first and stays, as `as_user` does. On its own
    the context is computed inside the query's own statement (`set_config(..., true)` lasts as
    long as that statement's implicit transaction): one statement, one result. The role cannot
    be switched in the middle of a statement: that shape relies on the login being the
    application role, as the application's URL is (on another login the rows are still the
    user's, but seen with that login's rights). Raises ValidationError for a malformed id.
    """
    context = user_context(clerk_user_id)
    sql = user_read_sql(template, rows)
    values = dict(parameters or {})
    alone_values = {**values, **context[1]}
    alone = Alone((sql.alone, alone_values), APP_ROLE, (sql.alone_as_app, alone_values))
    return UserRead([context], sql.in_transaction, values, alone, alone_values)


def user_context(clerk_user_id: str) -> tuple[str, dict[str, str]]:
    """`as_user`'s context as a statement for `afilo_db.db.hot` to send before a query, in the
    same round trip: it holds for the transaction the query runs in, and ends with it.
    Raises ValidationError (field `clerk_user_id`) for a malformed id."""
    _check_clerk_user_id(clerk_user_id)
    return USER_CONTEXT_SQL, {"role": APP_ROLE, "clerk_user_id": clerk_user_id}


def context_forbidden(role: str) -> ForbiddenError:
    """The error for a login that may not act as `role` (PostgreSQL refused the switch)."""
    return ForbiddenError(
        f"this connection may not act as {role}: the service context needs the service "
        "role's own login (SERVICE_DATABASE_URL, `afilo-db db url --service`), and user "
        "contexts the application role's"
    )


# `service_context` as a statement for a caller that sends it with others in one round trip
# (a pipeline): it holds for the rest of the transaction. On a login that may not act as the
# service role it fails with InsufficientPrivilege: raise `context_forbidden(SERVICE_ROLE)`.
SERVICE_CONTEXT: Final = (USER_CONTEXT_SQL, {"role": SERVICE_ROLE, "clerk_user_id": ""})


def service_context(executor: Executor) -> TransactionContext:
    """Trusted back-end work (webhook handlers, admin jobs): every row of the tables the service
    role is granted, and no user set, for the rest of the transaction or the `with` block.
    Only on a connection that logged in as the service role (SERVICE_DATABASE_URL) or the owner;
    on the application role's, raises ForbiddenError (and the transaction is aborted)."""
    return TransactionContext(executor, SERVICE_ROLE, "")
