"""Compliance exports: everything that belongs to one user as one JSON document, and whole tables
with COPY (CSV or JSON lines). Both read one consistent snapshot."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql

from afilo_db.data.ownership import TableName, derive_ownership, find_user_id, qualified
from afilo_db.db.programs import Progress, no_progress
from afilo_db.errors import NotFoundError, ValidationError
from afilo_db.files import private_atomic_file, write_private

ExportFormat = Literal["csv", "jsonl"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "jsonl")

# Whole tables: partitioned tables as one (not their partitions), outside the system schemas,
# not owned by an extension.
EXPORTED_TABLES = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""


@contextmanager
def _snapshot(url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(url) as connection:
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        connection.read_only = True
        yield connection


def _require_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise ValidationError(
            {"out": f"the folder {folder} does not exist (create it first); nothing was written"}
        )


def export_user(url: str, clerk_user_id: str, out: Path) -> dict[str, int]:
    """Write every row that belongs to the user, table by table, as one JSON document; the number
    of rows per table. Its folder must exist: a mistyped path is refused, not created."""
    _require_folder(out.parent)
    with _snapshot(url) as connection:
        user_id = find_user_id(connection, clerk_user_id)
        if user_id is None:
            raise NotFoundError(f"no user with clerk_user_id {clerk_user_id!r}")
        ownership = derive_ownership(connection)
        parts: list[tuple[str, str, int]] = []
        for table in ownership.tables:
            # As JSON text straight from PostgreSQL: numeric values keep their exact digits.
            query = sql.SQL(
                "SELECT coalesce(json_agg(row_to_json(t) ORDER BY t::text), '[]')::text, count(*)"
                " FROM ({}) AS t"
            ).format(ownership.owned_rows(table))
            row = connection.execute(query, {"user_id": user_id}).fetchone()
            assert row is not None
            parts.append((qualified(table), str(row[0]), int(row[1])))
    tables = ",\n".join(f"    {json.dumps(name)}: {rows}" for name, rows, _count in parts)
    header = {"clerk_user_id": clerk_user_id, "exported_at": datetime.now(UTC).isoformat()}
    # Personal data: readable by the operator only, whatever the umask.
    write_private(
        out, json.dumps(header, indent=2)[:-2] + ',\n  "tables": {\n' + tables + "\n  }\n}\n"
    )
    return {name: count for name, _rows, count in parts}


def exported_tables(connection: psycopg.Connection[Any]) -> list[TableName]:
    return [(str(schema), str(name)) for schema, name in connection.execute(EXPORTED_TABLES)]


def export_tables(
    url: str, export_format: str, out_directory: Path, *, progress: Progress = no_progress
) -> dict[str, int]:
    """Every table into `out_directory/<table>.<format>` with COPY; rows per table."""
    if export_format not in EXPORT_FORMATS:
        raise ValidationError({"format": f"one of {', '.join(EXPORT_FORMATS)}"})
    _require_folder(out_directory.parent)
    out_directory.mkdir(exist_ok=True)
    counts: dict[str, int] = {}
    with _snapshot(url) as connection:
        tables = exported_tables(connection)
        for done, table in enumerate(tables, start=1):
            name = qualified(table)
            if export_format == "csv":
                query = sql.SQL("COPY (SELECT * FROM {}) TO STDOUT WITH (FORMAT csv, HEADER)")
            else:
                # One JSON object a line. CSV with a quote and a delimiter that JSON text never
                # holds raw writes each value as is, where the text format would escape backslashes.
                query = sql.SQL(
                    "COPY (SELECT row_to_json(t) FROM {} AS t) TO STDOUT"
                    " WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
                )
            cursor = connection.cursor()
            target = out_directory / f"{name}.{export_format}"
            with (
                private_atomic_file(target) as handle,
                cursor.copy(query.format(sql.Identifier(*table))) as copy,
            ):
                for block in copy:
                    handle.write(block)
            counts[name] = cursor.rowcount
            progress("exporting tables", done, len(tables))
    return counts
