"""`afilo-db restore`: a logical backup into a new database or in place, or the embedded server
to a point in time."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from afilo_db.backups import pitr
from afilo_db.backups.create import DEFAULT_JOBS
from afilo_db.backups.restore import RestoreResult, restore_in_place, restore_into
from afilo_db.cli.backup import DirectoryOption, JobsOption
from afilo_db.cli.common import (
    JsonOption,
    console,
    errors,
    phase_progress,
    print_json,
    reported_errors,
)
from afilo_db.config import get_settings
from afilo_db.db.target import embedded_server, resolve_target
from afilo_db.db.urls import redacted
from afilo_db.errors import OperationError, ValidationError


def _report_revision(result: RestoreResult, in_place: bool) -> None:
    if result.revision_state == "older":
        where = "" if in_place else f"DIRECT_URL='<url of {result.database}>' "
        errors.print(
            f"[yellow]note:[/] the backup is at revision {result.revision or 'none (empty schema)'},"
            f" older than this code's: run `{where}afilo-db migrate deploy` to bring it up to date",
            highlight=False,
        )
    elif result.revision_state == "newer":
        errors.print(
            f"[yellow]note:[/] the backup is at revision {result.revision}, which this code does"
            " not know: it was made by a newer afilo-db",
            highlight=False,
        )


def restore(
    backup_id: Annotated[
        str | None, typer.Argument(metavar="ID", help="The logical backup to restore.")
    ] = None,
    into: Annotated[
        str | None, typer.Option("--into", help="Restore into this new database.")
    ] = None,
    in_place: Annotated[
        bool, typer.Option("--in-place", help="Replace the current database (needs --yes).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm an in-place restore.")] = False,
    to_time: Annotated[
        str | None,
        typer.Option(
            "--to-time",
            help="Point-in-time recovery of the embedded server, e.g. '2026-11-24 10:15:00+00'.",
        ),
    ] = None,
    into_dir: Annotated[
        Path | None,
        typer.Option("--into-dir", help="With --to-time: recover into a new server there."),
    ] = None,
    directory: DirectoryOption = None,
    jobs: JobsOption = DEFAULT_JOBS,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Restore a backup even though its files fail their checksums or `backup "
            "verify` marked it failed.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Restore a backup.

    `restore ID --into NAME` restores backup ID into a new database NAME;
    `restore ID --in-place --yes` backs the current database up, then replaces it with ID.
    `restore --to-time T --into-dir DIR` recovers the embedded server as it was at T into a new
    server in DIR and starts it on a free port; `restore --to-time T --in-place --yes` takes the
    embedded server itself back to T (its current data directory is kept aside)."""
    with reported_errors():
        targets = sum((into is not None, in_place, into_dir is not None))
        if targets != 1:
            raise ValidationError({"into": "give exactly one of --into, --into-dir, --in-place"})
        if in_place and not yes:
            raise ValidationError({"yes": "--in-place replaces the current data: add --yes"})
        if to_time is not None:
            if backup_id is not None or into is not None:
                raise ValidationError(
                    {"to_time": "recovers the server from WAL: use --into-dir or --in-place, no ID"}
                )
            _recover_to_time(to_time, into_dir, as_json=as_json)
            return
        if backup_id is None:
            raise ValidationError({"id": "which backup? (`afilo-db backup list`)"})
        if into_dir is not None:
            raise ValidationError({"into_dir": "only with --to-time"})
        url = resolve_target().direct_url
        with phase_progress() as progress:
            if into is not None:
                result = restore_into(
                    backup_id,
                    url,
                    into,
                    directory=directory,
                    jobs=jobs,
                    progress=progress,
                    force=force,
                )
            else:
                result = restore_in_place(
                    backup_id, url, directory=directory, jobs=jobs, progress=progress, force=force
                )
        _report_revision(result, in_place)
        if as_json:
            print_json(
                {
                    "backup_id": backup_id,
                    "database": result.database,
                    "url": redacted(result.url),
                    "safety_backup_id": result.safety_backup_id,
                    "not_restored": result.notes,
                    "revision": result.revision,
                    "revision_state": result.revision_state,
                }
            )
            return
        if result.safety_backup_id is not None:
            console.print(f"the replaced database was backed up first: {result.safety_backup_id}")
        for note in result.notes:
            errors.print(f"[yellow]not restored:[/] {escape(note)}", highlight=False)
        console.print(
            f"restored {backup_id} into database {result.database}: {redacted(result.url)}"
        )


def _recover_to_time(to_time: str, into_dir: Path | None, *, as_json: bool) -> None:
    if not get_settings().uses_embedded_server:
        raise OperationError(
            "point-in-time recovery here is for the embedded server; on Neon use its own"
            " point-in-time restore or a branch at that time (see docs/backups.md)"
        )
    target = pitr.parse_target_time(to_time)
    server = embedded_server()
    with phase_progress() as progress:
        if into_dir is not None:
            recovered = pitr.recover_to_directory(server, target, into_dir, progress=progress)
        else:
            recovered = pitr.recover_in_place(server, target, progress=progress)
    if as_json:
        print_json(
            {
                "recovered_to": target.isoformat(),
                "base_backup_id": recovered.base_backup_id,
                "home": None if recovered.replaced_data_directory else str(recovered.home),
                "replaced_data_directory": recovered.replaced_data_directory,
                "url": redacted(recovered.url),
            }
        )
        return
    console.print(f"recovered to {target.isoformat()} from base backup {recovered.base_backup_id}")
    if recovered.replaced_data_directory is not None:
        console.print(f"the replaced data directory is kept in {recovered.replaced_data_directory}")
    else:
        # The password stays in the recovered home's server.json (0600), out of the terminal's
        # scrollback and of whatever logs this command's output.
        console.print(
            f"server running from {recovered.home}; its URL with the password:"
            f" `AFILO_HOME={recovered.home} afilo-db db url`; stop it with"
            f" `AFILO_HOME={recovered.home} afilo-db db stop`"
        )
    print(redacted(recovered.url))
