"""One engine per process for the application, sized and timed from the settings.

The pool hands out the most recently used connection first (LIFO): under light load the same
few connections stay warm and the surplus idles out, which a pooler or a serverless database
(Neon scales compute to zero) rewards.

Behind a transaction-mode pooler (PgBouncer, Neon's -pooler host) a server connection serves a
different client after every transaction, so nothing may outlive one: no server-side prepared
statements, no session-level SET. The statement timeout is then set per transaction instead.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc

from afilo_db.config import Settings, get_settings
from afilo_db.db.target import resolve_target
from afilo_db.db.urls import is_pooled, sqlalchemy_url

# psycopg prepares a statement on the server after it has run this many times on a connection.
PREPARE_THRESHOLD = 2


def create_app_engine(
    url: str, settings: Settings | None = None, *, pooled: bool | None = None
) -> Engine:
    """`pooled`: whether `url` goes through a transaction-mode pooler; by default read from `url`."""
    settings = settings or get_settings()
    pooled = is_pooled(url) if pooled is None else pooled
    timeout_ms = settings.db_statement_timeout_ms
    connect_args: dict[str, Any] = {"prepare_threshold": None if pooled else PREPARE_THRESHOLD}
    if not pooled and timeout_ms:
        connect_args["options"] = f"-c statement_timeout={timeout_ms}"
    ping_after_idle = settings.db_pool_ping_after_idle_seconds
    engine = create_engine(
        sqlalchemy_url(url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_pre_ping=ping_after_idle == 0,
        pool_use_lifo=True,
        connect_args=connect_args,
    )
    if ping_after_idle > 0:
        _ping_connections_idle_longer_than(engine, ping_after_idle)
    if pooled and timeout_ms:

        @event.listens_for(engine, "begin")
        def _statement_timeout_per_transaction(connection: Any) -> None:
            connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout_ms)}")

    return engine


def _ping_connections_idle_longer_than(engine: Engine, seconds: float) -> None:
    """Pre-ping, but only connections that sat idle in the pool for `seconds` or more.

    A ping is a round trip; on a hot path that reuses a connection every few milliseconds it is
    a quarter of a request's round trips and finds nothing. Connections die while idle (server
    restarts, pooler and load-balancer idle timeouts), so those are the ones checked.
    """

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


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """The process's engine for DATABASE_URL (or the embedded server), created on first use."""
    target = resolve_target()
    return create_app_engine(target.app_url, pooled=target.app_url_is_pooled or None)


def dispose_engine() -> None:
    """Close the pool (after a fork, or at shutdown) and forget the engine."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
