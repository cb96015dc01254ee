"""What every command group shares: consoles, error reporting, options, tables, progress bars."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from afilo_db.errors import AfiloError

console = Console()
# Progress bars and errors go to stderr so that stdout stays clean for scripts.
errors = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn afilo-db's errors into a message on stderr and the error's exit code."""
    try:
        yield
    except AfiloError as error:
        errors.print(f"[bold red]error:[/] {error}", highlight=False)
        raise typer.Exit(error.exit_code) from error


def progress_bar(label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
    )


def print_counts(counts: dict[str, int]) -> None:
    table = Table(title="rows per table")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in counts.items():
        table.add_row(name, f"{count:,}")
    console.print(table)
