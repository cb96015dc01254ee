"""`afilo-db` run two ways for the tests: inside the test's own process (what most tests need: the
command's output and exit code) or as a process of its own (what only a process shows: the
console script, its imports, signals, the process table, output into a pipe).

A process of its own pays Python's start-up and every import the command needs (SQLAlchemy,
Alembic, the models, the embedding model) each time; inside the test's process they are loaded
once per worker. Both go through the same `afilo_db.cli.main`, so the parsing, the error
reporting and the exit codes are the same code either way.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

from afilo_db.cli import main
from afilo_db.config import get_settings

# A value of None takes the variable out of the command's environment.
Environment = Mapping[str, str | None]


@contextmanager
def _environment(changes: Environment, cwd: Path | None) -> Iterator[None]:
    """os.environ and the working folder as a process started with them would have them, put
    back afterwards; the settings are read anew on both sides (get_settings caches them)."""
    saved = dict(os.environ)
    folder = Path.cwd()
    for key, value in changes.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()
    if cwd is not None:
        os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(folder)
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


def in_process(
    env: Environment, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`afilo-db args` through the console script's own entry point, in this process: stdout and
    stderr are captured as a pipe would be (not a terminal), the exit code is main()'s."""
    # Text over bytes, as a pipe is: a command may write bytes to sys.stdout.buffer (a chart).
    out, err = (io.TextIOWrapper(io.BytesIO(), write_through=True) for _ in range(2))
    saved_argv = sys.argv
    # main() sets up the root logger as a process's start would; the test's process keeps its own.
    saved_handlers = list(logging.root.handlers)
    sys.argv = ["afilo-db", *args]
    code: int | str | None = 0
    try:
        with _environment(env, cwd), redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as ended:
        code = ended.code
    finally:
        sys.argv = saved_argv
        logging.root.handlers[:] = saved_handlers
    return subprocess.CompletedProcess(["afilo-db", *args], int(code or 0), _text(out), _text(err))


def _text(stream: io.TextIOWrapper) -> str:
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode()


def as_a_process(
    env: Environment, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`afilo-db args` as a process of its own, its output into pipes."""
    environment = dict(os.environ)
    for key, value in env.items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return subprocess.run(
        [sys.executable, "-m", "afilo_db", *args],
        env=environment,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
