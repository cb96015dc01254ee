"""`backup create`: pg_dump in directory format, in parallel, with a manifest that proves it.

The table checksums are computed in the very snapshot pg_dump reads (`pg_export_snapshot`), so
they describe exactly what the dump holds even while the application keeps writing.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from afilo_db.backups.cluster import save_cluster_objects
from afilo_db.backups.manifest import (
    BACKUP_ID_FORMAT,
    DUMP_DIRECTORY,
    BackupManifest,
    backups_directory,
    file_checksums,
    save_manifest,
    table_fingerprints,
    user_tables,
)
from afilo_db.db.programs import Progress, no_progress, start_program
from afilo_db.db.urls import database_name
from afilo_db.errors import OperationError, ValidationError

DEFAULT_JOBS = max(2, min(4, os.cpu_count() or 1))
# Uncompressed: the wheel's pg_dump has zlib only, and even gzip level 1 made the dump several
# times slower on two cores for a third of the size (bench/backup.py; the figures in
# docs/measured-choices.md). Compress the backup folder afterwards where space matters more than time; pg_restore
# reads compressed and uncompressed dumps alike.
DUMP_COMPRESSION = "none"


def _new_backup_folder(root: Path) -> tuple[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    while True:
        backup_id = datetime.now(UTC).strftime(BACKUP_ID_FORMAT)
        folder = root / backup_id
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return backup_id, folder


_DUMPED_TABLE = re.compile(rb"dumping contents of table")


def _count_dumped_tables(log: Path) -> int:
    return len(_DUMPED_TABLE.findall(log.read_bytes())) if log.exists() else 0


def create_backup(
    url: str,
    *,
    label: str | None = None,
    directory: Path | None = None,
    jobs: int = DEFAULT_JOBS,
    progress: Progress = no_progress,
) -> BackupManifest:
    """Back up the database at `url` (an owner, un-pooled URL) and return its manifest.

    The seam the migration `apply` step calls before it changes anything.
    """
    if label is not None and not label.strip():
        raise ValidationError({"label": "must not be blank"})
    started = time.monotonic()
    backup_id, folder = _new_backup_folder(backups_directory(directory))
    try:
        manifest = _dump(url, backup_id, folder, label, jobs, progress, started)
        save_cluster_objects(url, folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    save_manifest(manifest, directory)
    return manifest


def _dump(
    url: str,
    backup_id: str,
    folder: Path,
    label: str | None,
    jobs: int,
    progress: Progress,
    started: float,
) -> BackupManifest:
    created_at = datetime.now(UTC)
    log = folder / "pg_dump.log"
    with psycopg.connect(url) as connection:
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        connection.read_only = True
        # Fail loudly rather than checksum only the rows a policy lets us see (pg_dump does so too).
        connection.execute("SET row_security = off")
        snapshot = str(_scalar(connection, "SELECT pg_export_snapshot()"))
        server_version = str(_scalar(connection, "SHOW server_version"))
        revision = None
        if _scalar(connection, "SELECT to_regclass('alembic_version')") is not None:
            revision = _scalar(connection, "SELECT version_num FROM alembic_version")
        total_tables = len(user_tables(connection))
        with log.open("wb") as log_handle:
            dumper = start_program(
                "pg_dump", url,
                "--format=directory", f"--jobs={jobs}", f"--compress={DUMP_COMPRESSION}",
                f"--snapshot={snapshot}", "--verbose",
                f"--file={folder / DUMP_DIRECTORY}",
                stderr=log_handle,
            )  # fmt: skip
            try:
                # While pg_dump's workers copy the data, checksum the same snapshot here.
                tables = table_fingerprints(connection, progress)
                while dumper.poll() is None:
                    progress("dumping tables", _count_dumped_tables(log), total_tables)
                    time.sleep(0.2)
            finally:
                if dumper.poll() is None:
                    dumper.kill()
                    dumper.wait()
        progress("dumping tables", total_tables, total_tables)
    if dumper.returncode != 0:
        messages = [
            line
            for line in log.read_text(errors="replace").splitlines()
            if "error" in line.lower() or "fatal" in line.lower()
        ]
        raise OperationError("pg_dump failed: " + ("\n".join(messages[-10:]) or "no message"))
    log.unlink()
    files = file_checksums(folder / DUMP_DIRECTORY)
    return BackupManifest(
        id=backup_id,
        label=label.strip() if label else None,
        created_at=created_at,
        database=database_name(url),
        server_version=server_version,
        alembic_revision=str(revision) if revision is not None else None,
        size_bytes=sum(path.stat().st_size for path in (folder / DUMP_DIRECTORY).rglob("*")),
        duration_seconds=round(time.monotonic() - started, 3),
        files=files,
        tables=tables,
    )


def _scalar(connection: psycopg.Connection[Any], query: str) -> object:
    row = connection.execute(query).fetchone()
    return row[0] if row else None
