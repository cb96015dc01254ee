"""One engine per process for the application, sized and timed from the settings; a sync one
(`get_engine`) and an asyncio one (`get_async_engine`) built the same way.

The pool hands out the most recently used connection first (LIFO): under light load the same
few connections stay warm and the surplus idles out, which a pooler or a serverless database
(Neon scales compute to zero) rewards.

Prepared statements are kept for the connection's life. psycopg 3 forgets its prepared
statements on every ROLLBACK (and sends DEALLOCATE ALL), so a request that reads and closes its
Session without committing would parse and plan its statements on every call. The application's
connections end a transaction with a plain ROLLBACK instead: prepared statements are not
transactional in PostgreSQL, and the application role owns no table it could drop or alter
(psycopg still forgets them after a DROP or ALTER, as it always does).

Behind a transaction-mode pooler (PgBouncer, Neon's -pooler host) a server connection serves a
different client after every transaction, so nothing may outlive one: no session-level SET, and
no prepared statements unless the pooler keeps them itself (PgBouncer >= 1.21 with
`max_prepared_statements`: set DB_POOLER_PREPARED_STATEMENTS). The statement timeout is then
set per transaction instead.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from afilo_db.config import Settings, get_settings
from afilo_db.db.target import resolve_target
from afilo_db.db.urls import is_pooled, libpq_url, sqlalchemy_url
from afilo_db.once import once_per_arguments

# psycopg prepares a statement on the server after it has run this many times on a connection.
PREPARE_THRESHOLD = 2

# Engines behind a transaction-mode pooler that need the statement timeout set in every
# transaction, and its value (ms): hot reads (afilo_db.db.hot) send it with their query.
PER_TRANSACTION_TIMEOUT_MS: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()


class PreparedKeepingConnection(psycopg.Connection[Any]):
    """A psycopg connection whose ROLLBACK keeps its prepared statements (see the module)."""

    def rollback(self) -> None:
        if self._pipeline is not None or self._tpc is not None or self._num_transactions:
            super().rollback()  # psycopg's own checks and errors apply
            return
        # The pool resets every connection it takes back, most of them with nothing begun: a
        # status read, not psycopg's locked no-op.
        if self.pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            with self.lock:
                self.wait(self._exec_command(b"ROLLBACK"))


class PreparedKeepingAsyncConnection(psycopg.AsyncConnection[Any]):
    """The asyncio twin of `PreparedKeepingConnection`."""

    async def rollback(self) -> None:
        if self._pipeline is not None or self._tpc is not None or self._num_transactions:
            await super().rollback()
            return
        if self.pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            async with self.lock:
                await self.wait(self._exec_command(b"ROLLBACK"))


@dataclass(frozen=True)
class _EngineShape:
    pooled: bool
    connect_args: dict[str, Any]
    pool_arguments: dict[str, Any]
    per_transaction_timeout_ms: int


def _shape(url: str, settings: Settings, pooled: bool | None = None) -> _EngineShape:
    pooled = is_pooled(url) if pooled is None else pooled
    timeout_ms = settings.db_statement_timeout_ms
    prepares = not pooled or settings.db_pooler_prepared_statements
    connect_args: dict[str, Any] = {"prepare_threshold": PREPARE_THRESHOLD if prepares else None}
    if not pooled and timeout_ms:
        connect_args["options"] = f"-c statement_timeout={timeout_ms}"
    return _EngineShape(
        pooled=pooled,
        connect_args=connect_args,
        pool_arguments={
            "pool_size": settings.db_pool_size,
            "max_overflow": settings.db_max_overflow,
            "pool_timeout": settings.db_pool_timeout_seconds,
            "pool_pre_ping": settings.db_pool_ping_after_idle_seconds == 0,
            "pool_use_lifo": True,
        },
        per_transaction_timeout_ms=timeout_ms if pooled else 0,
    )


def _set_timeout_per_transaction(engine: Engine, timeout_ms: int) -> None:
    PER_TRANSACTION_TIMEOUT_MS[engine] = timeout_ms

    @event.listens_for(engine, "begin")
    def _statement_timeout_per_transaction(connection: Any) -> None:
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout_ms)}")


def create_app_engine(
    url: str, settings: Settings | None = None, *, pooled: bool | None = None
) -> Engine:
    """`pooled`: whether `url` goes through a transaction-mode pooler; by default read from `url`."""
    settings = settings or get_settings()
    shape = _shape(url, settings, pooled)
    engine = create_engine(
        sqlalchemy_url(url), connect_args=shape.connect_args, **shape.pool_arguments
    )

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        return PreparedKeepingConnection.connect(*cargs, **cparams)

    _ping_connections_idle_longer_than(engine, settings.db_pool_ping_after_idle_seconds)
    if shape.per_transaction_timeout_ms:
        _set_timeout_per_transaction(engine, shape.per_transaction_timeout_ms)
    return engine


def create_async_app_engine(
    url: str, settings: Settings | None = None, *, pooled: bool | None = None
) -> AsyncEngine:
    """The asyncio engine (psycopg's AsyncConnection underneath), shaped like `create_app_engine`."""
    settings = settings or get_settings()
    shape = _shape(url, settings, pooled)
    conninfo = libpq_url(url)

    async def _connect() -> PreparedKeepingAsyncConnection:
        return await PreparedKeepingAsyncConnection.connect(conninfo, **shape.connect_args)

    engine = create_async_engine(
        sqlalchemy_url(url), async_creator=_connect, **shape.pool_arguments
    )
    _ping_connections_idle_longer_than(engine.sync_engine, settings.db_pool_ping_after_idle_seconds)
    if shape.per_transaction_timeout_ms:
        _set_timeout_per_transaction(engine.sync_engine, shape.per_transaction_timeout_ms)
    return engine


def _ping_connections_idle_longer_than(engine: Engine, seconds: float) -> None:
    """Pre-ping, but only connections that sat idle in the pool for `seconds` or more
    (0: SQLAlchemy's own pre-ping pings before every use).

    A ping is a round trip; on a hot path that reuses a connection every few milliseconds it is
    a quarter of a request's round trips and finds nothing. Connections die while idle (server
    restarts, pooler and load-balancer idle timeouts), so those are the ones checked.
    """
    if seconds <= 0:
        return

    @event.listens_for(engine.pool, "checkin")
    def _remember_when(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool discards this connection and checks out (or opens) another.
            raise exc.DisconnectionError(f"pooled connection failed its ping: {error}") from error


@once_per_arguments
def get_engine() -> Engine:
    """The process's engine for DATABASE_URL (or the embedded server), created on first use."""
    target = resolve_target()
    return create_app_engine(target.app_url, pooled=target.app_url_is_pooled or None)


@once_per_arguments
def get_async_engine() -> AsyncEngine:
    """The process's asyncio engine for DATABASE_URL (or the embedded server)."""
    target = resolve_target()
    return create_async_app_engine(target.app_url, pooled=target.app_url_is_pooled or None)


def dispose_engine() -> None:
    """Close the pool (after a fork, or at shutdown) and forget the engine (the asyncio one is
    only forgotten: close it with `await get_async_engine().dispose()` in its event loop)."""
    for engine in get_engine.made():
        engine.dispose()
    get_engine.cache_clear()
    get_async_engine.cache_clear()
