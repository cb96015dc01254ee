"""What a hot read sends: the read itself (`Read`), its one-statement forms (`Alone`, `planned`),
and which of them goes where (`AloneStatements`). No I/O here: see `execution`."""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple, TypeAlias, TypeVar

import psycopg

Parameters: TypeAlias = Mapping[str, Any] | Sequence[Any]
Statement: TypeAlias = tuple[str, Parameters]
"""SQL with psycopg placeholders (%s, %(name)s) and its parameters."""
Row: TypeAlias = tuple[Any, ...]
AnyConnection: TypeAlias = psycopg.Connection[Any] | psycopg.AsyncConnection[Any]

T = TypeVar("T")
Steps: TypeAlias = Generator[Any, Any, T]
"""I/O written once for threads and asyncio, as psycopg writes its own: a generator that yields
what each call returned (a value from a Connection, an awaitable from an AsyncConnection) and is
sent its result (`execution.run` sends the value back; `execution.run_async` awaits it first)."""

TIMEOUT_SQL = "SELECT set_config('statement_timeout', %s, true)"


@dataclass(frozen=True, slots=True)
class Alone:
    """A read written as one statement, `before` included, to send instead of the statements
    when the read runs on its own (see `Read`).

    `on_login`: a shorter statement for connections that logged in as `login`, whose policies
    already do part of what `statement` must do on every other login (for example a user read
    that leaves the user's rows to the application role's policy, see
    `afilo_db.security.context.user_read_sql`)."""

    statement: Statement
    login: str | None = None
    on_login: Statement | None = None

    def on(self, connection: AnyConnection) -> Statement:
        # libpq's bytes, not `connection.info.user`: a new ConnectionInfo and a decode each read.
        if self.on_login is not None and connection.pgconn.user == _encoded(self.login):
            return self.on_login
        return self.statement


@lru_cache(maxsize=8)
def _encoded(login: str | None) -> bytes | None:
    return None if login is None else login.encode()


class Read(NamedTuple):
    """One hot read: the rows of `query`, with the `before` statements sent first in the same
    round trip (a NamedTuple: built on every call, and a tuple is the cheapest object to build).
    """

    query: str
    parameters: Parameters
    before: Sequence[Statement] = ()
    alone: Alone | None = None
    """The same read written as one statement, `before` included, to send instead when the read
    runs on its own (no open transaction, no statement timeout to send with it): one statement
    is one result to wait for, where a pipeline of two is two."""
    planned: Statement | None = None
    """The same read, `before` included, as a call of a server-side function (see
    `afilo_db.security.reads`), to send instead when the read runs on its own on a connection
    that prepares nothing (behind PgBouncer before 1.21): the server keeps the function's plan
    for the connection, where the statement would be planned on every call."""

    @property
    def statements(self) -> list[Statement]:
        """What the read sends inside an open transaction: `before`, then the query."""
        return [*self.before, (self.query, self.parameters)]


def prepares_nothing(connection: AnyConnection) -> bool:
    """Whether the connection prepares no statement (behind a transaction-mode pooler that
    cannot keep them): every statement is then planned on every call."""
    return connection.prepare_threshold is None


@dataclass(slots=True)
class AloneStatements:
    """What a read running on its own sends: behind a pooler, the statement timeout first; then
    the read as one statement where it has one and no timeout goes with it, else `before` and
    the query; on a connection that prepares nothing, the call of its server-side function
    (`planned`) where it has one."""

    timeout: list[Statement]
    read: Read

    @classmethod
    def of(cls, read: Read, timeout_ms: int | None) -> AloneStatements:
        """`timeout_ms`: the statement timeout to send first (behind a pooler), if any."""
        return cls([(TIMEOUT_SQL, (str(timeout_ms),))] if timeout_ms else [], read)

    def on(self, connection: AnyConnection) -> list[Statement]:
        read = self.read
        if read.planned is not None and prepares_nothing(connection):
            return [*self.timeout, read.planned]
        if read.alone is not None and not self.timeout:
            return [read.alone.on(connection)]
        return [*self.timeout, *read.statements]
