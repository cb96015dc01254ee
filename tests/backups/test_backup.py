"""Backups are proved by restoring them: round trip, damaged files, changed rows, retention."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from afilo_db.backups.create import create_backup
from afilo_db.backups.manifest import (
    BackupManifest,
    backups_to_prune,
    dump_path,
    iter_dump_tables,
    list_backups,
    load_manifest,
    prune_backups,
    save_manifest,
    table_fingerprint,
)
from afilo_db.backups.restore import restore_in_place, restore_into
from afilo_db.backups.verify import verify_backup
from afilo_db.db.databases import drop_database
from afilo_db.db.embedded import EmbeddedServer
from afilo_db.db.programs import list_archive
from afilo_db.db.urls import database_name
from afilo_db.errors import ConflictError, ValidationError
from afilo_db.migrate.revisions import head_revision


def database_state(url: str) -> dict[str, str]:
    """Every table's rows, sorted, hashed: computed independently of the backup's own checksums."""
    with psycopg.connect(url) as connection:
        tables = connection.execute(
            "SELECT schemaname, tablename FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        state = {}
        for schema, name in tables:
            row = connection.execute(
                sql.SQL(
                    "SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
                    " FROM {} AS t"
                ).format(sql.Identifier(schema, name))
            ).fetchone()
            assert row is not None
            state[f"{schema}.{name}"] = str(row[0])
    return state


@pytest.fixture
def restored_name(server: EmbeddedServer) -> Iterator[str]:
    name = f"restored_{os.getpid()}"
    yield name
    drop_database(server.url(), name)


def test_round_trip(seeded_url: str, backups: Path, restored_name: str) -> None:
    backed_up = database_state(seeded_url)
    manifest = create_backup(seeded_url, label="round trip", directory=backups)
    assert manifest.alembic_revision == head_revision()
    with psycopg.connect(seeded_url) as connection:
        assert manifest.server_version == connection.info.parameter_status("server_version")
    assert manifest.tables["public.products"].rows == 60
    assert manifest.size_bytes > 0 and manifest.files and manifest.duration_seconds > 0

    verified = verify_backup(manifest.id, seeded_url, directory=backups)
    assert verified.verification is not None
    assert verified.verification.problems == []
    assert verified.verified and verified.verification.amcheck.startswith("passed (tables only")
    assert load_manifest(manifest.id, backups).verified  # recorded

    with psycopg.connect(seeded_url) as connection:
        connection.execute("UPDATE products SET title = title || ' (changed)'")
        connection.execute("DELETE FROM cart_items")
        connection.commit()
    assert database_state(seeded_url) != backed_up

    result = restore_into(manifest.id, seeded_url, restored_name, directory=backups)
    assert result.revision_state == "current"
    assert database_state(result.url) == backed_up


def test_a_thorough_verify_also_rebuilds_and_checks_the_indexes(
    seeded_url: str, backups: Path
) -> None:
    manifest = create_backup(seeded_url, directory=backups)
    for thorough in (False, True):
        phases: list[str] = []

        def progress(phase: str, _done: int, _total: int, phases: list[str] = phases) -> None:
            if not phases or phases[-1] != phase:
                phases.append(phase)

        verified = verify_backup(
            manifest.id, seeded_url, directory=backups, thorough=thorough, progress=progress
        )
        assert verified.verification is not None and verified.verified
        # The default restores the tables and rows; thorough then the indexes and constraints.
        assert phases.count("restoring") == (2 if thorough else 1), phases
        expected = "passed" if thorough else "passed (tables only; indexes not rebuilt"
        assert verified.verification.amcheck.startswith(expected)


def test_the_dump_is_written_uncompressed(seeded_url: str, backups: Path) -> None:
    """gzip made `backup create` several times slower than pg_dump (bench/backup.py)."""
    manifest = create_backup(seeded_url, directory=backups)
    data_files = [path for path in manifest.files if path.endswith((".dat", ".dat.gz"))]
    assert data_files and all(path.endswith(".dat") for path in data_files)


def test_verify_names_a_damaged_file(seeded_url: str, backups: Path) -> None:
    manifest = create_backup(seeded_url, directory=backups)
    stems = dict(iter_dump_tables(list_archive(dump_path(manifest.id, backups))))
    products_file = next(
        path for path in dump_path(manifest.id, backups).iterdir()
        if stems.get(path.name.split(".")[0]) == "public.products"
    )  # fmt: skip
    data = bytearray(products_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    products_file.write_bytes(bytes(data))

    verified = verify_backup(manifest.id, seeded_url, directory=backups)
    assert verified.verification is not None and not verified.verified
    assert verified.verification.problems == [
        f"file dump/{products_file.name} (data of table public.products): checksum differs from"
        f" the manifest (sha256 {verified.verification.problems[0].split('sha256 ')[1][:12]}…,"
        f" expected {manifest.files['dump/' + products_file.name][:12]}…)"
    ]
    assert not load_manifest(manifest.id, backups).verified


def _rewrite_products_data(manifest: BackupManifest, backups: Path) -> None:
    """Change one row in the dump's products data and make the file checksum match again: the
    files are intact, the content is not what was backed up."""
    stems = {
        table: stem
        for stem, table in iter_dump_tables(list_archive(dump_path(manifest.id, backups)))
    }
    path = dump_path(manifest.id, backups) / f"{stems['public.products']}.dat"
    lines = path.read_text().split("\n")
    lines[0] = (
        lines[0].replace("\tactive\t", "\tarchived\t", 1).replace("\tdraft\t", "\tarchived\t", 1)
    )
    path.write_text("\n".join(lines))
    manifest.files[f"dump/{path.name}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    save_manifest(manifest, backups)


def test_verify_names_a_table_whose_rows_changed(seeded_url: str, backups: Path) -> None:
    manifest = create_backup(seeded_url, directory=backups)
    _rewrite_products_data(manifest, backups)

    verified = verify_backup(manifest.id, seeded_url, directory=backups)
    assert verified.verification is not None
    assert verified.verification.problems == [
        "table public.products: content differs from the backed-up content"
    ]


def test_tables_are_checksummed_by_record_hash_where_their_types_allow(
    seeded_url: str, backups: Path
) -> None:
    manifest = create_backup(seeded_url, directory=backups)
    assert manifest.tables["public.products"].method == "record_hash"
    # tsvector and vector have no extended hash function: the row's text is hashed instead.
    assert manifest.tables["public.knowledge_base"].method == "md5_text"


def test_a_manifest_written_before_record_hashes_still_verifies(
    seeded_url: str, backups: Path
) -> None:
    manifest = create_backup(seeded_url, directory=backups)
    with psycopg.connect(seeded_url) as connection:
        for table in manifest.tables:
            schema, name = table.split(".")
            manifest.tables[table] = table_fingerprint(connection, schema, name, "md5_text")
    written = json.loads(manifest.model_dump_json())
    for fingerprint in written["tables"].values():
        del fingerprint["method"]
    manifest_file = backups / manifest.id / "manifest.json"
    manifest_file.write_text(json.dumps(written))

    verified = verify_backup(manifest.id, seeded_url, directory=backups)
    assert verified.verification is not None
    assert verified.verification.problems == []


def test_verify_names_a_table_with_missing_rows(seeded_url: str, backups: Path) -> None:
    manifest = create_backup(seeded_url, directory=backups)
    manifest.tables["public.cart_items"].rows += 1
    save_manifest(manifest, backups)
    verified = verify_backup(manifest.id, seeded_url, directory=backups)
    assert verified.verification is not None
    rows = manifest.tables["public.cart_items"].rows
    assert verified.verification.problems == [
        f"table public.cart_items: {rows - 1} rows after restore, {rows} backed up"
    ]


def test_verify_drops_its_scratch_database(seeded_url: str, backups: Path) -> None:
    manifest = create_backup(seeded_url, directory=backups)
    verify_backup(manifest.id, seeded_url, directory=backups)
    with psycopg.connect(seeded_url) as connection:
        scratch = connection.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'afilo_verify_%'"
        ).fetchall()
    assert scratch == []


def test_restore_in_place_backs_up_first(seeded_url: str, backups: Path) -> None:
    backed_up = database_state(seeded_url)
    manifest = create_backup(seeded_url, directory=backups)
    with psycopg.connect(seeded_url) as connection:
        connection.execute("DELETE FROM cart_items")
        connection.commit()
    changed = database_state(seeded_url)

    result = restore_in_place(manifest.id, seeded_url, directory=backups)
    assert result.database == database_name(seeded_url)
    assert database_state(seeded_url) == backed_up
    assert result.safety_backup_id is not None
    safety = load_manifest(result.safety_backup_id, backups)
    assert safety.tables["public.cart_items"].rows == 0
    assert changed["public.cart_items"].startswith("0:")


def test_restore_into_an_existing_database_is_refused(seeded_url: str, backups: Path) -> None:
    manifest = create_backup(seeded_url, directory=backups)
    with pytest.raises(ConflictError, match="already exists"):
        restore_into(manifest.id, seeded_url, database_name(seeded_url), directory=backups)
    with pytest.raises(ValidationError, match="into"):
        restore_into(manifest.id, seeded_url, "no-dashes; allowed", directory=backups)


def test_restoring_an_older_revision_says_so(
    empty_database_url: str, backups: Path, restored_name: str
) -> None:
    manifest = create_backup(empty_database_url, directory=backups)
    assert manifest.alembic_revision is None
    result = restore_into(manifest.id, empty_database_url, restored_name, directory=backups)
    assert result.revision_state == "older"


def _manifest(created: datetime, verified: bool) -> BackupManifest:
    return BackupManifest(
        id=created.strftime("%Y%m%dT%H%M%S.%fZ"), label=None, created_at=created, database="afilo",
        server_version="18", alembic_revision=None, size_bytes=1, duration_seconds=1, files={},
        tables={}, verified=verified,
    )  # fmt: skip


def test_prune_rules() -> None:
    now = datetime(2026, 11, 24, tzinfo=UTC)
    old_verified = _manifest(now - timedelta(days=30), verified=True)
    old = _manifest(now - timedelta(days=20), verified=False)
    recent = _manifest(now - timedelta(days=2), verified=False)
    newest = _manifest(now - timedelta(hours=1), verified=False)
    every = [old_verified, old, recent, newest]

    doomed = backups_to_prune(every, keep_last=1, keep_days=None, now=now)
    assert [m.id for m in doomed] == [recent.id, old.id]  # the only verified one stays
    doomed = backups_to_prune(every, keep_last=None, keep_days=7, now=now)
    assert [m.id for m in doomed] == [old.id]
    newest.verified = True
    doomed = backups_to_prune(every, keep_last=1, keep_days=None, now=now)
    assert [m.id for m in doomed] == [recent.id, old.id, old_verified.id]


def test_prune_deletes_backups(database_url: str, backups: Path) -> None:
    first = create_backup(database_url, directory=backups)
    verify_backup(first.id, database_url, directory=backups)
    create_backup(database_url, directory=backups)
    newest = create_backup(database_url, directory=backups)
    removed = prune_backups(keep_last=1, keep_days=None, directory=backups)
    assert len(removed) == 1
    assert [m.id for m in list_backups(backups)] == [newest.id, first.id]
    with pytest.raises(ValidationError, match="keep"):
        prune_backups(keep_last=None, keep_days=None, directory=backups)
    assert json.loads((backups / first.id / "manifest.json").read_text())["verified"] is True
