"""Restoring logical backups: into a new database, or in place of the current one.

In place means: back up the current database first, restore into a new database beside it, and
only when that succeeded swap the two by renaming, so a failed restore leaves the current one as
it was and the swap itself is one short transaction.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from afilo_db.backups.cluster import restore_cluster_objects
from afilo_db.backups.create import DEFAULT_JOBS, create_backup
from afilo_db.backups.manifest import (
    BackupManifest,
    backup_path,
    dump_path,
    file_problems,
    load_manifest,
)
from afilo_db.db.databases import create_database, drop_database, replace_database
from afilo_db.db.programs import Progress, list_archive, no_progress, start_restore
from afilo_db.db.urls import database_name
from afilo_db.errors import ConflictError, OperationError

RevisionState = Literal["current", "older", "newer"]


def restore_archive(
    dump_directory: Path,
    url: str,
    *,
    jobs: int = DEFAULT_JOBS,
    progress: Progress = no_progress,
    sections: tuple[str, ...] = (),
) -> None:
    """pg_restore a directory-format dump into the (empty) database at `url`.

    `sections`: only these of pg_restore's sections ("pre-data": tables and types, "data": rows,
    "post-data": indexes, constraints, triggers); all when empty.
    """
    entries = sum(
        1 for line in list_archive(dump_directory).splitlines() if line and not line.startswith(";")
    )
    finished = 0
    restore = start_restore(
        url, "--exit-on-error", "--verbose", *(f"--section={section}" for section in sections),
        str(dump_directory), jobs=jobs,
    )  # fmt: skip
    errors: list[str] = []
    for line in restore.stderr:
        # Serial items report "processing item", parallel ones "finished item".
        if "finished item" in line or "processing item" in line:
            finished += 1
            progress("restoring", min(finished, entries), entries)
        elif "error" in line.lower() or "fatal" in line.lower():
            errors.append(line.strip())
    if restore.wait() != 0:
        raise OperationError("pg_restore failed: " + ("\n".join(errors[-10:]) or "no message"))
    progress("restoring", entries, entries)


def revision_state(revision: str | None) -> RevisionState:
    """Where a database's Alembic revision stands against the code's head."""
    # Imported here, not at the top: Alembic, the migrations' support and the models they load
    # are needed by a restore alone, and `backup create`, `verify` and `list` import this module.
    from alembic.script import ScriptDirectory
    from alembic.script.revision import ResolutionError

    from afilo_db.migrations.support import alembic_config

    script = ScriptDirectory.from_config(alembic_config("postgresql://"))
    if revision == script.get_current_head():
        return "current"
    if revision is None:
        return "older"
    try:
        known = script.get_revision(revision)
    except ResolutionError:
        known = None
    return "older" if known is not None else "newer"


@dataclass(frozen=True)
class RestoreResult:
    backup_id: str
    database: str
    url: str
    revision: str | None
    revision_state: RevisionState
    safety_backup_id: str | None = None
    """In place: the backup of the replaced database, taken first."""
    notes: tuple[str, ...] = ()
    """In place: roles or database settings of the backup that could not be put back."""


def trusted_manifest(
    backup_id: str, directory: Path | None = None, *, force: bool = False
) -> BackupManifest:
    """The backup's manifest, once its files match their checksums and `backup verify` did not
    find it wrong; a ConflictError otherwise, unless `force`."""
    manifest = load_manifest(backup_id, directory)
    if force:
        return manifest
    problems = file_problems(manifest, backup_path(backup_id, directory))
    if manifest.verification is not None and not manifest.verification.ok:
        problems = [*manifest.verification.problems, *problems] or ["marked failed"]
    if problems:
        raise ConflictError(
            f"backup {backup_id} failed its check ({'; '.join(problems[:3])}); refusing to "
            "restore it: pick another backup, or pass --force to restore it anyway"
        )
    return manifest


def restore_into(
    backup_id: str,
    url: str,
    name: str,
    *,
    directory: Path | None = None,
    jobs: int = DEFAULT_JOBS,
    progress: Progress = no_progress,
    force: bool = False,
) -> RestoreResult:
    """Restore a backup into a new database `name` on the server of `url`; a backup that fails
    its checksums or its verification is refused unless `force`."""
    manifest = trusted_manifest(backup_id, directory, force=force)
    target_url = create_database(url, name)
    try:
        restore_archive(dump_path(backup_id, directory), target_url, jobs=jobs, progress=progress)
    except BaseException:
        drop_database(url, name)
        raise
    return RestoreResult(
        backup_id=backup_id,
        database=name,
        url=target_url,
        revision=manifest.alembic_revision,
        revision_state=revision_state(manifest.alembic_revision),
    )


def restore_in_place(
    backup_id: str,
    url: str,
    *,
    directory: Path | None = None,
    jobs: int = DEFAULT_JOBS,
    progress: Progress = no_progress,
    force: bool = False,
) -> RestoreResult:
    """Replace the database at `url` with the backup, after backing the current one up."""
    trusted_manifest(backup_id, directory, force=force)
    current = database_name(url)
    safety = create_backup(
        url, label=f"before in-place restore of {backup_id}", directory=directory, progress=progress
    )
    staging = f"{current[:40]}_restoring_{secrets.token_hex(4)}"
    restored = restore_into(
        backup_id, url, staging, directory=directory, jobs=jobs, progress=progress, force=force
    )
    replaced = f"{current[:40]}_replaced_{secrets.token_hex(4)}"
    try:
        replace_database(url, current=current, replacement=staging, renamed_to=replaced)
    except BaseException:
        drop_database(url, staging)
        raise
    drop_database(url, replaced)
    notes = restore_cluster_objects(url, backup_path(backup_id, directory))
    return RestoreResult(
        backup_id=backup_id,
        database=current,
        url=url,
        revision=restored.revision,
        revision_state=restored.revision_state,
        safety_backup_id=safety.id,
        notes=tuple(notes),
    )
