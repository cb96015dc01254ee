"""Proving a backup: its files are intact, it restores, and the restored data is what was backed up.

A verify checks every file's sha256 against the manifest, restores the dump into a scratch
database on the same server, compares every table's row count and content checksum with the
manifest, runs pg_amcheck where the amcheck extension can be installed, records the result in
the manifest and always drops the scratch database. What each step guarantees:

- file checksums: the backup holds the very bytes written when it was taken;
- restoring the tables and their rows (pg_restore's pre-data and data sections), then comparing:
  every table restores, with exactly the rows the database held in the dump's snapshot;
- pg_amcheck of the restored tables: their heap pages (and TOAST) are sound on this server;
- `thorough` only: restoring the post-data section too (indexes, primary keys, unique, foreign
  key, check and exclusion constraints, triggers) proves that a full restore also completes its
  last step, and pg_amcheck --heapallindexed then checks every B-tree index against the heap.
  These indexes are built by the restore, not stored in the backup (a logical dump holds only
  their definitions), so the default skips rebuilding them: it is most of a verify's time, and
  the comparison has already proved the data they would index.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from afilo_db.backups.create import DEFAULT_JOBS
from afilo_db.backups.manifest import (
    BackupManifest,
    TableFingerprint,
    Verification,
    backup_path,
    dump_path,
    file_problems,
    load_manifest,
    save_manifest,
    table_fingerprints_in_parallel,
    user_tables,
)
from afilo_db.backups.restore import restore_archive
from afilo_db.db.databases import create_database, drop_database
from afilo_db.db.programs import (
    Progress,
    connection_arguments,
    no_progress,
    pg_binary,
)
from afilo_db.errors import OperationError


def table_problems(
    expected: dict[str, TableFingerprint], restored: dict[str, TableFingerprint]
) -> list[str]:
    problems = []
    for table, fingerprint in expected.items():
        actual = restored.get(table)
        if actual is None:
            problems.append(f"table {table}: missing after restore")
        elif actual.rows != fingerprint.rows:
            problems.append(
                f"table {table}: {actual.rows} rows after restore, {fingerprint.rows} backed up"
            )
        elif actual.checksum != fingerprint.checksum:
            problems.append(f"table {table}: content differs from the backed-up content")
    problems += [
        f"table {table}: restored but not in the manifest"
        for table in restored
        if table not in expected
    ]
    return problems


def run_amcheck(url: str, jobs: int) -> tuple[str, list[str]]:
    """(summary, problems): pg_amcheck on every table and B-tree index of the database."""
    try:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
    except psycopg.Error as exc:
        return f"not run: amcheck is not available here ({exc.diag.message_primary})", []
    conninfo, environment = connection_arguments(url)
    completed = subprocess.run(
        [str(pg_binary("pg_amcheck")), f"--jobs={jobs}", "--heapallindexed", conninfo],
        env=environment, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if completed.returncode == 0:
        return "passed", []
    report = (completed.stdout + completed.stderr).strip().splitlines()
    return "found corruption", [f"amcheck: {line}" for line in report[:20]]


def _skip_the_write_ahead_log(url: str) -> None:
    """Make every table of the scratch database unlogged before its rows are loaded: the copy is
    thrown away, so logging its rows for crash recovery only cost time (most of the restore)."""
    with psycopg.connect(url, autocommit=True) as connection:
        for schema, name in user_tables(connection):
            connection.execute(
                sql.SQL("ALTER TABLE {} SET UNLOGGED").format(sql.Identifier(schema, name))
            )


def verify_backup(
    backup_id: str,
    url: str,
    *,
    directory: Path | None = None,
    jobs: int = DEFAULT_JOBS,
    thorough: bool = False,
    progress: Progress = no_progress,
) -> BackupManifest:
    """Verify a backup by restoring it on the server of `url`; the manifest with the result.

    `thorough`: also rebuild the indexes and constraints and amcheck them (see the module's
    docstring for what each choice proves).
    """
    started = time.monotonic()
    manifest = load_manifest(backup_id, directory)
    progress("checking files", 0, len(manifest.files))
    problems = file_problems(manifest, backup_path(backup_id, directory))
    progress("checking files", len(manifest.files), len(manifest.files))
    amcheck = "not run: the files are damaged"
    # Damaged files make pg_restore fail in ways that say less than the checksums already did.
    if not problems:
        scratch = f"afilo_verify_{secrets.token_hex(6)}"
        scratch_url = create_database(url, scratch)
        try:
            dump = dump_path(backup_id, directory)
            restore_archive(dump, scratch_url, jobs=jobs, progress=progress, sections=("pre-data",))
            _skip_the_write_ahead_log(scratch_url)
            restore_archive(dump, scratch_url, jobs=jobs, progress=progress, sections=("data",))
            methods = {table: found.method for table, found in manifest.tables.items()}
            restored = table_fingerprints_in_parallel(scratch_url, jobs, progress, methods)
            problems += table_problems(manifest.tables, restored)
            if thorough:
                restore_archive(
                    dump, scratch_url, jobs=jobs, progress=progress, sections=("post-data",)
                )
            progress("amcheck", 0, 1)
            amcheck, corruption = run_amcheck(scratch_url, jobs)
            if not thorough and amcheck == "passed":
                amcheck = "passed (tables only; indexes not rebuilt without --thorough)"
            problems += corruption
            progress("amcheck", 1, 1)
        except OperationError as exc:
            problems.append(f"restore failed: {exc}")
            amcheck = "not run: the restore failed"
        finally:
            drop_database(url, scratch)
    manifest.verification = Verification(
        verified_at=datetime.now(UTC),
        ok=not problems,
        problems=problems,
        amcheck=amcheck,
        duration_seconds=round(time.monotonic() - started, 3),
    )
    manifest.verified = not problems
    save_manifest(manifest, directory)
    return manifest
