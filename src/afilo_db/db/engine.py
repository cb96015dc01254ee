"""One engine per process for the application, sized and timed from the settings.

Behind a transaction-mode pooler (PgBouncer, Neon's -pooler host) a server connection serves a
different client after every transaction, so nothing may outlive one: no server-side prepared
statements, no session-level SET. The statement timeout is then set per transaction instead.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event

from afilo_db.config import Settings, get_settings
from afilo_db.db.target import resolve_target
from afilo_db.db.urls import is_pooled, sqlalchemy_url

# psycopg prepares a statement on the server after it has run this many times on a connection.
PREPARE_THRESHOLD = 2


def create_app_engine(url: str, settings: Settings | None = None) -> Engine:
    settings = settings or get_settings()
    pooled = is_pooled(url)
    timeout_ms = settings.db_statement_timeout_ms
    connect_args: dict[str, Any] = {"prepare_threshold": None if pooled else PREPARE_THRESHOLD}
    if not pooled and timeout_ms:
        connect_args["options"] = f"-c statement_timeout={timeout_ms}"
    engine = create_engine(
        sqlalchemy_url(url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_pre_ping=True,
        connect_args=connect_args,
    )
    if pooled and timeout_ms:

        @event.listens_for(engine, "begin")
        def _statement_timeout_per_transaction(connection: Any) -> None:
            connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout_ms)}")

    return engine


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """The process's engine for DATABASE_URL (or the embedded server), created on first use."""
    return create_app_engine(resolve_target().app_url)


def dispose_engine() -> None:
    """Close the pool (after a fork, or at shutdown) and forget the engine."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
