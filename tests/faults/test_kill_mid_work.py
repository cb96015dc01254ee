"""kill -9 of the client and of the server in the middle of seed, import, apply, backup and
restore: the command ends in one line with a documented exit code (when it lives to say so), and
the data is either exactly as before or complete, compared table by table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from afilo_db.backups.create import create_backup
from afilo_db.backups.manifest import backup_path, file_problems, list_backups
from afilo_db.db.embedded import EmbeddedServer
from afilo_db.migrate.log import Step, record
from afilo_db.migrate.revisions import pending_revisions, revision_checksum
from tests.faults.conftest import (
    Command,
    assert_one_line,
    ensure_running,
    kill_server,
    seed_some,
    start,
    tables,
    wait_for_work,
    write_catalog,
)
from tests.migrate.test_migration_checklist import write_revision

pytestmark = pytest.mark.embedded_only("kill -9 of a server of its own (embedded)")

Victim = Callable[[EmbeddedServer, Command], None]


def kill_the_client(_server: EmbeddedServer, command: Command) -> None:
    command.kill()


def kill_the_server(server: EmbeddedServer, command: Command) -> None:
    kill_server(server)
    code, stderr = command.finish()
    # The connection lost (6), or a program of PostgreSQL's that failed with it (1).
    assert_one_line(code, stderr, {1, 6})


VICTIMS = {"client": kill_the_client, "server": kill_the_server}


@pytest.mark.parametrize("victim", list(VICTIMS))
def test_seed(crash_server: EmbeddedServer, fault_db: str, victim: str) -> None:
    before = tables(fault_db)
    command = start({"DATABASE_URL": fault_db}, "db", "seed", "--scale", "4000")
    wait_for_work(fault_db, "COPY product_variants%", command)
    VICTIMS[victim](crash_server, command)
    ensure_running(crash_server)
    assert tables(fault_db) == before


@pytest.mark.parametrize("victim", list(VICTIMS))
def test_import(crash_server: EmbeddedServer, fault_db: str, tmp_path: Path, victim: str) -> None:
    seed_some(fault_db, 50)
    before = tables(fault_db)
    catalog = write_catalog(tmp_path / "catalog.jsonl", 20_000)
    command = start({"DATABASE_URL": fault_db}, "catalog", "import", str(catalog))
    wait_for_work(fault_db, "%COPY%", command)
    VICTIMS[victim](crash_server, command)
    ensure_running(crash_server)
    assert tables(fault_db) == before


@pytest.mark.parametrize("victim", list(VICTIMS))
def test_apply(
    crash_server: EmbeddedServer,
    fault_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    victim: str,
) -> None:
    seed_some(fault_db, 50)
    versions = tmp_path / "versions"
    monkeypatch.setenv("AFILO_MIGRATIONS_DIR", str(versions))
    from afilo_db.config import get_settings

    get_settings.cache_clear()
    revision = "0099_slow_change"
    write_revision(
        versions,
        revision,
        "    op.execute(\"UPDATE products SET title = title || ' (new)'\")\n"
        '    op.execute("SELECT pg_sleep(5)")',
    )
    for step in (Step.REVIEWED, Step.TESTED):
        record(fault_db, revision, step, revision_checksum(revision))
    before = tables(fault_db)
    env = {"DATABASE_URL": fault_db, "AFILO_MIGRATIONS_DIR": str(versions),
           "AFILO_HOME": str(tmp_path / "home")}  # fmt: skip
    command = start(env, "migrate", "apply")
    wait_for_work(fault_db, "SELECT pg_sleep%", command)
    VICTIMS[victim](crash_server, command)
    ensure_running(crash_server)
    # The migration log gained its "backed up" record (and, with the client alive, "failed").
    log = "afilo_ops.migration_log"
    after = {name: value for name, value in tables(fault_db).items() if name != log}
    assert after == {name: value for name, value in before.items() if name != log}
    assert pending_revisions(fault_db) == [revision]
    get_settings.cache_clear()


@pytest.mark.parametrize("victim", list(VICTIMS))
def test_backup(
    crash_server: EmbeddedServer, large_fault_db: str, tmp_path: Path, victim: str
) -> None:
    before = tables(large_fault_db)
    folder = tmp_path / "backups"
    command = start({"DATABASE_URL": large_fault_db}, "backup", "create", "--dir", str(folder))
    # The dump's COPY, or the table checksums taken beside it: either is mid-backup, and a
    # small database's COPYs can be over between two looks.
    wait_for_work(large_fault_db, ("COPY %", "%hash_record_extended%"), command)
    VICTIMS[victim](crash_server, command)
    ensure_running(crash_server)
    assert tables(large_fault_db) == before
    # No backup is listed half-made: whatever is listed is whole.
    for manifest in list_backups(folder):
        assert file_problems(manifest, backup_path(manifest.id, folder)) == []


@pytest.mark.parametrize("victim", list(VICTIMS))
def test_restore_in_place(
    crash_server: EmbeddedServer, large_fault_db: str, tmp_path: Path, victim: str
) -> None:
    folder = tmp_path / "backups"
    backed_up = tables(large_fault_db)
    manifest = create_backup(large_fault_db, directory=folder)
    with psycopg.connect(large_fault_db) as connection:
        connection.execute("DELETE FROM events")
        connection.execute("UPDATE products SET title = title || ' (changed)'")
    before = tables(large_fault_db)
    command = start(
        {"DATABASE_URL": large_fault_db}, "restore", manifest.id, "--in-place", "--yes",
        "--dir", str(folder),
    )  # fmt: skip
    wait_for_work(crash_server.url("postgres"), "COPY % FROM stdin%", command)
    VICTIMS[victim](crash_server, command)
    ensure_running(crash_server)
    assert tables(large_fault_db) in (before, backed_up)
