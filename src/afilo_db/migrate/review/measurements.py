"""Read-only questions to the target database: does a table exist, how many rows and bytes it
holds, how many rows a statement touches, loses or would fail on, what a column's type is."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from pglast import ast
from psycopg import sql as pgsql

from afilo_db.config import get_settings
from afilo_db.migrate.review.syntax import identifier, walk

# pg_class.relkind: relations that hold rows (tables, partitioned tables, materialized views)
# and those that do not (views, foreign tables, sequences).
STORED_KINDS = ("r", "p", "m")
ROWLESS_KINDS = ("v", "f", "S")
# Rows converted by one statement when counting the rows a type change fails on.
CONVERSION_CHUNK_ROWS = 500


@dataclass(frozen=True)
class Thresholds:
    """When a danger becomes an error, by the measured size of the table it touches.

    `tiny_rows`: a table holding at most this many rows is tiny: a statement that blocks it
    while it rewrites, builds or scans is a note there, an error on any bigger table.
    `large_rows` / `large_bytes`: from either of these on, a table is large: scans under a lock
    (SET NOT NULL, a CHECK or foreign key validated as it is added) and one UPDATE of that many
    rows are errors, not warnings.
    """

    tiny_rows: int = 0
    large_rows: int = 10_000
    large_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class TableSize:
    rows: int
    bytes: int


class MeasurementError(Exception):
    """A measurement the database did not answer (an error, a timeout, a lock wait)."""


class Measurer:
    """Read-only questions to the target, each in a savepoint so that one failure (a column
    added earlier in the same migration, a cast that fails, a timeout) spoils nothing else."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection
        self.created_tables: set[str] = set()
        self._sizes: dict[str, TableSize] = {}

    def row(self, query: pgsql.Composed | pgsql.SQL | str, params: tuple[Any, ...] = ()) -> Any:
        try:
            with self.connection.transaction():
                return self.connection.execute(query, params or None).fetchone()
        except psycopg.Error as error:
            raise MeasurementError(str(error).splitlines()[0]) from error

    def rows(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            with self.connection.transaction():
                return self.connection.execute(query, params or None).fetchall()
        except psycopg.Error as error:
            raise MeasurementError(str(error).splitlines()[0]) from error

    def _kind(self, relation: str) -> str | None:
        row = self.row("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (relation,))
        return str(row[0]) if row else None

    def table_exists(self, table: str) -> bool:
        """Whether `table` is a relation that exists before this migration: a table, a
        materialized or plain view, a foreign table, a sequence (not an index)."""
        if table in self.created_tables:
            return False
        return self._kind(table) in STORED_KINDS + ROWLESS_KINDS

    def size(self, table: str) -> TableSize:
        """Rows (counted, not estimated) and bytes (with indexes and TOAST) of an existing table;
        nothing for a view, a foreign table or a sequence, which hold no rows of their own."""
        if table not in self._sizes:
            if self._kind(table) in ROWLESS_KINDS:
                self._sizes[table] = TableSize(0, 0)
                return self._sizes[table]
            rows = self.count(pgsql.SQL("SELECT count(*) FROM {}").format(identifier(table)))
            row = self.row("SELECT pg_total_relation_size(to_regclass(%s))", (table,))
            self._sizes[table] = TableSize(rows, int(row[0] or 0) if row else 0)
        return self._sizes[table]

    def count(self, query: pgsql.Composed | pgsql.SQL | str) -> int:
        row = self.row(query)
        return int(row[0]) if row and row[0] is not None else 0

    def value(self, query: str, params: tuple[Any, ...] = ()) -> Any:
        row = self.row(query, params)
        return row[0] if row else None

    def conversion_by_row(
        self, table: str, expression: str, target_type: str, differs: str, present: str
    ) -> tuple[int, int]:
        """(rows on which `expression`, assigned to `target_type` as ALTER COLUMN ... TYPE
        assigns it, raises an error; rows on which `differs` holds). Used once the one-scan
        conversion is known to fail somewhere: chunks of rows are converted in one statement
        each, and only a chunk that fails is gone through row by row."""
        body = pgsql.SQL(
            "DECLARE chunk tid[]; row_id tid; converted {type}; found bigint;"
            " failed bigint := 0; changed bigint := 0;"
            " BEGIN FOR chunk IN SELECT array_agg(ctid) FROM (SELECT ctid,"
            " (row_number() OVER ()) / {size} AS number FROM {table}) AS numbered"
            " GROUP BY number LOOP BEGIN"
            " SELECT count(*) FILTER (WHERE {present} AND ({differs}))"
            " + 0 * count(CAST(({expression}) AS {type})) INTO found"
            " FROM {table} WHERE ctid = ANY (chunk); changed := changed + found;"
            " EXCEPTION WHEN data_exception THEN FOREACH row_id IN ARRAY chunk LOOP BEGIN"
            " converted := (SELECT ({expression}) FROM {table} WHERE ctid = row_id);"
            " IF (SELECT ({differs}) FROM {table} WHERE ctid = row_id AND {present}) THEN"
            " changed := changed + 1; END IF;"
            " EXCEPTION WHEN data_exception THEN failed := failed + 1; END; END LOOP; END;"
            " END LOOP;"
            " PERFORM set_config('afilo_review.conversion', failed || ',' || changed, true); END"
        ).format(
            type=pgsql.SQL(target_type),
            table=identifier(table),
            expression=pgsql.SQL(expression),
            differs=pgsql.SQL(differs),
            present=pgsql.SQL(present),
            size=pgsql.Literal(CONVERSION_CHUNK_ROWS),
        )
        block = pgsql.SQL("DO {}").format(pgsql.Literal(body.as_string(self.connection)))
        try:
            with self.connection.transaction():
                self.connection.execute(block)
                row = self.connection.execute(
                    "SELECT current_setting('afilo_review.conversion')"
                ).fetchone()
        except psycopg.Error as error:
            raise MeasurementError(str(error).splitlines()[0]) from error
        failed, changed = str(row[0] if row else "0,0").split(",")
        return int(failed), int(changed)

    def column_type(self, table: str, column: str) -> str | None:
        row = self.row(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = to_regclass(%s) AND attname = %s AND NOT attisdropped",
            (table, column),
        )
        return str(row[0]) if row else None

    def index_table(self, index: str) -> str | None:
        """The table an existing index belongs to."""
        row = self.row(
            "SELECT indrelid::regclass::text FROM pg_index WHERE indexrelid = to_regclass(%s)",
            (index,),
        )
        return str(row[0]) if row else None

    def is_volatile(self, expression: ast.Node | None) -> bool:
        names = [
            ".".join(part.sval for part in node.funcname or ())
            for node in walk(expression)
            if isinstance(node, ast.FuncCall)
        ]
        if not names:
            return False
        row = self.row(
            "SELECT bool_or(provolatile = 'v') FROM pg_proc WHERE proname = ANY(%s::text[])",
            ([name.split(".")[-1] for name in names],),
        )
        return bool(row and row[0])


@contextmanager
def measuring(url: str, timeout: str | None = None) -> Iterator[Measurer]:
    """A read-only connection whose every question gives up after `timeout` (a PostgreSQL
    duration; default AFILO_REVIEW_MEASURE_TIMEOUT), waiting for a lock included: a question it
    gives up on is an error of the review, never a zero."""
    timeout = timeout or get_settings().afilo_review_measure_timeout
    with psycopg.connect(url) as connection:
        connection.execute("SET TRANSACTION READ ONLY")
        connection.execute(pgsql.SQL("SET statement_timeout = {}").format(pgsql.Literal(timeout)))
        connection.execute(pgsql.SQL("SET lock_timeout = {}").format(pgsql.Literal(timeout)))
        try:
            yield Measurer(connection)
        finally:
            connection.rollback()
