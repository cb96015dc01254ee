"""`afilo-db pitr ...`: point-in-time recovery for the embedded server (WAL archive, base backups)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from afilo_db.backups import pitr
from afilo_db.cli.backup import human_size
from afilo_db.cli.common import JsonOption, console, phase_progress, print_json, reported_errors
from afilo_db.config import get_settings
from afilo_db.db.target import embedded_server
from afilo_db.errors import OperationError

pitr_app = typer.Typer(
    help="Point-in-time recovery of the embedded server: WAL archiving and base backups.",
    no_args_is_help=True,
)


def _require_embedded() -> None:
    if not get_settings().uses_embedded_server:
        raise OperationError(
            "DATABASE_URL is set: point-in-time recovery of a hosted database is the host's job"
            " (Neon: point-in-time restore and branches, see docs/backups.md)"
        )


@pitr_app.command()
def enable(as_json: JsonOption = False) -> None:
    """Turn on WAL archiving into $AFILO_HOME/wal (restarting the server if needed) and take a
    first base backup."""
    with reported_errors():
        _require_embedded()
        server = embedded_server()
        with phase_progress() as progress:
            base = pitr.enable(server, progress=progress)
        if as_json:
            print_json(
                {
                    "wal_archive": pitr.wal_archive_directory(server),
                    "base_backup": base.model_dump(mode="json"),
                }
            )
            return
        console.print(f"WAL archiving on, into {pitr.wal_archive_directory(server)}")
        console.print(f"base backup {base.id} ({human_size(base.size_bytes)})")


@pitr_app.command("base-backup")
def base_backup(as_json: JsonOption = False) -> None:
    """Take another base backup (recoveries start from the newest one before their target)."""
    with reported_errors():
        _require_embedded()
        with phase_progress() as progress:
            base = pitr.take_base_backup(embedded_server(), progress=progress)
        if as_json:
            print_json(base.model_dump(mode="json"))
            return
        console.print(f"base backup {base.id} ({human_size(base.size_bytes)})")
        print(base.id)


@pitr_app.command()
def status(as_json: JsonOption = False) -> None:
    """Is archiving on, what was archived last, did anything fail, which base backups exist."""
    with reported_errors():
        _require_embedded()
        server = embedded_server()
        server.start()
        state = pitr.archive_status(server)
        if as_json:
            print(json.dumps(asdict(state), default=str))
            return
        console.print(f"archiving: {'on' if state.enabled else 'off'}")
        console.print(
            f"archived: {state.archived_count} segment(s), last {state.last_archived_wal or '-'}"
            f" at {state.last_archived_at or '-'}; failures: {state.failed_count}"
        )
        table = Table(title="base backups")
        for column in ("id", "finished at", "size"):
            table.add_column(column)
        for base in state.base_backups:
            table.add_row(base.id, base.finished_at.isoformat(), human_size(base.size_bytes))
        console.print(table)


@pitr_app.command("prune")
def prune_command(
    keep_last: Annotated[int, typer.Option(min=1, help="Base backups to keep, newest first.")] = 2,
    keep_days: Annotated[
        float | None, typer.Option(min=0, help="Also keep every base backup younger than this.")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Say what would go; delete nothing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete older base backups and the archived WAL before the oldest one kept: recovery can
    then reach any moment since the oldest base backup kept, and no earlier."""
    with reported_errors():
        _require_embedded()
        plan = pitr.prune(
            embedded_server(), keep_last=keep_last, keep_days=keep_days, dry_run=dry_run
        )
        if as_json:
            print_json({"dry_run": dry_run, **asdict(plan)})
            return
        verb = "would delete" if dry_run else "deleted"
        console.print(f"{verb} base backups: {', '.join(plan.deleted) or 'none'}")
        console.print(f"kept: {', '.join(plan.kept) or 'none'}")
        if plan.oldest_kept_segment:
            console.print(f"{verb} archived WAL before {plan.oldest_kept_segment}")
