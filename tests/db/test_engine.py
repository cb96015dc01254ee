"""Connection management: one engine per process, pre-ping, a statement timeout, and no
server-side prepared statements or session state when the URL goes through a pooler."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from afilo_db.config import Settings, get_settings
from afilo_db.db.engine import PREPARE_THRESHOLD, create_app_engine, dispose_engine, get_engine
from afilo_db.db.urls import is_pooled, libpq_url


@pytest.mark.parametrize(
    ("url", "pooled"),
    [
        ("postgresql://u:p@ep-cool-123456-pooler.eu-central-1.aws.neon.tech/db", True),
        ("postgresql://u:p@ep-cool-123456.eu-central-1.aws.neon.tech/db", False),
        ("postgresql://u:p@localhost:6432/db?pgbouncer=true", True),
        ("postgresql://u:p@localhost:5432/db?sslmode=require", False),
    ],
)
def test_pooled_urls_are_recognized(url: str, pooled: bool) -> None:
    assert is_pooled(url) is pooled
    assert "pgbouncer" not in libpq_url(url)


def settings_in_a_transaction(url: str) -> tuple[str, object]:
    engine = create_app_engine(url)
    try:
        with engine.begin() as connection:
            timeout = connection.execute(text("SHOW statement_timeout")).scalar_one()
            driver = connection.connection.driver_connection
            threshold = driver.prepare_threshold  # type: ignore[union-attr]
        with engine.connect() as connection:
            session_timeout = connection.execute(text("SHOW statement_timeout")).scalar_one()
        return f"{timeout}/{session_timeout}", threshold
    finally:
        engine.dispose()


def test_direct_url_prepares_and_sets_the_timeout_for_the_session(database_url: str) -> None:
    timeouts, threshold = settings_in_a_transaction(database_url)
    assert timeouts == "15s/15s"
    assert threshold == PREPARE_THRESHOLD


def test_pooled_url_sets_nothing_that_outlives_a_transaction(database_url: str) -> None:
    timeouts, threshold = settings_in_a_transaction(database_url + "?pgbouncer=true")
    # Every transaction gets the timeout (SET LOCAL at begin); see the next test for the session.
    assert timeouts == "15s/15s"
    assert threshold is None


def test_pooled_url_leaves_no_session_timeout(database_url: str) -> None:
    engine = create_app_engine(database_url + "?pgbouncer=true")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            connection.commit()
            raw = connection.connection.driver_connection
            assert raw is not None
            raw.autocommit = True
            shown = raw.execute("SHOW statement_timeout").fetchone()
        assert shown == ("0",)
    finally:
        engine.dispose()


@pytest.fixture
def app_database_url(database_url: str) -> Iterator[str]:
    saved = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = database_url
    get_settings.cache_clear()
    dispose_engine()
    yield database_url
    dispose_engine()
    if saved is None:
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = saved
    get_settings.cache_clear()


def test_one_engine_per_process(app_database_url: str) -> None:
    engine = get_engine()
    assert get_engine() is engine
    assert engine.pool.size() == get_settings().db_pool_size  # type: ignore[attr-defined]
    with engine.connect() as connection:
        assert (
            connection.execute(text("SELECT current_database()")).scalar_one()
            == (app_database_url.rsplit("/", 1)[1])
        )


def terminate_pooled_backend(engine: Engine) -> None:
    """Kill, from another connection, the server process behind the pool's idle connection."""
    with engine.connect() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with psycopg.connect(str(engine.url.set(drivername="postgresql").render_as_string(False)),
                         autocommit=True) as admin:  # fmt: skip
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_connection_that_died_while_idle_is_replaced_at_checkout(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_POOL_PING_AFTER_IDLE_SECONDS", "0.2")
    engine = create_app_engine(database_url, Settings())
    try:
        terminate_pooled_backend(engine)
        time.sleep(0.3)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_a_connection_reused_at_once_is_not_pinged(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_POOL_PING_AFTER_IDLE_SECONDS", "60")
    engine = create_app_engine(database_url, Settings())
    try:
        terminate_pooled_backend(engine)
        # No ping within the idle window: the dead connection is only found by using it.
        with pytest.raises(OperationalError), engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        with engine.connect() as connection:  # and the pool has recovered
            assert connection.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()
