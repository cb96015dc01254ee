"""Where a hot read runs and how its statements are sent, written once for threads and asyncio
as steps (`shapes.Steps`) that `run` and `run_async` drive."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from types import CoroutineType
from typing import Any, TypeAlias

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from afilo_db.db.engine import PER_TRANSACTION_TIMEOUT_MS
from afilo_db.db.hot.relay import Relay, task_relay, thread_relay
from afilo_db.db.hot.shapes import AloneStatements, AnyConnection, Read, Row, Statement, Steps, T
from afilo_db.db.pipeline import async_pipeline, pipeline

ReadSource: TypeAlias = (
    Session | Engine | psycopg.Connection[Any] | ConnectionPool[psycopg.Connection[Any]]
)
"""What a hot read runs on (see `afilo_db.db.hot`)."""
AsyncReadSource: TypeAlias = (
    AsyncSession
    | AsyncEngine
    | psycopg.AsyncConnection[Any]
    | AsyncConnectionPool[psycopg.AsyncConnection[Any]]
)


def fetch(source: ReadSource, read: Read) -> list[Row]:
    """The rows of `read` (see `afilo_db.db.hot` for where it runs)."""
    return run(_fetch(source, read))


async def fetch_async(source: AsyncReadSource, read: Read) -> list[Row]:
    """`fetch` for asyncio: the same rules, awaiting psycopg's AsyncConnection (no thread)."""
    return await run_async(_fetch(source, read))


def run(steps: Steps[T]) -> T:
    """The result of `steps` whose calls return values (a Connection's)."""
    value: Any = None
    try:
        while True:
            value = steps.send(value)
    except StopIteration as finished:
        return finished.value  # type: ignore[no-any-return]


async def run_async(steps: Steps[T]) -> T:
    """The result of `steps`, awaiting the awaitables its calls return (an AsyncConnection's)."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as finished:
            return finished.value  # type: ignore[no-any-return]
        error = None
        if isinstance(step, CoroutineType):
            try:
                value = await step
            except BaseException as raised:  # the steps' own handlers decide, as in sync code
                error = raised
        else:
            value = step


def _fetch(source: ReadSource | AsyncReadSource, read: Read) -> Steps[list[Row]]:
    if isinstance(source, psycopg.Connection | psycopg.AsyncConnection):
        return (yield from _on_connection(source, read))
    if isinstance(source, ConnectionPool | AsyncConnectionPool):
        return (
            yield from _within(source.connection(), lambda pooled: _on_connection(pooled, read))
        )
    if isinstance(source, AsyncSession):
        if _needs_session_transaction(source.sync_session, source.bind):
            if source.autoflush:
                yield source.flush()
            in_session = yield source.connection()
            raw = yield in_session.get_raw_connection()
            return (yield from _execute(raw.driver_connection, read.statements))
        assert isinstance(source.bind, AsyncEngine)
        source = source.bind
    if isinstance(source, Session):
        bind = source.get_bind()
        # An asyncio engine's Session here is AsyncSession.run_sync's: it runs in the session.
        if _needs_session_transaction(source, bind) or bind.dialect.is_async:
            return _in_session(source, read.statements)
        assert isinstance(bind, Engine)
        source = bind
    if isinstance(source, AsyncEngine):
        engine, relay = source.sync_engine, task_relay(source.sync_engine)
    else:
        engine, relay = source, thread_relay(source)
    timeout_ms = PER_TRANSACTION_TIMEOUT_MS.get(engine)
    return (yield from _borrowed(relay, AloneStatements.of(read, timeout_ms)))


def _needs_session_transaction(session: Session, bind: object) -> bool:
    if session.in_transaction() or session.new or session.dirty or session.deleted:
        return True
    if isinstance(bind, AsyncEngine):
        bind = bind.sync_engine
    return not isinstance(bind, Engine) or "isolation_level" in bind.get_execution_options()


def _in_session(session: Session, statements: list[Statement]) -> list[Row]:
    if session.autoflush:
        session.flush()
    connection = session.connection()
    driver = connection.connection.driver_connection
    if isinstance(driver, psycopg.Connection):
        return run(_execute(driver, statements))
    # Under AsyncSession.run_sync the driver is async: SQLAlchemy adapts each call (one round
    # trip each: the native path is fetch_async).
    *preamble, (query, parameters) = statements
    for sql, values in preamble:
        connection.exec_driver_sql(sql, values)
    return [tuple(row) for row in connection.exec_driver_sql(query, parameters)]


def _on_connection(connection: AnyConnection, read: Read) -> Steps[list[Row]]:
    """Inside the connection's open transaction if it has one, else on its own: autocommit for
    the call (no BEGIN, no ROLLBACK), then the connection as it was."""
    if connection.info.transaction_status != TransactionStatus.IDLE:
        return (yield from _execute(connection, read.statements))
    statements = AloneStatements.of(read, None).on(connection)
    if connection.autocommit:
        return (yield from _execute(connection, statements))
    yield connection.set_autocommit(True)
    try:
        return (yield from _execute(connection, statements))
    finally:
        if not connection.closed:
            yield connection.set_autocommit(False)


def _borrowed(relay: Relay, statements: AloneStatements) -> Steps[list[Row]]:
    connection = yield from relay.borrow()
    driver = connection.driver_connection
    lost = False
    try:
        assert isinstance(driver, psycopg.Connection | psycopg.AsyncConnection), "psycopg only"
        # Left on while the relay hands the connection from read to read; turned off again
        # before it goes back to the pool (`Relay.give_back`).
        if not driver.autocommit:
            yield driver.set_autocommit(True)
        return (yield from _execute(driver, statements.on(driver)))
    except psycopg.OperationalError:
        # Lost, not merely refused: a statement timeout (QueryCanceled) leaves it usable.
        lost = not isinstance(driver, psycopg.Connection | psycopg.AsyncConnection) or driver.broken
        raise
    finally:
        yield from relay.give_back(connection, lost)


def _execute(connection: AnyConnection, statements: list[Statement]) -> Steps[list[Row]]:
    """The rows of the last statement, all sent in one round trip: one prepared statement, or a
    pipeline with one Sync. The values always travel apart from the SQL (the extended protocol),
    also where nothing is prepared: bound into the text, they would show in pg_stat_activity and
    the server's log (users' ids, search terms)."""
    *preamble, (query, parameters) = statements
    if not preamble:
        cursor = yield connection.execute(query, parameters, prepare=True)
    else:
        synced = (
            async_pipeline(connection)
            if isinstance(connection, psycopg.AsyncConnection)
            else pipeline(connection)
        )
        cursor = yield from _within(synced, lambda _: _send(connection, statements))
    rows: list[Row] = yield cursor.fetchall()
    return rows


def _send(connection: AnyConnection, statements: list[Statement]) -> Steps[Any]:
    """Each statement, prepared; the last one's cursor."""
    cursor = None
    for sql, values in statements:
        cursor = yield connection.execute(sql, values, prepare=True)
    return cursor


def _within(
    manager: AbstractContextManager[Any] | AbstractAsyncContextManager[Any],
    steps_of: Callable[[Any], Steps[T]],
) -> Steps[T]:
    """`steps_of(what the manager gives)` in a `with` (or `async with`) block of `manager`."""
    entered = yield _enter(manager)
    try:
        result = yield from steps_of(entered)
    except BaseException as error:
        yield _exit(manager, error)
        raise
    yield _exit(manager, None)
    return result


def _enter(manager: AbstractContextManager[Any] | AbstractAsyncContextManager[Any]) -> Any:
    if isinstance(manager, AbstractAsyncContextManager):
        return manager.__aenter__()
    return manager.__enter__()


def _exit(
    manager: AbstractContextManager[Any] | AbstractAsyncContextManager[Any],
    error: BaseException | None,
) -> Any:
    """The manager left, with `error` if one is on its way out (a manager here never
    suppresses one)."""
    details = (None, None, None) if error is None else (type(error), error, error.__traceback__)
    if isinstance(manager, AbstractAsyncContextManager):
        return manager.__aexit__(*details)
    return manager.__exit__(*details)
