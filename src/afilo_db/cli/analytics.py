"""`afilo-db analytics ...`: upkeep of the events: retention, partitions, the reports' rollups."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from afilo_db.cli.common import JsonOption, console, reported_errors

analytics_app = typer.Typer(
    help="Upkeep of the events: retention, partitions ahead, the reports' pre-aggregates.",
    no_args_is_help=True,
)


@analytics_app.command()
def retention(
    keep_months: Annotated[
        int,
        typer.Option(
            "--keep-months",
            help="Months kept before the current one; every whole month older is dropped.",
        ),
    ],
    dry_run: Annotated[bool, typer.Option(help="Only say which months would go.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Detach and drop the monthly partitions of events older than the current month minus
    --keep-months months (whole months only: the reports' rollups keep their figures)."""
    from afilo_db.analytics import partitions
    from afilo_db.db.databases import admin_connection
    from afilo_db.db.target import resolve_target

    with reported_errors():
        with admin_connection(resolve_target().direct_url) as connection:
            result = partitions.apply_retention(connection, keep_months, dry_run=dry_run)
            connection.commit()
        if as_json:
            print(json.dumps({"bound": result.bound.isoformat(), "dropped": result.dropped,
                              "kept": result.kept, "dry_run": result.dry_run,
                              "stranded_rows_deleted": result.stranded_rows_deleted}))  # fmt: skip
            return
        verb = "would drop" if dry_run else "dropped"
        console.print(f"keeping events from {result.bound.isoformat()} on")
        for name in result.dropped:
            console.print(f"{verb} {name}", highlight=False)
        if not result.dropped:
            console.print("no month is older than that")
        if result.stranded_rows_deleted:
            older = "older rows in events_default"
            console.print(f"{verb} {result.stranded_rows_deleted:,} {older}", highlight=False)


@analytics_app.command()
def refresh(
    months_ahead: Annotated[
        int, typer.Option(min=0, max=120, help="Partitions to have ready beyond this month.")
    ] = 3,
) -> None:
    """Aggregate the days that received events since the last refresh, and create the coming
    months' partitions (moving any of their rows out of the default partition)."""
    from afilo_db.analytics import partitions, rollups
    from afilo_db.db.databases import admin_connection
    from afilo_db.db.target import resolve_target

    with reported_errors():
        with admin_connection(resolve_target().direct_url) as connection:
            created = partitions.ensure_ahead(connection, months_ahead)
            result = rollups.refresh(connection)
            connection.commit()
        console.print(
            f"{len(result.days)} day(s) aggregated in {result.seconds:.2f} s; "
            f"{created + result.partitions_created} partition(s) created"
        )
