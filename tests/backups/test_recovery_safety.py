"""Issue 14 item 5: recovery paths that cannot make things worse."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from afilo_db.backups import pitr
from afilo_db.backups.create import create_backup
from afilo_db.backups.manifest import backup_path, load_manifest, save_manifest
from afilo_db.backups.restore import restore_in_place, restore_into
from afilo_db.db.databases import drop_database
from afilo_db.db.embedded import EmbeddedServer
from afilo_db.errors import ConflictError, OperationError, ValidationError
from tests.backups.test_backup import database_state
from tests.backups.test_pitr import marks_around_a_moment, rows, server_now, start_without_flushes

pytestmark = pytest.mark.embedded_only("point-in-time recovery archives the embedded server's WAL")


def test_a_backup_that_fails_its_check_is_not_restored_without_force(
    seeded_url: str,
    backups: Path,
) -> None:
    manifest = create_backup(seeded_url, directory=backups)
    before = database_state(seeded_url)
    damaged = next(path for path in (backup_path(manifest.id, backups) / "dump").glob("*.dat"))
    damaged.write_bytes(damaged.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(ConflictError, match="--force"):
        restore_into(manifest.id, seeded_url, "never_made", directory=backups)
    with pytest.raises(ConflictError, match="--force"):
        restore_in_place(manifest.id, seeded_url, directory=backups)
    assert database_state(seeded_url) == before


def test_a_backup_marked_failed_by_verify_is_refused(
    seeded_url: str,
    backups: Path,
) -> None:
    from afilo_db.backups.manifest import Verification

    manifest = create_backup(seeded_url, directory=backups)
    manifest.verification = Verification(
        verified_at=manifest.created_at, ok=False, problems=["table x: rows differ"],
        amcheck="passed", duration_seconds=1.0,
    )  # fmt: skip
    save_manifest(manifest, backups)
    with pytest.raises(ConflictError, match="rows differ"):
        restore_into(manifest.id, seeded_url, "never_made", directory=backups)
    forced = restore_into(manifest.id, seeded_url, "forced_copy", directory=backups, force=True)
    drop_database(seeded_url, forced.database)
    assert load_manifest(manifest.id, backups).verification is not None


def test_point_in_time_recovery_fails_safely(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = start_without_flushes(tmp_path / "source")
    try:
        pitr.enable(source)
        assert "sync" in pitr.archive_command(source) and "mv" in pitr.archive_command(source)
        target = marks_around_a_moment(source.url())

        # A moment the archive does not reach is refused at once, with nothing created.
        started = time.monotonic()
        with pytest.raises(ValidationError, match="beyond the archived WAL"):
            pitr.recover_to_directory(source, target + timedelta(hours=1), tmp_path / "future")
        assert time.monotonic() - started < 10
        assert not (tmp_path / "future").exists()
        archived = pitr.wal_archive_directory(source)
        assert not list(archived.glob(".*.partial"))

        # A recovery that fails half-way leaves no directory behind.
        promote = pitr._wait_until_promoted

        def fail(_server: EmbeddedServer) -> None:
            raise OperationError("recovery failed (injected)")

        monkeypatch.setattr(pitr, "_wait_until_promoted", fail)
        with pytest.raises(OperationError, match="injected"):
            pitr.recover_to_directory(source, target, tmp_path / "half")
        assert not (tmp_path / "half").exists()

        # In place: the data directory moved aside comes back, and the server runs as before.
        # The failure comes after the promotion, so the abandoned attempt leaves a timeline of its
        # own in the archive; recoveries later must follow the server's history, not that one.
        def fail_once_promoted(server: EmbeddedServer) -> None:
            promote(server)
            raise OperationError("recovery failed (injected)")

        monkeypatch.setattr(pitr, "_wait_until_promoted", fail_once_promoted)
        with pytest.raises(OperationError, match="injected"):
            pitr.recover_in_place(source, target)
        assert (archived / "00000002.history").exists()
        assert source.status().running
        assert rows(source.url()) == list(range(1, 11))
        assert not list(source.home.glob("pgdata.before-recovery-*"))

        # Prune: older base backups go, and the WAL only they could replay.
        monkeypatch.undo()
        pitr.archive_current_wal(source)
        newest = pitr.take_base_backup(source)
        pitr.archive_current_wal(source)
        segments = sorted(path.name for path in archived.glob("[0-9A-F]" * 24))
        planned = pitr.prune(source, keep_last=1, dry_run=True)
        assert planned.kept == [newest.id] and len(planned.deleted) == 1
        assert sorted(path.name for path in archived.glob("[0-9A-F]" * 24)) == segments
        plan = pitr.prune(source, keep_last=1)
        assert [b.id for b in pitr.list_base_backups(source)] == [newest.id]
        left = sorted(path.name for path in archived.glob("[0-9A-F]" * 24))
        assert plan.oldest_kept_segment is not None
        assert left and left[0] >= plan.oldest_kept_segment and len(left) < len(segments)
        # What is kept still recovers.
        with psycopg.connect(source.url(), autocommit=True) as connection:
            connection.execute("INSERT INTO marks VALUES (11)")
            later = server_now(connection)
        recovered = pitr.recover_to_directory(source, later, tmp_path / "after-prune")
        try:
            assert rows(recovered.url) == list(range(1, 12))
        finally:
            EmbeddedServer(recovered.home).destroy()
    finally:
        source.destroy()


def test_in_place_restore_brings_back_roles_and_database_settings(
    seeded_url: str, backups: Path
) -> None:
    from afilo_db.db.urls import database_name

    name = database_name(seeded_url)
    role = f"probe_reader_{name[-12:]}"
    with psycopg.connect(seeded_url, autocommit=True) as connection:
        connection.execute(f"CREATE ROLE {role} NOLOGIN CONNECTION LIMIT 3")
        connection.execute(f"ALTER DATABASE {name} SET work_mem = '7MB'")
        connection.execute(f"ALTER ROLE {role} IN DATABASE {name} SET search_path = public")
    manifest = create_backup(seeded_url, directory=backups)
    roles = (backup_path(manifest.id, backups) / "roles.sql").read_text()
    assert role in roles and "PASSWORD" not in roles.upper().replace("NO_ROLE_PASSWORDS", "")
    with psycopg.connect(seeded_url, autocommit=True) as connection:
        connection.execute(f"ALTER DATABASE {name} RESET work_mem")
        connection.execute(f"ALTER ROLE {role} IN DATABASE {name} RESET search_path")
        connection.execute(f"DROP ROLE {role}")
    try:
        result = restore_in_place(manifest.id, seeded_url, directory=backups)
        assert result.notes == ()
        with psycopg.connect(seeded_url) as connection:
            assert connection.execute("SHOW work_mem").fetchone() == ("7MB",)
            limit = connection.execute(
                "SELECT rolconnlimit FROM pg_roles WHERE rolname = %s", (role,)
            ).fetchone()
            assert limit == (3,)
            per_role = connection.execute(
                "SELECT setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole"
                " WHERE r.rolname = %s",
                (role,),
            ).fetchone()
            assert per_role == (["search_path=public"],)
    finally:
        with psycopg.connect(seeded_url, autocommit=True) as connection:
            connection.execute(f"DROP OWNED BY {role}")
            connection.execute(f"ALTER ROLE {role} IN DATABASE {name} RESET ALL")
            connection.execute(f"DROP ROLE IF EXISTS {role}")
