"""What every command group shares: consoles, error reporting, options, tables, progress bars."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from afilo_db.cli.debug import debugging
from afilo_db.cli.failures import explain, first_line
from afilo_db.db import programs

console = Console()
# Progress bars and errors go to stderr so that stdout stays clean for scripts.
errors = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def report_failure(error: BaseException) -> int:
    """Print `error` as one line on stderr (and its traceback when debugging); its exit code."""
    failure = explain(error)
    if debugging():
        traceback.print_exception(error, file=sys.stderr)
    line = first_line(str(failure)) or type(failure).__name__
    errors.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    return failure.exit_code


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn any error into one line on stderr and the README's exit code (see cli.failures)."""
    try:
        yield
    # typer's Exit is its own class since typer 0.16, not click's.
    except (
        typer.Exit,
        click.exceptions.Exit,
        click.exceptions.Abort,
        click.ClickException,
        SystemExit,
    ):
        raise
    except BaseException as error:  # Ctrl-C too: one line, code 130
        raise typer.Exit(report_failure(error)) from error


def progress_bar(label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
    )


@contextmanager
def phase_progress() -> Iterator[programs.Progress]:
    """A progress bar on stderr that follows an operation's phases."""
    with progress_bar("{task.description}") as bar:
        task = bar.add_task("starting", total=None)

        def report(phase: str, done: int, total: int) -> None:
            bar.update(task, description=phase, completed=done, total=total)

        yield report


def print_counts(counts: dict[str, int]) -> None:
    table = Table(title="rows per table")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in counts.items():
        table.add_row(name, f"{count:,}")
    console.print(table)
