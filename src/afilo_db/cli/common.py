"""What every command group shares: consoles, error reporting, options, tables, progress bars."""

from __future__ import annotations

import json
import socket
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
from afilo_db.errors import ConflictError

# Off a terminal (a pipe, a file, a CI log) there is no window to fit: Rich's default of 80
# columns would truncate numbers in tables and split paths and error lines, so nothing is wrapped
# or cut there. Rich turns colour off itself off a terminal and when NO_COLOR is set.
UNWRAPPED_WIDTH = 100_000


def _console(*, stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=UNWRAPPED_WIDTH, soft_wrap=True)


console = _console(stderr=False)
# Progress bars and errors go to stderr so that stdout stays clean for scripts.
errors = _console(stderr=True)

# What a command raises to end with a code or a usage message that Typer prints itself: Typer's
# own classes (it vendors Click from 0.22 on, so they are not Click's) and Click's.
_ENDINGS_FOR_TYPER: tuple[type[BaseException], ...] = (
    typer.Exit,
    typer.Abort,
    typer.exceptions.TyperException,
    click.exceptions.Exit,
    click.exceptions.Abort,
    click.ClickException,
    SystemExit,
)

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
    except _ENDINGS_FOR_TYPER:
        raise
    except BaseException as error:  # Ctrl-C too: one line, code 130
        raise typer.Exit(report_failure(error)) from error


def require_free_port(host: str, port: int) -> None:
    """Refuse a port another program listens on before a server prints URLs or a token it would
    never serve (uvicorn binds with SO_REUSEADDR too: TIME-WAIT does not count)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConflictError(
                f"{host}:{port} is in use by another program ({error.strerror}): stop it, or "
                "choose another port with --port"
            ) from None


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


def print_json(document: object) -> None:
    """One JSON document on stdout, on one line, for a script (`--json`); dates, decimals and
    ids as strings."""
    print(json.dumps(document, default=str))


def print_counts(counts: dict[str, int]) -> None:
    table = Table(title="rows per table")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in counts.items():
        table.add_row(name, f"{count:,}")
    console.print(table)
