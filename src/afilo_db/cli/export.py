"""`afilo-db export ...`: a user's data (access requests) and whole tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from afilo_db.cli.common import (
    JsonOption,
    console,
    phase_progress,
    print_counts,
    print_json,
    reported_errors,
)
from afilo_db.data.export import export_tables, export_user
from afilo_db.db.target import resolve_target

export_app = typer.Typer(help="Export a user's data or whole tables.", no_args_is_help=True)


@export_app.command("user")
def user(
    clerk_user_id: Annotated[str, typer.Argument(metavar="CLERK_USER_ID")],
    out: Annotated[Path, typer.Option("--out", help="The JSON file to write.")],
    as_json: JsonOption = False,
) -> None:
    """Every row that belongs to the user, from every table that holds any (found by following
    foreign keys to user_profiles in the live schema), as one JSON document."""
    with reported_errors():
        counts = export_user(resolve_target().direct_url, clerk_user_id, out)
        if as_json:
            print_json({"out": str(out), "rows": counts})
            return
        print_counts(counts)
        console.print(f"written to {out}")


@export_app.command("tables")
def tables(
    out: Annotated[Path, typer.Option("--out", help="The directory to write into.")],
    export_format: Annotated[
        str, typer.Option("--format", help="csv (with a header) or jsonl (one object a line).")
    ] = "csv",
    as_json: JsonOption = False,
) -> None:
    """Every table, whole, one file each, with COPY, from one consistent snapshot."""
    with reported_errors():
        with phase_progress() as progress:
            counts = export_tables(
                resolve_target().direct_url, export_format, out, progress=progress
            )
        if as_json:
            print_json({"out": str(out), "format": export_format, "rows": counts})
            return
        print_counts(counts)
        console.print(f"written to {out}")
