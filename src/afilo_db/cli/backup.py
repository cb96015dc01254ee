"""`afilo-db backup ...`: logical backups with a manifest, listed, pruned and verified."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from afilo_db.backups.create import DEFAULT_JOBS, create_backup
from afilo_db.backups.manifest import (
    BackupManifest,
    backup_path,
    backups_directory,
    list_backups,
    prune_backups,
)
from afilo_db.backups.verify import verify_backup
from afilo_db.cli.common import (
    JsonOption,
    console,
    errors,
    phase_progress,
    print_json,
    reported_errors,
)
from afilo_db.db.target import resolve_target
from afilo_db.errors import OperationError

backup_app = typer.Typer(
    help="Logical backups (pg_dump) with a manifest: create, list, prune, verify.",
    no_args_is_help=True,
)

DirectoryOption = Annotated[
    Path | None,
    typer.Option("--dir", help="Where backups live (default: $AFILO_HOME/backups)."),
]
JobsOption = Annotated[int, typer.Option(min=1, max=32, help="Parallel pg_dump / pg_restore jobs.")]


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.1f} {unit}" if unit != "B" else f"{size} B"
        value /= 1024
    raise AssertionError("unreachable")


def _verified_text(manifest: BackupManifest) -> str:
    if manifest.verification is None:
        return "no"
    return "yes" if manifest.verified else "FAILED"


@backup_app.command("create")
def create(
    label: Annotated[str | None, typer.Option(help="A note to find it by.")] = None,
    directory: DirectoryOption = None,
    jobs: JobsOption = DEFAULT_JOBS,
    as_json: JsonOption = False,
) -> None:
    """Back up the database: pg_dump in directory format, in parallel, with a manifest (file
    checksums, row count and content checksum per table, Alembic revision, server version, size,
    duration). The last line printed is the new backup's id (with --json: the manifest and its
    path)."""
    with reported_errors():
        url = resolve_target().direct_url
        with phase_progress() as progress:
            manifest = create_backup(
                url, label=label, directory=directory, jobs=jobs, progress=progress
            )
        if as_json:
            print_json(
                {
                    **manifest.model_dump(mode="json"),
                    "path": str(backup_path(manifest.id, directory)),
                }
            )
            return
        console.print(
            f"backed up {len(manifest.tables)} tables "
            f"({sum(t.rows for t in manifest.tables.values()):,} rows), "
            f"{human_size(manifest.size_bytes)} in {manifest.duration_seconds:.1f}s, "
            f"revision {manifest.alembic_revision or 'none'}, into "
            f"{backup_path(manifest.id, directory)}"
        )
        print(manifest.id)


@backup_app.command("list")
def list_command(as_json: JsonOption = False, directory: DirectoryOption = None) -> None:
    """The backups, newest first: label, size, revision, verified or not."""
    with reported_errors():
        manifests = list_backups(directory)
        if as_json:
            print(
                json.dumps(
                    [m.model_dump(mode="json", exclude={"files", "tables"}) for m in manifests]
                )
            )
            return
        if not manifests:
            console.print(f"no backups in {backups_directory(directory)}")
            return
        table = Table(title=f"backups in {backups_directory(directory)}")
        for column in ("id", "label", "size", "revision", "tables", "verified"):
            table.add_column(
                column,
                justify="right" if column in ("size", "tables") else "left",
                no_wrap=column == "id",
                min_width=len(manifests[0].id) if column == "id" else None,
            )
        for manifest in manifests:
            table.add_row(
                manifest.id,
                manifest.label or "",
                human_size(manifest.size_bytes),
                manifest.alembic_revision or "none",
                str(len(manifest.tables)),
                _verified_text(manifest),
            )
        console.print(table)


@backup_app.command()
def prune(
    keep_last: Annotated[int | None, typer.Option(help="Keep the N newest backups.", min=1)] = None,
    keep_days: Annotated[
        int | None, typer.Option(help="Keep every backup younger than D days.", min=0)
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Say what would go; delete nothing.")] = False,
    directory: DirectoryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete old backups: those neither among the --keep-last newest nor younger than
    --keep-days. The newest verified backup is always kept."""
    with reported_errors():
        removed = prune_backups(
            keep_last=keep_last, keep_days=keep_days, directory=directory, dry_run=dry_run
        )
        if as_json:
            print_json({"dry_run": dry_run, "removed": [manifest.id for manifest in removed]})
            return
        verb = "would remove" if dry_run else "removed"
        for manifest in removed:
            console.print(f"{verb} {manifest.id} {manifest.label or ''}".rstrip())
        console.print(f"{verb} {len(removed)} backup(s)")


@backup_app.command()
def verify(
    backup_id: Annotated[str, typer.Argument(metavar="ID", help="The backup's id.")],
    directory: DirectoryOption = None,
    jobs: JobsOption = DEFAULT_JOBS,
    thorough: Annotated[
        bool,
        typer.Option(
            help="Also rebuild every index and constraint and amcheck the indexes: proves a full"
            " restore completes, at about twice the time."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Prove a backup: check every file's checksum, restore its tables into a scratch database,
    compare every table's row count and content checksum with the manifest, run pg_amcheck on
    the tables, record the result in the manifest, drop the scratch database. Exits 1 naming
    what differs. --thorough also restores the indexes and constraints and checks them."""
    with reported_errors():
        url = resolve_target().direct_url
        with phase_progress() as progress:
            manifest = verify_backup(
                backup_id, url, directory=directory, jobs=jobs, thorough=thorough, progress=progress
            )
        verification = manifest.verification
        assert verification is not None
        if as_json:
            print_json(manifest.model_dump(mode="json"))
        if not verification.ok:
            for problem in verification.problems:
                errors.print(f"[bold red]problem:[/] {escape(problem)}", highlight=False)
            raise OperationError(
                f"backup {backup_id} failed verification ({len(verification.problems)} "
                "problem(s), listed above); it is marked failed in its manifest"
            )
        if as_json:
            return
        console.print(
            f"backup {backup_id} verified: files intact, {len(manifest.tables)} tables restored"
            f" identical, amcheck {verification.amcheck} ({verification.duration_seconds:.1f}s)"
        )
