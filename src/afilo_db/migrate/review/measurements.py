"""Read-only questions to the target database: does a table exist and hold rows, how many rows
a statement touches or would lose, what a column's type is."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from pglast import ast
from psycopg import sql as pgsql

from afilo_db.migrate.review.syntax import walk

# -- the database as it is now ------------------------------------------------------------------


class Measurer:
    """Read-only questions to the target, each in a savepoint so that one failure (a column
    added earlier in the same migration, a cast that fails) spoils nothing else."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection
        self.created_tables: set[str] = set()

    def table_exists(self, table: str) -> bool:
        if table in self.created_tables:
            return False
        row = self.connection.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
        return bool(row and row[0])

    def count(self, query: pgsql.Composed | str) -> int | str:
        """The count, or why it could not be measured."""
        try:
            with self.connection.transaction():
                row = self.connection.execute(query).fetchone()
        except psycopg.Error as error:
            return str(error).splitlines()[0]
        return int(row[0]) if row and row[0] is not None else 0

    def column_type(self, table: str, column: str) -> str | None:
        row = self.connection.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = to_regclass(%s) AND attname = %s AND NOT attisdropped",
            (table, column),
        ).fetchone()
        return str(row[0]) if row else None

    def is_volatile(self, expression: ast.Node | None) -> bool:
        names = [
            ".".join(part.sval for part in node.funcname or ())
            for node in walk(expression)
            if isinstance(node, ast.FuncCall)
        ]
        if not names:
            return False
        row = self.connection.execute(
            "SELECT bool_or(provolatile = 'v') FROM pg_proc WHERE proname = ANY(%s::text[])",
            ([name.split(".")[-1] for name in names],),
        ).fetchone()
        return bool(row and row[0])


@contextmanager
def measuring(url: str) -> Iterator[Measurer]:
    with psycopg.connect(url) as connection:
        connection.execute("SET TRANSACTION READ ONLY")
        connection.execute("SET statement_timeout = '60s'")
        try:
            yield Measurer(connection)
        finally:
            connection.rollback()
