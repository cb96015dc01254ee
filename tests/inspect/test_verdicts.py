"""Each bad condition made on the embedded server, its verdict seen, then gone after the fix."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import psycopg
import pytest

from afilo_db.db.embedded import EmbeddedServer
from afilo_db.db.replica import EmbeddedReplica
from afilo_db.db.urls import database_name
from afilo_db.inspect import verdicts
from afilo_db.inspect.queries import QUERIES, Inspector, inspecting
from afilo_db.inspect.verdicts import Finding, Thresholds
from tests.inspect.conftest import QUICK, TIMEOUT_MS, flush_statistics

Session = psycopg.Connection[tuple[object, ...]]


def bad(findings: list[Finding]) -> list[Finding]:
    return [finding for finding in findings if finding.status == "bad"]


def subjects(findings: list[Finding]) -> set[str]:
    return {finding.subject for finding in bad(findings)}


def eventually(condition: Callable[[], list[Finding]], timeout: float = 15) -> list[Finding]:
    """The first non-empty answer of `condition`, polled (other sessions' states take a moment
    to show)."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_an_unused_index_on_a_table_read_often(inspector: Inspector, session: Session) -> None:
    session.execute("CREATE TABLE readings (id int PRIMARY KEY, sensor int, value int)")
    session.execute("CREATE INDEX ix_readings_sensor ON readings (sensor)")
    session.execute("INSERT INTO readings SELECT n, n % 10, n FROM generate_series(1, 1000) n")
    for _ in range(QUICK.min_table_scans):
        session.execute("SELECT count(*) FROM readings WHERE value > 10")
    flush_statistics(session)
    findings = verdicts.unused_indexes(inspector, QUICK)
    assert subjects(findings) == {"ix_readings_sensor"}
    assert "readings" in bad(findings)[0].detail
    # The primary key enforces uniqueness: needed however rarely read, never judged.
    assert "readings_pkey" not in subjects(findings)
    # A table too small for an index to beat a scan: its indexes are not judged.
    assert bad(verdicts.unused_indexes(inspector, replace(QUICK, min_table_rows=10_000))) == []

    # The fix: the read it exists for uses it.
    session.execute("SET enable_seqscan = off")
    session.execute("SELECT count(*) FROM readings WHERE sensor = 3")
    flush_statistics(session)
    assert bad(verdicts.unused_indexes(inspector, QUICK)) == []


def test_an_unused_index_is_not_judged_before_its_table_is_read(
    inspector: Inspector, session: Session
) -> None:
    session.execute("CREATE TABLE quiet (id int PRIMARY KEY, sensor int)")
    session.execute("CREATE INDEX ix_quiet_sensor ON quiet (sensor)")
    session.execute("SELECT count(*) FROM quiet")
    flush_statistics(session)
    assert "ix_quiet_sensor" not in subjects(verdicts.unused_indexes(inspector, QUICK))


def test_a_bloated_table(inspector: Inspector, session: Session) -> None:
    # Autovacuum off: it must not clean up before the check looks.
    session.execute("CREATE TABLE churned (id int) WITH (autovacuum_enabled = false)")
    session.execute("INSERT INTO churned SELECT generate_series(1, 1000)")
    session.execute("DELETE FROM churned WHERE id <= 300")
    flush_statistics(session)
    findings = verdicts.bloat(inspector, QUICK)
    assert subjects(findings) == {"public.churned"}
    assert "30%" in bad(findings)[0].detail and "20%" in bad(findings)[0].detail

    session.execute("VACUUM churned")
    assert bad(verdicts.bloat(inspector, QUICK)) == []


def test_a_long_transaction(inspector: Inspector, session: Session) -> None:
    # The verdict covers the whole server: on a shared one (AFILO_TEST_DATABASE_URL) the other
    # test processes' transactions show too, so only this session's are counted.
    pid = session.info.backend_pid

    def this_sessions() -> list[Finding]:
        findings = verdicts.long_transactions(inspector, QUICK)
        return [finding for finding in bad(findings) if finding.subject == f"pid {pid}"]

    assert this_sessions() == []
    with session.transaction():
        session.execute("SELECT 1")
        time.sleep(QUICK.transaction_max_seconds + 0.2)
        findings = this_sessions()
        assert len(findings) == 1 and "idle in transaction" in findings[0].detail
    assert this_sessions() == []


def test_a_blocking_lock(inspector: Inspector, inspected_url: str, session: Session) -> None:
    session.execute("CREATE TABLE stock (id int PRIMARY KEY, units int)")
    session.execute("INSERT INTO stock VALUES (1, 10)")
    with psycopg.connect(inspected_url) as waiting:
        waiting_pid = waiting.info.backend_pid
        with session.transaction():
            session.execute("UPDATE stock SET units = units - 1 WHERE id = 1")
            blocked = threading.Thread(
                target=lambda: waiting.execute("UPDATE stock SET units = 0 WHERE id = 1")
            )
            blocked.start()
            findings = eventually(lambda: bad(verdicts.blocked_sessions(inspector, QUICK)))
            assert [finding.subject for finding in findings] == [f"pid {waiting_pid}"]
            assert str(session.info.backend_pid) in findings[0].detail
        blocked.join(timeout=15)
        waiting.commit()
    assert bad(verdicts.blocked_sessions(inspector, QUICK)) == []


@pytest.fixture(scope="module")
def replica(server: EmbeddedServer) -> Iterator[EmbeddedReplica]:
    replica = EmbeddedReplica(server)
    replica.start()
    yield replica
    replica.destroy()


def _replica_database_url(replica: EmbeddedReplica, primary_url: str) -> str:
    """The replica's URL of the primary's database, once it has replayed everything the primary
    wrote until now (the database's creation, and what the test made in it since)."""
    with psycopg.connect(primary_url, autocommit=True) as primary:
        # The insert position, not pg_current_wal_lsn(): with synchronous_commit off (the test
        # server's) a commit can sit in WAL buffers behind the write position, and a replica that
        # replayed up to that position may not have seen it yet.
        written = primary.execute("SELECT pg_current_wal_insert_lsn()").fetchone()
    url = replica.url(database_name(primary_url))
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2, autocommit=True) as standby:
                replayed = standby.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s", written
                ).fetchone()
            if replayed == (True,):
                return url
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise TimeoutError("the replica did not replay the primary's writes in 30 s")
        time.sleep(0.1)


@pytest.mark.embedded_only("the replica is the embedded server's standby, run by its own binaries")
def test_a_lagging_replica(replica: EmbeddedReplica, inspected_url: str, session: Session) -> None:
    url = _replica_database_url(replica, inspected_url)
    assert bad(verdicts.replica_lag(url, QUICK)) == []
    with psycopg.connect(url, autocommit=True) as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
        try:
            session.execute("CREATE TABLE written_meanwhile (id int)")
            time.sleep(QUICK.replica_max_lag_seconds + 0.5)
            findings = eventually(lambda: bad(verdicts.replica_lag(url, QUICK)))
            assert [finding.subject for finding in findings] == ["replica"]
            assert "REPLICA_MAX_LAG_SECONDS" in findings[0].detail
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")
    caught_up = eventually(
        lambda: [f for f in verdicts.replica_lag(url, QUICK) if f.status == "ok"]
    )
    assert caught_up and "0.0 s behind" in caught_up[0].detail


@pytest.mark.embedded_only("the replica is the embedded server's standby, run by its own binaries")
def test_every_query_meant_for_a_standby_runs_on_the_replica(
    replica: EmbeddedReplica, inspected_url: str
) -> None:
    url = _replica_database_url(replica, inspected_url)
    with inspecting(url, TIMEOUT_MS) as on_replica:
        assert on_replica.facts.in_recovery and on_replica.facts.statements_ready
        for query in QUERIES:
            if query.on_replica:
                assert on_replica.run(query).columns, query.name


def test_an_unreachable_replica_is_bad(database_url: str) -> None:
    unreachable = "postgresql://nobody@127.0.0.1:1/nothing"
    findings = verdicts.replica_lag(unreachable, QUICK)
    assert [finding.status for finding in findings] == ["bad"]
    assert "unreachable" in findings[0].detail


def test_thresholds_come_from_the_settings() -> None:
    from afilo_db.config import Settings

    settings = Settings(
        afilo_inspect_transaction_max_minutes=2, replica_max_lag_seconds=7,
        afilo_inspect_cache_hit_min=0.95,
    )  # fmt: skip
    thresholds = Thresholds.from_settings(settings)
    assert thresholds.transaction_max_seconds == 120
    assert thresholds.replica_max_lag_seconds == 7
    assert thresholds.cache_hit_min == 0.95
