"""Running the wheel's PostgreSQL client programs (pg_dump, pg_restore, pg_amcheck, pg_basebackup).

The password travels in the environment (PGPASSWORD), never on the command line, where `ps` and
error messages would show it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url

from afilo_db.db.embedded import pg_binary, run_pg_program
from afilo_db.db.urls import libpq_url

Progress = Callable[[str, int, int], None]
"""progress(phase, done, total): long operations report what they are doing and how far."""


def no_progress(_phase: str, _done: int, _total: int) -> None:
    return None


def connection_arguments(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and the environment that carries the password."""
    parsed = make_url(libpq_url(url))
    environment = {**os.environ, "PGAPPNAME": "afilo-db"}
    if parsed.password is not None:
        environment["PGPASSWORD"] = str(parsed.password)
    without_password = parsed.set(password=None).render_as_string(hide_password=False)
    return without_password, environment


def start_program(
    program: str, url: str, *args: str, stderr: IO[bytes] | int | None = None
) -> subprocess.Popen[bytes]:
    """Start `program` with `url` given through -d (its --dbname), for callers that wait later."""
    conninfo, environment = connection_arguments(url)
    return subprocess.Popen(
        [str(pg_binary(program)), "-d", conninfo, *args],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=stderr if stderr is not None else subprocess.PIPE,
    )


def run_program(program: str, url: str, *args: str, timeout: float | None = None) -> str:
    """Run `program -d URL args...`; its stdout, or an OperationError with its stderr."""
    conninfo, environment = connection_arguments(url)
    return run_pg_program(program, "-d", conninfo, *args, timeout=timeout, environment=environment)


def list_archive(dump_directory: Path) -> str:
    """`pg_restore --list` of a directory-format dump: its table of contents."""
    return run_pg_program("pg_restore", "--list", str(dump_directory))
