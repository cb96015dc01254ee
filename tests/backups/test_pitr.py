"""Point-in-time recovery of an embedded server of the test's own (archiving needs a restart)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psycopg
import psycopg.sql
import pytest

from afilo_db.backups import pitr
from afilo_db.db.embedded import EmbeddedServer
from afilo_db.errors import ConflictError, NotFoundError, ValidationError

pytestmark = pytest.mark.embedded_only("point-in-time recovery archives the embedded server's WAL")

# Durability off to be quick; full_page_writes stays on, as base backups need it.
SETTINGS = {"fsync": "off", "synchronous_commit": "off"}


def start_without_flushes(home: Path) -> EmbeddedServer:
    """A server of the test's own with durability off, written into its postgresql.auto.conf
    as well: base backups copy that file, so the servers recovered from them (started with no
    settings of the test's, by the library or by `afilo-db`) skip the flushes too."""
    server = EmbeddedServer(home)
    server.start(settings=SETTINGS)
    with psycopg.connect(server.url(), autocommit=True) as connection:
        for name, value in SETTINGS.items():
            connection.execute(
                psycopg.sql.SQL("ALTER SYSTEM SET {} = {}").format(
                    psycopg.sql.Identifier(name), psycopg.sql.Literal(value)
                )
            )
    return server


@pytest.fixture
def source(tmp_path: Path) -> Iterator[EmbeddedServer]:
    server = start_without_flushes(tmp_path / "source")
    yield server
    server.destroy()


def server_now(connection: psycopg.Connection[tuple[object, ...]]) -> datetime:
    row = connection.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None and isinstance(row[0], datetime)
    return row[0]


def marks_around_a_moment(url: str) -> datetime:
    """A table `marks` with rows 1-5 written before the moment returned and 6-10 after it."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TABLE marks (n int)")
        connection.execute("INSERT INTO marks SELECT generate_series(1, 5)")
        moment = server_now(connection)
        time.sleep(0.05)
        connection.execute("INSERT INTO marks SELECT generate_series(6, 10)")
    return moment


def rows(url: str) -> list[int]:
    with psycopg.connect(url) as connection:
        return [int(r[0]) for r in connection.execute("SELECT n FROM marks ORDER BY n")]


def test_recover_to_a_point_in_time(source: EmbeddedServer, tmp_path: Path) -> None:
    with pytest.raises(ConflictError, match="pitr enable"):
        pitr.take_base_backup(source)
    base = pitr.enable(source)
    assert pitr.archive_status(source).enabled
    assert [b.id for b in pitr.list_base_backups(source)] == [base.id]

    target = marks_around_a_moment(source.url())
    # Every commit up to now into the archive (recovery would also do this itself).
    pitr.archive_current_wal(source)

    recovered = pitr.recover_to_directory(source, target, tmp_path / "recovered")
    try:
        assert rows(recovered.url) == [1, 2, 3, 4, 5]
        assert rows(source.url()) == list(range(1, 11))
        with psycopg.connect(recovered.url) as connection:
            row = connection.execute("SELECT pg_is_in_recovery(), current_setting('archive_mode')")
            assert row.fetchone() == (False, "off")
    finally:
        EmbeddedServer(recovered.home).destroy()

    with pytest.raises(NotFoundError, match="no base backup finished before"):
        pitr.recover_to_directory(source, base.started_at, tmp_path / "too-early")

    in_place = pitr.recover_in_place(source, target)
    assert rows(source.url()) == [1, 2, 3, 4, 5]
    assert in_place.replaced_data_directory is not None
    assert (in_place.replaced_data_directory / "PG_VERSION").exists()
    # Archiving goes on, on a new timeline: a later recovery still works, even from the stopped
    # server, replaying the first timeline up to the fork and the new one after it.
    assert pitr.archive_status(source).enabled
    with psycopg.connect(source.url(), autocommit=True) as connection:
        connection.execute("INSERT INTO marks VALUES (6)")
        on_the_new_timeline = server_now(connection)
        time.sleep(0.05)
        connection.execute("INSERT INTO marks VALUES (7)")
    pitr.archive_current_wal(source)
    source.stop()
    later = pitr.recover_to_directory(source, on_the_new_timeline, tmp_path / "later")
    try:
        assert rows(later.url) == [1, 2, 3, 4, 5, 6]
    finally:
        EmbeddedServer(later.home).destroy()


def test_target_time_needs_a_zone() -> None:
    assert pitr.parse_target_time("2026-11-24 10:15:00+00").utcoffset() is not None
    with pytest.raises(ValidationError, match="time zone"):
        pitr.parse_target_time("2026-11-24 10:15:00")
    with pytest.raises(ValidationError, match="to_time"):
        pitr.parse_target_time("yesterday")
