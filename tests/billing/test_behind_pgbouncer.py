"""The webhook endpoint behind a real PgBouncer (the Debian package, transaction mode) whose one
server connection every delivery shares, as behind Neon's pooler at its smallest: concurrent,
duplicated deliveries are all applied once, and the server connection is free again once they
are answered: nothing of a delivery outlives its transaction, and no delivery waits for a second
connection while it holds one (with one server connection that would wait for ever)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as WaitedTooLong
from urllib.parse import quote

import psycopg
import pytest
from sqlalchemy import Engine

from afilo_db.config import Settings
from afilo_db.db.embedded import EmbeddedServer
from afilo_db.db.engine import create_app_engine
from afilo_db.db.urls import database_name
from afilo_db.security.roles import SERVICE_ROLE
from tests.billing.conftest import Shop
from tests.billing.providers import deliver_all, marketplace_events
from tests.billing.test_concurrency import contents
from tests.security.pgbouncer import PgBouncer

USERS = 4


@pytest.fixture
def bouncer(server: EmbeddedServer, service_password: str) -> Iterator[PgBouncer]:
    with PgBouncer(server.port, {SERVICE_ROLE: service_password}, pool_size=1) as running:
        yield running


@pytest.fixture
def pooled_url(bouncer: PgBouncer, shop: Shop, service_password: str) -> str:
    database = database_name(shop.owner_url)
    return bouncer.url(SERVICE_ROLE, quote(service_password, safe=""), database)


@pytest.fixture
def service_engine(pooled_url: str) -> Iterator[Engine]:
    """The endpoint's engine (conftest's `served` takes it): four connections to PgBouncer,
    which lends them its one server connection a transaction at a time."""
    engine = create_app_engine(
        pooled_url + "?pgbouncer=true", Settings(db_pool_size=4, db_max_overflow=0)
    )
    yield engine
    engine.dispose()


def test_deliveries_through_one_pooled_server_connection_are_each_applied_once(
    served: str, shop: Shop, bouncer: PgBouncer, pooled_url: str
) -> None:
    events = marketplace_events(USERS, tag="p")
    shuffled = events + random.sample(events, 8)
    random.shuffle(shuffled)
    assert deliver_all(served, shuffled, workers=4) >= len(shuffled)

    written = contents(shop.owner_url)
    assert {table: len(rows) for table, rows in written.items()} == {
        "user_profiles": USERS, "user_subscriptions": 4 * USERS, "purchases": USERS,
        "webhook_events": 10 * USERS}  # fmt: skip

    # The endpoint's four connections sit idle in its pool: none may hold the server connection,
    # or another client of the pooler waits for it (query_wait_timeout).
    def another_client() -> object:
        with psycopg.connect(pooled_url, autocommit=True) as other:
            return other.execute("SELECT count(*) FROM webhook_events").fetchone()

    with ThreadPoolExecutor(max_workers=1) as pool:
        answer = pool.submit(another_client)
        try:
            assert answer.result(timeout=10) == (10 * USERS,)
        except WaitedTooLong:
            raise AssertionError(f"PgBouncer's log:\n{bouncer.log()[-4000:]}") from None
