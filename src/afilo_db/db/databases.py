"""Whole databases on a server: connect for admin work, create, copy, drop, replace. Written once
here for the restore, the migration rehearsal, the backup check, the tests and the benchmarks."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import psycopg
from psycopg import sql

from afilo_db.db.programs import start_program, start_restore
from afilo_db.db.urls import database_name, with_database
from afilo_db.errors import ConflictError, OperationError, ValidationError

MAINTENANCE_DATABASE = "postgres"
DATABASE_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@contextmanager
def admin_connection(url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection for admin work; commits when the block succeeds, rolls back otherwise."""
    with psycopg.connect(url) as connection:
        yield connection


def maintenance_connection(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    """An autocommit connection to the maintenance database of the server of `url`: CREATE,
    DROP and ALTER DATABASE cannot run inside a transaction or in the database they change."""
    return psycopg.connect(with_database(url, MAINTENANCE_DATABASE), autocommit=True)


def _on_maintenance(
    url: str, maintenance: psycopg.Connection[Any] | None
) -> AbstractContextManager[psycopg.Connection[Any]]:
    """The caller's open maintenance connection, left open, or a new one closed after use."""
    return nullcontext(maintenance) if maintenance is not None else maintenance_connection(url)


def database_exists(url: str, name: str) -> bool:
    with maintenance_connection(url) as connection:
        row = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return row.fetchone() is not None


def create_database(
    url: str,
    name: str,
    *,
    template: str | None = None,
    maintenance: psycopg.Connection[Any] | None = None,
) -> str:
    """Create database `name` on the server of `url`, empty (from template0) or as a copy of
    `template` (which nobody may be connected to); its URL. `maintenance`: an open
    `maintenance_connection` of that server to run it on, for a caller that creates many."""
    if not DATABASE_NAME_PATTERN.match(name):
        raise ValidationError(
            {"into": "a database name: 1 to 63 letters, digits or _, not starting with a digit"}
        )
    statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
        sql.Identifier(name), sql.Identifier(template or "template0")
    )
    if template is not None:
        # A copy of the files: for small databases far faster than WAL-logging every block.
        statement += sql.SQL(" STRATEGY FILE_COPY")
    with _on_maintenance(url, maintenance) as connection:
        try:
            connection.execute(statement)
        except psycopg.errors.DuplicateDatabase as exc:
            raise ConflictError(f"database {name!r} already exists; choose another name") from exc
    return with_database(url, name)


def copy_database(url: str, name: str, lock_wait_timeout: str | None = None) -> str:
    """Create database `name` as a copy of the one at `url`; returns how it was copied: by
    TEMPLATE when nobody else is connected to the source, by pg_dump | pg_restore otherwise.
    `lock_wait_timeout`: how long pg_dump waits for a table another session holds before it
    fails (default: for ever)."""
    try:
        create_database(url, name, template=database_name(url))
        return "CREATE DATABASE ... TEMPLATE"
    except psycopg.errors.ObjectInUse:
        create_database(url, name)
    waiting = [f"--lock-wait-timeout={lock_wait_timeout}"] if lock_wait_timeout else []
    dump = start_program("pg_dump", url, "--format=custom", *waiting, stdout=subprocess.PIPE)
    restore = start_restore(with_database(url, name), "--no-owner", stdin=dump.stdout)
    if dump.stdout is not None:
        dump.stdout.close()  # pg_restore owns the pipe now; pg_dump sees SIGPIPE if it dies
    detail = restore.stderr.read().strip()
    if restore.wait() != 0 or dump.wait() != 0:
        drop_database(url, name)
        raise OperationError(f"copying the database failed: {detail or 'pg_dump failed'}")
    return "pg_dump | pg_restore"


def drop_database(
    url: str, name: str, *, maintenance: psycopg.Connection[Any] | None = None
) -> None:
    """Drop database `name` if it exists, disconnecting its sessions. `maintenance`: as for
    `create_database`."""
    with _on_maintenance(url, maintenance) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def replace_database(
    url: str, *, current: str, replacement: str, renamed_to: str, attempts: int = 50
) -> None:
    """Rename current -> renamed_to and replacement -> current in one transaction,
    disconnecting the sessions of the current database (RENAME refuses a database that has any)."""
    with maintenance_connection(url) as connection:
        for _ in range(attempts):
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (current,),
            )
            try:
                with connection.transaction():
                    rename = sql.SQL("ALTER DATABASE {} RENAME TO {}")
                    connection.execute(
                        rename.format(sql.Identifier(current), sql.Identifier(renamed_to))
                    )
                    connection.execute(
                        rename.format(sql.Identifier(replacement), sql.Identifier(current))
                    )
                return
            except psycopg.errors.ObjectInUse:
                time.sleep(0.1)
    raise OperationError(f"database {current!r} kept getting new sessions; could not replace it")
