"""Reports on a real streaming replica of the test server (pg_basebackup -R), the fallback to the
primary when it is stopped or lags more than allowed, and the answer saying which."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import psycopg
import pytest

from afilo_db.analytics.reports import DateRange
from afilo_db.analytics.sources import run_reports
from afilo_db.db.embedded import EmbeddedServer
from afilo_db.db.replica import EmbeddedReplica
from afilo_db.db.urls import database_name
from tests.analytics.conftest import Shop

pytestmark = pytest.mark.embedded_only("the replica is a pg_basebackup of the embedded server")

FEB_MAR = DateRange(date(2026, 2, 1), date(2026, 3, 31))
# month, currency, at start, new, expansion, contraction, churn, reactivation, net new, MRR,
# customers, ARPU (the shop of conftest.py)
D = Decimal
MRR_BY_MONTH = [
    ("2026-02", "USD", 0, D(70), 0, 0, 0, 0, D(70), D(70), 3, D("23.33")),
    ("2026-03", "USD", D(70), D(100), D(20), D(20), D(30), 0, D(70), D(140), 3, D("46.67")),
]  # fmt: skip


@pytest.fixture(scope="module")
def replica(server: EmbeddedServer) -> Iterator[EmbeddedReplica]:
    replica = EmbeddedReplica(server)
    replica.start()
    yield replica
    replica.destroy()


@pytest.fixture
def running_replica(replica: EmbeddedReplica) -> EmbeddedReplica:
    replica.start()
    return replica


def replicated(replica: EmbeddedReplica, primary_url: str, timeout: float = 30) -> str:
    """The replica's URL of the primary's database, once the replica has replayed its creation."""
    url = replica.url(database_name(primary_url))
    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return url
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_the_replica_is_a_streaming_hot_standby_on_its_own_port(
    running_replica: EmbeddedReplica, server: EmbeddedServer
) -> None:
    status = running_replica.status()
    assert status.server.running and status.streaming
    assert status.server.port != server.port
    assert status.server.data_directory == server.home / "replica" / "pgdata"
    with psycopg.connect(running_replica.url(), autocommit=True) as connection:
        assert connection.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            connection.execute("CREATE TABLE written_on_a_replica (id int)")


def test_a_report_written_on_the_primary_is_read_from_the_replica(
    running_replica: EmbeddedReplica, shop: Shop
) -> None:
    replica_url = replicated(running_replica, shop.url)
    run = run_reports(["mrr"], FEB_MAR, primary_url=shop.url, replica_url=replica_url,
                      max_lag_seconds=30, catch_up_seconds=20)  # fmt: skip
    assert run.answer.server == "replica", run.answer.note
    assert run.answer.address.endswith(f":{running_replica.server.port}/{database_name(shop.url)}")
    assert run.tables[0].rows == MRR_BY_MONTH
    assert "answered by the replica" in run.answer.describe()
    assert run.answer.rollups_refreshed_at is not None


def test_with_the_replica_stopped_the_primary_answers_and_says_so(
    replica: EmbeddedReplica, shop: Shop
) -> None:
    replica_url = replicated(replica, shop.url)
    replica.stop()
    try:
        run = run_reports(["mrr"], FEB_MAR, primary_url=shop.url, replica_url=replica_url,
                          max_lag_seconds=30)  # fmt: skip
    finally:
        replica.start()
    assert run.answer.server == "primary"
    assert "unreachable" in run.answer.note
    assert "answered by the primary" in run.answer.describe()
    assert run.tables[0].rows == MRR_BY_MONTH


def test_a_replica_lagging_more_than_the_bound_is_skipped(
    running_replica: EmbeddedReplica, shop: Shop
) -> None:
    replica_url = replicated(running_replica, shop.url)
    with psycopg.connect(running_replica.url(), autocommit=True) as control:
        control.execute("SELECT pg_wal_replay_pause()")
        try:
            time.sleep(1.5)
            run = run_reports(["mrr"], FEB_MAR, primary_url=shop.url, replica_url=replica_url,
                              max_lag_seconds=0.5, catch_up_seconds=0.5)  # fmt: skip
        finally:
            control.execute("SELECT pg_wal_replay_resume()")
    assert run.answer.server == "primary"
    assert "skipped" in run.answer.note and "0.5 s allowed" in run.answer.note
    assert run.tables[0].rows == MRR_BY_MONTH


def test_the_status_says_when_replay_is_paused(running_replica: EmbeddedReplica) -> None:
    assert running_replica.status().replay_paused is False
    with psycopg.connect(running_replica.url(), autocommit=True) as control:
        control.execute("SELECT pg_wal_replay_pause()")
        try:
            assert running_replica.status().replay_paused is True
        finally:
            control.execute("SELECT pg_wal_replay_resume()")
    assert running_replica.status().replay_paused is False
