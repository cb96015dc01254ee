"""The backup manifest: what a backup holds and the proof of it.

A backup is a folder `<backups>/<id>/` holding `dump/` (what pg_dump wrote) and `manifest.json`:
the sha256 of every file, the row count and a content checksum of every table, the Alembic
revision, the server version, the size and the duration, and the result of the last verification.
Listing and pruning backups read only manifests.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql
from pydantic import BaseModel

from afilo_db.config import get_settings
from afilo_db.db.programs import Progress, list_archive, no_progress
from afilo_db.errors import NotFoundError, OperationError, ValidationError

MANIFEST_FILE = "manifest.json"
DUMP_DIRECTORY = "dump"
BACKUP_ID_FORMAT = "%Y%m%dT%H%M%S.%fZ"

# Order-independent, so no sort is needed: the sum of a 64-bit hash of every row. Equal content
# gives an equal sum whatever the physical order; a changed row changes it.
# - record_hash: each column hashed by its type's own extended hash function (hash_record_extended,
#   no conversion to text, which is most of md5_text's cost: docs/measured-choices.md). Rows
#   equal under their types' equality hash alike.
# - md5_text: md5 of the row's text form. For a table with a column type that has no extended hash
#   function (tsvector, pgvector's vector), and in manifests written before record_hash existed.
FingerprintMethod = Literal["record_hash", "md5_text"]
FINGERPRINT_QUERIES: dict[FingerprintMethod, str] = {
    "record_hash": (
        "SELECT count(*), coalesce(sum(hash_record_extended(t, 0)), 0)::text FROM ONLY {table} AS t"
    ),
    "md5_text": (
        "SELECT count(*), coalesce(sum(('x' || left(md5(t::text), 16))::bit(64)::bigint), 0)::text"
        " FROM ONLY {table} AS t"
    ),
}
# Tables whose data pg_dump writes: ordinary tables and partitions, outside the system schemas
# and not owned by an extension.
USER_TABLES_UNORDERED = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
"""
USER_TABLES = USER_TABLES_UNORDERED + "ORDER BY 1, 2"
USER_TABLES_LARGEST_FIRST = USER_TABLES_UNORDERED + "ORDER BY pg_table_size(c.oid) DESC, 1, 2"


class TableFingerprint(BaseModel):
    rows: int
    checksum: str
    method: FingerprintMethod = "md5_text"


class Verification(BaseModel):
    verified_at: datetime
    ok: bool
    problems: list[str]
    amcheck: str
    """"passed", "found corruption", or why it did not run."""
    duration_seconds: float


class BackupManifest(BaseModel):
    id: str
    label: str | None
    created_at: datetime
    database: str
    server_version: str
    alembic_revision: str | None
    size_bytes: int
    duration_seconds: float
    files: dict[str, str]
    """Path relative to the backup folder -> sha256."""
    tables: dict[str, TableFingerprint]
    """schema.table -> rows and content checksum."""
    verified: bool = False
    verification: Verification | None = None


def backups_directory(directory: Path | None = None) -> Path:
    return directory if directory is not None else get_settings().home / "backups"


def backup_path(backup_id: str, directory: Path | None = None) -> Path:
    return backups_directory(directory) / backup_id


def dump_path(backup_id: str, directory: Path | None = None) -> Path:
    return backup_path(backup_id, directory) / DUMP_DIRECTORY


def user_tables(connection: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return [(str(schema), str(name)) for schema, name in connection.execute(USER_TABLES)]


def _fingerprint_by(
    connection: psycopg.Connection[Any], schema: str, name: str, method: FingerprintMethod
) -> TableFingerprint:
    query = sql.SQL(FINGERPRINT_QUERIES[method]).format(table=sql.Identifier(schema, name))
    # A savepoint: a method the table's types refuse must not end the caller's snapshot.
    with connection.transaction():
        row = connection.execute(query).fetchone()
    assert row is not None
    return TableFingerprint(rows=int(row[0]), checksum=str(row[1]), method=method)


def table_fingerprint(
    connection: psycopg.Connection[Any], schema: str, name: str, method: FingerprintMethod | None
) -> TableFingerprint:
    """Row count and content checksum of one table, by `method`, or by the fastest method the
    table's column types allow when None."""
    if method is None:
        try:
            return _fingerprint_by(connection, schema, name, "record_hash")
        except psycopg.errors.UndefinedFunction:
            method = "md5_text"
    return _fingerprint_by(connection, schema, name, method)


def table_fingerprints(
    connection: psycopg.Connection[Any],
    progress: Progress = no_progress,
    methods: dict[str, FingerprintMethod] | None = None,
) -> dict[str, TableFingerprint]:
    """Row count and content checksum of every table, as seen by the connection's transaction;
    `methods`: the method to use for a table (schema.table), as a manifest recorded it."""
    recorded = methods or {}
    tables = user_tables(connection)
    fingerprints: dict[str, TableFingerprint] = {}
    for done, (schema, name) in enumerate(tables, start=1):
        key = f"{schema}.{name}"
        fingerprints[key] = table_fingerprint(connection, schema, name, recorded.get(key))
        progress("checksumming tables", done, len(tables))
    return fingerprints


def table_fingerprints_in_parallel(
    url: str,
    jobs: int,
    progress: Progress = no_progress,
    methods: dict[str, FingerprintMethod] | None = None,
) -> dict[str, TableFingerprint]:
    """table_fingerprints on `jobs` connections at once, largest tables first. Each connection
    sees its own snapshot: only for a database nothing else writes (a verify's scratch copy)."""
    with psycopg.connect(url) as connection:
        pending = deque((str(schema), str(name)) for schema, name in
                        connection.execute(USER_TABLES_LARGEST_FIRST))  # fmt: skip
    total = len(pending)
    recorded = methods or {}
    fingerprints: dict[str, TableFingerprint] = {}
    reporting = threading.Lock()

    def fingerprint_until_none_is_left() -> None:
        with psycopg.connect(url) as connection:
            while True:
                try:
                    schema, name = pending.popleft()
                except IndexError:
                    return
                key = f"{schema}.{name}"
                found = table_fingerprint(connection, schema, name, recorded.get(key))
                with reporting:
                    fingerprints[key] = found
                    progress("checksumming tables", len(fingerprints), total)

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        for worker in [pool.submit(fingerprint_until_none_is_left) for _ in range(max(1, jobs))]:
            worker.result()
    return dict(sorted(fingerprints.items()))


def file_checksums(root: Path) -> dict[str, str]:
    """sha256 of every file under `root`, by path relative to root's parent (`dump/...`)."""
    checksums: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            checksums[path.relative_to(root.parent).as_posix()] = digest.hexdigest()
    return checksums


def save_manifest(manifest: BackupManifest, directory: Path | None = None) -> None:
    """Write the manifest atomically: a crash leaves the old one or the new one, never half."""
    target = backup_path(manifest.id, directory) / MANIFEST_FILE
    with tempfile.NamedTemporaryFile(
        "w", dir=target.parent, prefix=".manifest-", delete=False
    ) as handle:
        handle.write(manifest.model_dump_json(indent=2))
    os.replace(handle.name, target)


def load_manifest(backup_id: str, directory: Path | None = None) -> BackupManifest:
    path = backup_path(backup_id, directory) / MANIFEST_FILE
    if "/" in backup_id or not path.is_file():
        raise NotFoundError(f"no backup {backup_id!r} in {backups_directory(directory)}")
    return BackupManifest.model_validate_json(path.read_text())


def list_backups(directory: Path | None = None) -> list[BackupManifest]:
    """Every complete backup, newest first."""
    root = backups_directory(directory)
    if not root.is_dir():
        return []
    manifests = [
        BackupManifest.model_validate_json((entry / MANIFEST_FILE).read_text())
        for entry in root.iterdir()
        if (entry / MANIFEST_FILE).is_file()
    ]
    return sorted(manifests, key=lambda manifest: manifest.id, reverse=True)


def delete_backup(backup_id: str, directory: Path | None = None) -> None:
    load_manifest(backup_id, directory)
    shutil.rmtree(backup_path(backup_id, directory))


def backups_to_prune(
    backups: list[BackupManifest], *, keep_last: int | None, keep_days: int | None, now: datetime
) -> list[BackupManifest]:
    """Which backups a prune removes: everything neither among the `keep_last` newest nor younger
    than `keep_days`, except that the newest verified backup always stays."""
    newest_first = sorted(backups, key=lambda manifest: manifest.id, reverse=True)
    kept: set[str] = set()
    if keep_last is not None:
        kept.update(manifest.id for manifest in newest_first[:keep_last])
    if keep_days is not None:
        cutoff = now - timedelta(days=keep_days)
        kept.update(manifest.id for manifest in newest_first if manifest.created_at >= cutoff)
    verified = [manifest for manifest in newest_first if manifest.verified]
    if verified and not any(manifest.id in kept for manifest in verified):
        kept.add(verified[0].id)
    return [manifest for manifest in newest_first if manifest.id not in kept]


def prune_backups(
    *,
    keep_last: int | None,
    keep_days: int | None,
    directory: Path | None = None,
    dry_run: bool = False,
) -> list[BackupManifest]:
    """Delete the backups the retention rules let go; return them."""
    if keep_last is None and keep_days is None:
        raise ValidationError({"keep_last": "give --keep-last, --keep-days or both"})
    if keep_last is not None and keep_last < 1:
        raise ValidationError({"keep_last": "must be at least 1"})
    if keep_days is not None and keep_days < 0:
        raise ValidationError({"keep_days": "must not be negative"})
    doomed = backups_to_prune(
        list_backups(directory), keep_last=keep_last, keep_days=keep_days, now=datetime.now(UTC)
    )
    if not dry_run:
        for manifest in doomed:
            delete_backup(manifest.id, directory)
    return doomed


def iter_dump_tables(toc_listing: str) -> Iterator[tuple[str, str]]:
    """(data file stem, schema.table) for every TABLE DATA entry of a `pg_restore --list`."""
    for line in toc_listing.splitlines():
        match = re.match(r"^(\d+); \d+ \d+ TABLE DATA (\S+) (\S+) ", line)
        if match:
            yield match.group(1), f"{match.group(2)}.{match.group(3)}"


def file_problems(manifest: BackupManifest, folder: Path) -> list[str]:
    """Every file that is missing, unexpected or not the same bytes, named with its table."""
    found = file_checksums(folder / "dump")
    try:
        tables = {
            f"dump/{stem}": table for stem, table in iter_dump_tables(list_archive(folder / "dump"))
        }
    except OperationError:
        tables = {}

    def described(path: str) -> str:
        stem = path.split(".", 1)[0]
        return f"file {path} (data of table {tables[stem]})" if stem in tables else f"file {path}"

    problems = [f"{described(path)}: missing" for path in manifest.files if path not in found]
    problems += [
        f"{described(path)}: checksum differs from the manifest (sha256 {found[path][:12]}…,"
        f" expected {expected[:12]}…)"
        for path, expected in manifest.files.items()
        if path in found and found[path] != expected
    ]
    problems += [
        f"{described(path)}: not in the manifest" for path in found if path not in manifest.files
    ]
    return problems
