"""`DATABASE_URL=...?pgbouncer=true` through the public settings and `get_engine()`, against a real
PgBouncer in transaction mode: the engine must keep no server-side prepared statement, since the
server connection it prepared one on serves another client after the transaction."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from afilo_db.config import get_settings
from afilo_db.db.engine import dispose_engine, get_engine
from afilo_db.db.target import resolve_target
from tests.security.conftest import Marketplace, pooled_app_url
from tests.security.pgbouncer import PgBouncer


@pytest.fixture
def configured_engine(
    monkeypatch: pytest.MonkeyPatch,
    pgbouncer: PgBouncer,
    app_password: str,
    marketplace: Marketplace,
) -> Iterator[Engine]:
    url = pooled_app_url(pgbouncer, app_password, marketplace.database) + "?pgbouncer=true"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("DIRECT_URL", marketplace.owner_url)
    get_settings.cache_clear()
    dispose_engine()
    yield get_engine()
    dispose_engine()
    get_settings.cache_clear()


def test_the_flag_survives_resolution(configured_engine: Engine) -> None:
    target = resolve_target()
    assert "pgbouncer" not in target.app_url  # libpq refuses it
    assert target.app_url_is_pooled
    with configured_engine.connect() as connection:
        assert connection.connection.driver_connection.prepare_threshold is None  # type: ignore[union-attr]


def test_two_clients_on_one_server_connection_repeat_a_statement(configured_engine: Engine) -> None:
    """PgBouncer gives both clients its one server connection in turn: a statement prepared by
    one would collide with (or be missing for) the other."""
    statement = text("SELECT count(*) FROM products WHERE handle <> :handle")
    with configured_engine.connect() as first, configured_engine.connect() as second:
        for round_number in range(6):
            for connection in (first, second):
                assert connection.execute(statement, {"handle": f"x{round_number}"}).scalar() == 1
                connection.commit()
