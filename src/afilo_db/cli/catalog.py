"""`afilo-db catalog ...`: the catalog as files."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from afilo_db.cli.common import JsonOption, console, errors, progress_bar, reported_errors
from afilo_db.data import catalog_import
from afilo_db.db.databases import admin_connection
from afilo_db.db.target import resolve_target
from afilo_db.errors import ValidationError

catalog_app = typer.Typer(help="The catalog as files: import.", no_args_is_help=True)


@catalog_app.command("import")
def import_command(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help=".jsonl, .ndjson or .csv"),
    ],
    skip_invalid: Annotated[
        bool, typer.Option(help="Write the valid lines and report the others, instead of nothing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Upsert products (by handle) with their variants (by sku) and volume tiers from FILE.

    Every line is validated first. If any line is bad, every bad line is reported with its
    number and field and nothing is written (exit code 2), unless --skip-invalid (exit code 2
    still when no valid line remains). A line replaces its product: fields it leaves out take
    their defaults; variants it does not list are kept. Unchanged rows are not rewritten.
    JSON Lines: one product a line, variants and their tiers nested. CSV: a header row, then one
    variant a row, product columns repeated, tags and tech_stack separated by |, tiers as
    1-9:10.00|10-:9.00.
    """
    with reported_errors():
        target = resolve_target()
        with admin_connection(target.direct_url) as connection, progress_bar("importing") as bar:
            task = bar.add_task("rows", total=None)
            try:
                report = catalog_import.import_catalog(
                    connection,
                    file,
                    skip_invalid=skip_invalid,
                    progress=lambda count: bar.advance(task, count),
                )
            except ValidationError as rejected:
                if as_json:
                    print(json.dumps({"written": False, "problems": rejected.problems}))
                bad_lines = sum(1 for where in rejected.problems if where.startswith("line "))
                if not bad_lines:
                    raise  # a problem of the whole file: its own one line
                if not as_json:
                    for where, problem in rejected.problems.items():
                        errors.print(f"{where}: {problem}", highlight=False, markup=False)
                raise ValidationError(
                    {"file": f"{bad_lines} bad line(s); nothing was written"}
                ) from rejected
            connection.commit()
        if as_json:
            print(json.dumps({"written": True, **asdict(report)}))
            return
        console.print(
            f"imported {report.lines - len(report.skipped):,} products; rows written (new or"
            f" changed): {report.products:,} products, {report.variants:,} variants,"
            f" {report.tiers:,} tiers"
        )
        for item in report.skipped:
            errors.print(
                f"skipped line {item.line}: {item.describe()}", highlight=False, markup=False
            )
        if report.skipped:
            console.print(f"skipped {len(report.skipped)} invalid line(s)")
