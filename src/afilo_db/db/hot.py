"""Hot reads: the application's most frequent reads, each sent as one round trip, prepared once
per connection and kept (see `afilo_db.db.engine`), in no transaction when none is needed.

Where a read runs depends on what the caller passes:

- a Session already in a transaction (or holding unflushed changes, bound to one Connection, or
  to an engine with an isolation level of its own): inside that transaction, on its connection,
  so it sees the caller's writes and context (`as_user`);
- a Session with nothing begun, or an Engine: on a connection borrowed from the engine's pool
  and switched to autocommit for the call: no BEGIN and no ROLLBACK, one round trip, and the
  Session is left untouched (closing it sends nothing). The read is one statement, so it sees
  one snapshot, as it would as the first statement of a transaction. Under load a read hands
  its connection straight to the next read waiting, in whichever thread (see `_SyncRelay`);
- the same for an AsyncSession or an AsyncEngine, awaiting psycopg's AsyncConnection directly;
  under load a read hands its connection straight to the next read waiting (see `_Relay`);
- a psycopg connection, or a psycopg_pool pool (sync or async), for back ends that hold psycopg
  themselves: inside the connection's open transaction if it has one, else on its own (autocommit
  for the call, then as it was). No SQLAlchemy on the way: at concurrency 1 the fastest form,
  within a few microseconds of psycopg alone (under load, psycopg_pool's own waiting costs more
  than the AsyncEngine's relay). The statement timeout is then the connection's own business.

Statements that must precede the query (the user context of row-level security, the statement
timeout behind a transaction-mode pooler) go in the same round trip: in a pipeline with one
Sync where statements are prepared, as one query of the simple protocol where nothing is (see
`_one_query`). Without an open transaction they share the implicit transaction that ends with
that round trip, so a transaction-local setting (`set_config(..., true)`) holds for the query and
ends with it.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeAlias

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from sqlalchemy import Engine, exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.pool import PoolProxiedConnection, QueuePool
from sqlalchemy.util import greenlet_spawn

from afilo_db.db.engine import PER_TRANSACTION_TIMEOUT_MS

Parameters: TypeAlias = Mapping[str, Any] | Sequence[Any]
Statement: TypeAlias = tuple[str, Parameters]
"""SQL with psycopg placeholders (%s, %(name)s) and its parameters."""
Row: TypeAlias = tuple[Any, ...]
ReadSource: TypeAlias = (
    Session | Engine | psycopg.Connection[Any] | ConnectionPool[psycopg.Connection[Any]]
)
"""What a hot read runs on (see the module)."""
AsyncReadSource: TypeAlias = (
    AsyncSession
    | AsyncEngine
    | psycopg.AsyncConnection[Any]
    | AsyncConnectionPool[psycopg.AsyncConnection[Any]]
)

TIMEOUT_SQL = "SELECT set_config('statement_timeout', %s, true)"


@dataclass(frozen=True, slots=True)
class Alone:
    """A read written as one statement, `before` included, to send instead of the statements
    when the read runs on its own (see `fetch`).

    `on_login`: a shorter statement for connections that logged in as `login`, whose policies
    already do part of what `statement` must do on every other login (for example a user read
    that leaves the user's rows to the application role's policy, see
    `afilo_db.security.context.user_read_sql`)."""

    statement: Statement
    login: str | None = None
    on_login: Statement | None = None

    def on(self, connection: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> Statement:
        # libpq's bytes, not `connection.info.user`: a new ConnectionInfo and a decode each read.
        if self.on_login is not None and connection.pgconn.user == _encoded(self.login):
            return self.on_login
        return self.statement


@lru_cache(maxsize=8)
def _encoded(login: str | None) -> bytes | None:
    return None if login is None else login.encode()


def _needs_session_transaction(session: Session, bind: object) -> bool:
    if session.in_transaction() or session.new or session.dirty or session.deleted:
        return True
    if isinstance(bind, AsyncEngine):
        bind = bind.sync_engine
    return not isinstance(bind, Engine) or "isolation_level" in bind.get_execution_options()


@dataclass(slots=True)
class _Alone:
    """What a read running on its own sends: behind a pooler, the statement timeout first; then
    the read as one statement where it has one and no timeout goes with it, else `before` and
    the query; on a connection that prepares nothing, the call of its server-side function
    (`planned`) where it has one."""

    timeout: list[Statement]
    read: list[Statement]
    alone: Alone | None
    planned: Statement | None

    def on(
        self, connection: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]
    ) -> list[Statement]:
        if self.planned is not None and _one_query(connection):
            return [*self.timeout, self.planned]
        if self.alone is not None and not self.timeout:
            return [self.alone.on(connection)]
        return [*self.timeout, *self.read]


def _statements_alone(
    engine: Engine | None,
    query: str,
    parameters: Parameters,
    before: Sequence[Statement],
    alone: Alone | None,
    planned: Statement | None,
) -> _Alone:
    timeout_ms = PER_TRANSACTION_TIMEOUT_MS.get(engine) if engine is not None else None
    timeout: list[Statement] = [(TIMEOUT_SQL, (str(timeout_ms),))] if timeout_ms else []
    return _Alone(timeout, [*before, (query, parameters)], alone, planned)


def _one_query(connection: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether statements sent together go as one query of the simple protocol, values bound on
    the client: where nothing is prepared (behind PgBouncer 1.18), so nothing is lost, and
    psycopg's pipeline mode costs more client CPU than the round trip it saves (290 against 218
    us a read through PgBouncer). Elsewhere they go in a pipeline, each statement prepared."""
    return connection.prepare_threshold is None


def _joined(
    cursor: psycopg.ClientCursor[Row] | psycopg.AsyncClientCursor[Row], statements: list[Statement]
) -> str:
    return "; ".join(cursor.mogrify(sql, values) for sql, values in statements)


def _execute(connection: psycopg.Connection[Row], statements: list[Statement]) -> list[Row]:
    *preamble, (query, parameters) = statements
    if not preamble:
        return connection.execute(query, parameters, prepare=True).fetchall()
    if _one_query(connection):
        with psycopg.ClientCursor(connection) as client_cursor:
            client_cursor.execute(_joined(client_cursor, statements))
            for _ in preamble:
                client_cursor.nextset()
            return client_cursor.fetchall()
    with connection.pipeline():
        for sql, values in preamble:
            connection.execute(sql, values, prepare=True)
        cursor = connection.execute(query, parameters, prepare=True)
    return cursor.fetchall()


async def _execute_async(
    connection: psycopg.AsyncConnection[Row], statements: list[Statement]
) -> list[Row]:
    *preamble, (query, parameters) = statements
    if not preamble:
        cursor = await connection.execute(query, parameters, prepare=True)
        return await cursor.fetchall()
    if _one_query(connection):
        async with psycopg.AsyncClientCursor(connection) as client_cursor:
            await client_cursor.execute(_joined(client_cursor, statements))
            for _ in preamble:
                client_cursor.nextset()
            return await client_cursor.fetchall()
    async with connection.pipeline():
        for sql, values in preamble:
            await connection.execute(sql, values, prepare=True)
        cursor = await connection.execute(query, parameters, prepare=True)
    return await cursor.fetchall()


def _execute_alone(connection: psycopg.Connection[Row], alone: _Alone) -> list[Row]:
    """The statements in autocommit (no BEGIN, no ROLLBACK), then the connection as it was."""
    if connection.autocommit:
        return _execute(connection, alone.on(connection))
    connection.autocommit = True
    try:
        return _execute(connection, alone.on(connection))
    finally:
        if not connection.closed:
            connection.autocommit = False


def _fetch_borrowed(engine: Engine, alone: _Alone) -> list[Row]:
    relay = _sync_relay(engine)
    borrowed = relay.borrow()
    driver = borrowed.driver_connection
    lost = False
    try:
        assert isinstance(driver, psycopg.Connection), "afilo-db engines use psycopg"
        # Left on while the relay hands the connection from read to read; turned off again
        # before it goes back to the pool (`_SyncRelay._return`).
        if not driver.autocommit:
            driver.autocommit = True
        return _execute(driver, alone.on(driver))
    except psycopg.OperationalError:
        # Lost, not merely refused: a statement timeout (QueryCanceled) leaves it usable.
        lost = not isinstance(driver, psycopg.Connection) or driver.broken
        raise
    finally:
        relay.give_back(borrowed, lost)


def fetch(
    source: ReadSource,
    query: str,
    parameters: Parameters,
    before: Sequence[Statement] = (),
    alone: Alone | None = None,
    planned: Statement | None = None,
) -> list[Row]:
    """The rows of `query`, with the `before` statements sent first in the same round trip.

    `alone` is the same read written as one statement, `before` included, to send instead when
    the read runs on its own (no open transaction, no statement timeout to send with it): one
    statement is one result to wait for, where a pipeline of two is two (see `Alone`).

    `planned` is the same read, `before` included, as a call of a server-side function (see
    `afilo_db.security.reads`), to send instead when the read runs on its own on a connection
    that prepares nothing (behind PgBouncer before 1.21): the server keeps the function's plan
    for the connection, where the statement would be planned on every call.
    """
    if isinstance(source, psycopg.Connection):
        return _fetch_on_connection(source, query, parameters, before, alone, planned)
    if isinstance(source, ConnectionPool):
        with source.connection() as pooled:
            return _fetch_on_connection(pooled, query, parameters, before, alone, planned)
    if isinstance(source, Session):
        bind = source.get_bind()
        # An asyncio engine's Session here is AsyncSession.run_sync's: it runs in the session.
        if _needs_session_transaction(source, bind) or bind.dialect.is_async:
            return _fetch_in_session(source, [*before, (query, parameters)])
        assert isinstance(bind, Engine)
        source = bind
    alone_statements = _statements_alone(source, query, parameters, before, alone, planned)
    return _fetch_borrowed(source, alone_statements)


def _fetch_on_connection(
    connection: psycopg.Connection[Any],
    query: str,
    parameters: Parameters,
    before: Sequence[Statement],
    alone: Alone | None,
    planned: Statement | None,
) -> list[Row]:
    if connection.info.transaction_status != TransactionStatus.IDLE:
        return _execute(connection, [*before, (query, parameters)])
    statements = _statements_alone(None, query, parameters, before, alone, planned)
    return _execute_alone(connection, statements)


async def _fetch_on_async_connection(
    connection: psycopg.AsyncConnection[Any],
    query: str,
    parameters: Parameters,
    before: Sequence[Statement],
    alone: Alone | None,
    planned: Statement | None,
) -> list[Row]:
    if connection.info.transaction_status != TransactionStatus.IDLE:
        return await _execute_async(connection, [*before, (query, parameters)])
    statements = _statements_alone(None, query, parameters, before, alone, planned)
    return await _execute_alone_async(connection, statements)


def _fetch_in_session(session: Session, statements: list[Statement]) -> list[Row]:
    if session.autoflush:
        session.flush()
    connection = session.connection()
    driver = connection.connection.driver_connection
    if isinstance(driver, psycopg.Connection):
        return _execute(driver, statements)
    # Under AsyncSession.run_sync the driver is async: SQLAlchemy adapts each call (one round
    # trip each: the native path is fetch_async).
    *preamble, (query, parameters) = statements
    for sql, values in preamble:
        connection.exec_driver_sql(sql, values)
    return [tuple(row) for row in connection.exec_driver_sql(query, parameters)]


async def fetch_async(
    source: AsyncReadSource,
    query: str,
    parameters: Parameters,
    before: Sequence[Statement] = (),
    alone: Alone | None = None,
    planned: Statement | None = None,
) -> list[Row]:
    """`fetch` for asyncio: the same rules, awaiting psycopg's AsyncConnection (no thread)."""
    if isinstance(source, psycopg.AsyncConnection):
        return await _fetch_on_async_connection(source, query, parameters, before, alone, planned)
    if isinstance(source, AsyncConnectionPool):
        async with source.connection() as pooled:
            return await _fetch_on_async_connection(
                pooled, query, parameters, before, alone, planned
            )
    if isinstance(source, AsyncSession):
        if _needs_session_transaction(source.sync_session, source.bind):
            if source.autoflush:
                await source.flush()
            connection = await source.connection()
            driver = (await connection.get_raw_connection()).driver_connection
            assert isinstance(driver, psycopg.AsyncConnection), "afilo-db sessions use psycopg"
            return await _execute_async(driver, [*before, (query, parameters)])
        assert isinstance(source.bind, AsyncEngine)
        source = source.bind
    engine = source.sync_engine
    statements = _statements_alone(engine, query, parameters, before, alone, planned)
    relay = _relay(engine)
    borrowed = await relay.borrow()
    driver = borrowed.driver_connection
    lost = False
    try:
        assert isinstance(driver, psycopg.AsyncConnection), "afilo-db engines use psycopg"
        # Left on while the relay hands the connection from read to read; turned off again
        # before it goes back to the pool (`_Relay._return`).
        if not driver.autocommit:
            await driver.set_autocommit(True)
        return await _execute_async(driver, statements.on(driver))
    except psycopg.OperationalError:
        # Lost, not merely refused: a statement timeout (QueryCanceled) leaves it usable.
        lost = not isinstance(driver, psycopg.AsyncConnection) or driver.broken
        raise
    finally:
        await relay.give_back(borrowed, lost)


async def _execute_alone_async(
    connection: psycopg.AsyncConnection[Row], alone: _Alone
) -> list[Row]:
    """The statements in autocommit (no BEGIN, no ROLLBACK), then the connection as it was."""
    if connection.autocommit:
        return await _execute_async(connection, alone.on(connection))
    await connection.set_autocommit(True)
    try:
        return await _execute_async(connection, alone.on(connection))
    finally:
        if not connection.closed:
            await connection.set_autocommit(False)


def _should_wait(pool: object, held: int) -> bool:
    """Whether a hot read should wait for a connection another one hands on (see `_Relay`),
    `held` being how many connections hot reads hold or are checking out."""
    if not held or not isinstance(pool, QueuePool):
        return False
    most_overflow = pool._max_overflow  # SQLAlchemy has no public name for it; -1: no limit
    most_held = pool.size() + most_overflow - 1
    if most_overflow < 0 or most_held < 1:
        return False
    return held >= most_held or (pool.checkedin() == 0 and pool.overflow() >= most_overflow)


def _driver_idle(connection: PoolProxiedConnection) -> bool:
    driver = connection.driver_connection
    return (
        isinstance(driver, psycopg.Connection | psycopg.AsyncConnection)
        and not driver.closed
        and driver.pgconn.transaction_status == TransactionStatus.IDLE
    )


class _Handover:
    """A thread's place in a `_SyncRelay`'s queue: released once it is handed a connection (or,
    with `connection` None, a turn at the pool)."""

    __slots__ = ("connection", "done")

    def __init__(self) -> None:
        self.connection: PoolProxiedConnection | None = None
        self.done = threading.Lock()
        self.done.acquire()


class _EngineRelay:
    """What both relays keep of their engine: the engine itself, weakly (the relay is kept in a
    weak dictionary keyed by its engine, which a strong reference from here would keep alive for
    ever), and how many connections hot reads hold."""

    def __init__(self, engine: Engine) -> None:
        self._engine = weakref.ref(engine)
        self.held = 0
        """Connections hot reads hold or are checking out (each is handed on or returned)."""

    @property
    def engine(self) -> Engine:
        engine = self._engine()
        assert engine is not None, "a relay is only used by reads of its engine"
        return engine


class _SyncRelay(_EngineRelay):
    """`_Relay` for an Engine's reads in threads: a read that would wait for SQLAlchemy's pool
    while other hot reads hold connections waits here, and a read that ends hands its connection
    straight to the longest waiting one, still checked out and in autocommit. At concurrency 32
    on a pool of 10 the pool's checkout and return (each with its events, its reset and its
    queue's condition) cost the client 27 us of CPU a read more than raw psycopg's own queue,
    and the client's CPU is what limits throughput there.

    The same rules as `_Relay`: only a healthy connection is handed on, with nobody waiting it
    goes back to the pool out of autocommit, hot reads hold at most all of the pool's
    connections but one, and a read waits here no longer than the pool's own timeout.
    """

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.lock = threading.Lock()
        self.waiting: deque[_Handover] = deque()

    def borrow(self) -> PoolProxiedConnection:
        engine = self.engine
        with self.lock:
            handover = _Handover() if _should_wait(engine.pool, self.held) else None
            if handover is None:
                self.held += 1
            else:
                self.waiting.append(handover)
        if handover is not None:
            self._wait(engine, handover)
            if handover.connection is not None:
                return handover.connection
        try:
            return engine.raw_connection()
        except BaseException:
            self._release_turn()
            raise

    def _wait(self, engine: Engine, handover: _Handover) -> None:
        pool = engine.pool
        assert isinstance(pool, QueuePool), "only a QueuePool makes reads wait (_should_wait)"
        timeout = pool.timeout()
        if handover.done.acquire(timeout=timeout):
            return
        with self.lock:
            if handover in self.waiting:
                self.waiting.remove(handover)
                raise exc.TimeoutError(
                    f"no connection for a hot read within {timeout:g} s: every connection of"
                    " the pool stayed in use (DB_POOL_SIZE, DB_POOL_TIMEOUT_SECONDS)"
                )
        handover.done.acquire()  # handed over just as the wait ended: it is released next

    def give_back(self, connection: PoolProxiedConnection, lost: bool) -> None:
        """After a read: on to the next one, or back to the pool (invalidated if `lost`)."""
        # `waiting` read unlocked first: a read that starts waiting just after is woken when
        # this connection is back in the pool.
        if self.waiting and not lost and _driver_idle(connection):
            with self.lock:
                handover = self.waiting.popleft() if self.waiting else None
            if handover is not None:
                handover.connection = connection
                handover.done.release()
                return
        self._return(connection, invalidate=lost)

    def _return(self, connection: PoolProxiedConnection, invalidate: bool) -> None:
        try:
            driver = connection.driver_connection
            if not invalidate and isinstance(driver, psycopg.Connection) and driver.autocommit:
                try:
                    driver.autocommit = False
                except psycopg.Error:
                    invalidate = True  # closed, or stopped in the middle of a query
            _close(connection, invalidate)
        finally:
            self._release_turn()

    def _release_turn(self) -> None:
        """A connection is the pool's again: the longest waiting read tries there."""
        with self.lock:
            self.held -= 1
            handover = self.waiting.popleft() if self.waiting else None
            if handover is not None:
                self.held += 1  # counted from now, as a read that checks out itself is
        if handover is not None:
            handover.done.release()


_SYNC_RELAYS: weakref.WeakKeyDictionary[Engine, _SyncRelay] = weakref.WeakKeyDictionary()
_SYNC_RELAYS_LOCK = threading.Lock()
# A child process does not inherit its parent's reads in flight, nor their connections.
os.register_at_fork(after_in_child=_SYNC_RELAYS.clear)


def _sync_relay(engine: Engine) -> _SyncRelay:
    relay = _SYNC_RELAYS.get(engine)
    if relay is None:
        with _SYNC_RELAYS_LOCK:
            relay = _SYNC_RELAYS.get(engine)
            if relay is None:
                relay = _SYNC_RELAYS[engine] = _SyncRelay(engine)
    return relay


class _Relay(_EngineRelay):
    """Hands an AsyncEngine's connections from one hot read to the next, under load.

    SQLAlchemy's pool is written for sync code: each checkout and each return runs in a greenlet
    of its own, and a checkout that waits for a connection waits in a task with a timer. At
    concurrency 32 on a pool of 10 that held reads to 0.6x raw psycopg's throughput. So a read
    that would wait for the pool while other hot reads hold connections waits here, and a read
    that ends hands its connection straight to the longest waiting one, still checked out: a
    future set, as a queue does. Only a healthy connection (idle, no transaction) is handed on,
    still in autocommit; with nobody waiting it goes back to the pool, autocommit off again (a
    connection that cannot be switched back is discarded).

    Hot reads hold at most all of the pool's connections but one: however many reads wait, a
    Session waiting in the pool gets the connection left. A pool of one connection, or one that
    may always open another, gets no relay.
    """

    def __init__(self, engine: Engine, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(engine)
        self.loop = loop
        self.waiting: deque[asyncio.Future[PoolProxiedConnection | None]] = deque()

    async def borrow(self) -> PoolProxiedConnection:
        if _should_wait(self.engine.pool, self.held):
            waiter: asyncio.Future[PoolProxiedConnection | None] = self.loop.create_future()
            self.waiting.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                # Handed a connection, or a turn at the pool, just as this read was cancelled:
                # pass it on.
                if waiter.done() and not waiter.cancelled():
                    handed_over = waiter.result()
                    if handed_over is None:
                        self._wake_one()
                    else:
                        await self._pass_on(handed_over)
                raise
            if handed is not None:
                return handed
        self.held += 1  # from now: a read that comes next waits for this one to hand it on
        try:
            connection: PoolProxiedConnection = await greenlet_spawn(self.engine.raw_connection)
        except BaseException:
            self.held -= 1
            self._wake_one()  # no connection to hand on: a waiting read must try the pool itself
            raise
        return connection

    async def give_back(self, connection: PoolProxiedConnection, lost: bool) -> None:
        """After a read: on to the next one, or back to the pool (invalidated if `lost`)."""
        if lost or not _driver_idle(connection):
            await self._return(connection, invalidate=lost)
        else:
            await self._pass_on(connection)

    async def _pass_on(self, connection: PoolProxiedConnection) -> None:
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        await self._return(connection, invalidate=False)

    async def _return(self, connection: PoolProxiedConnection, invalidate: bool) -> None:
        self.held -= 1
        try:
            driver = connection.driver_connection
            if not invalidate and isinstance(driver, psycopg.AsyncConnection) and driver.autocommit:
                try:
                    await driver.set_autocommit(False)
                except psycopg.Error:
                    invalidate = True  # closed, or stopped in the middle of a query
            await greenlet_spawn(_close, connection, invalidate)
        finally:
            self._wake_one()  # the connection is the pool's again: a waiting read tries there

    def _wake_one(self) -> None:
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


def _close(connection: PoolProxiedConnection, invalidate: bool) -> None:
    if invalidate:
        connection.invalidate()  # lost: the pool opens a new one rather than hand this one out
    connection.close()


_RELAYS: weakref.WeakKeyDictionary[Engine, _Relay] = weakref.WeakKeyDictionary()


def _relay(engine: Engine) -> _Relay:
    loop = asyncio.get_running_loop()
    relay = _RELAYS.get(engine)
    if relay is None or relay.loop is not loop:
        relay = _RELAYS[engine] = _Relay(engine, loop)
    return relay
