"""Suggested indexes for the slowest statements, as PgHero suggests them.

For the statements with the highest mean time in pg_stat_statements, the planner's generic plan
(EXPLAIN (GENERIC_PLAN), PostgreSQL 16+: the normalised text keeps its $1 placeholders) is read;
where a sequential scan with a filter costs at least half of the plan, on a table big enough that
an index would pay, the columns of that filter make the suggested index: the ones compared with
`=` first (they can lead a b-tree), then the others. A column that already leads an index is
left alone: the planner had its reasons, and another index would not change them.

Each suggestion is shown as the revision that would add it: the `Index(...)` to declare on the
model, then `afilo-db migrate new`, which writes CREATE INDEX CONCURRENTLY for an existing table.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg import sql

from afilo_db.inspect.queries import (
    STATEMENT_CHARACTERS,
    Inspector,
    StatementStatisticsMissingError,
    enable_statements_hint,
    statement_columns,
)
from afilo_db.models import Base

# Statements examined: the slowest by mean time; planning each is cheap.
CANDIDATE_STATEMENTS = 20
# A sequential scan "dominates" when it is at least this share of the plan's total cost.
DOMINANT_COST_SHARE = 0.5
MAX_INDEX_COLUMNS = 3
GENERIC_PLAN_VERSION = 160000
EXPLAINABLE = ("select", "with", "update", "delete")


@dataclass(frozen=True)
class Suggestion:
    statement: str
    calls: int
    mean_ms: float
    table: str
    columns: tuple[str, ...]
    index_name: str
    create_sql: str
    model: str | None
    """The model class of `table` (where to declare the index), if the models have one."""
    declaration: str
    migrate_command: str
    reason: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Skipped:
    statement: str
    reason: str


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _plan_nodes(child)


def filter_columns(condition: str, columns: list[str]) -> tuple[str, ...]:
    """The table's `columns` named in a plan's Filter, those compared with `=` first."""
    named = [
        column
        for column in sorted(columns, key=lambda column: condition.find(column))
        if re.search(rf"\b{re.escape(column)}\b", condition)
    ]
    equal = [
        column
        for column in named
        if re.search(rf"\b{re.escape(column)}\)?(::[\w ]+)?\)? = ", condition)
    ]
    ordered = equal + [column for column in named if column not in equal]
    return tuple(ordered[:MAX_INDEX_COLUMNS])


def _model_of(table: str) -> str | None:
    for mapper in Base.registry.mappers:
        if getattr(mapper.local_table, "name", None) == table:
            return f"{mapper.class_.__module__}.{mapper.class_.__name__}"
    return None


def _suggestion(
    statement: str, calls: int, mean_ms: float, table: str, columns: tuple[str, ...], share: float
) -> Suggestion:
    # The models' naming convention (afilo_db.models.base.NAMING_CONVENTION), so that the
    # revision `migrate new` writes names it the same.
    name = f"ix_{table}_{'_'.join(columns)}"
    listed = ", ".join(f'"{column}"' for column in columns)
    return Suggestion(
        statement=statement,
        calls=calls,
        mean_ms=mean_ms,
        table=table,
        columns=columns,
        index_name=name,
        create_sql=sql.SQL("CREATE INDEX CONCURRENTLY {} ON {} ({})")
        .format(
            sql.Identifier(name),
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, columns)),
        )
        .as_string(),
        model=_model_of(table),
        declaration=f'Index("{name}", {listed})',
        migrate_command=f'afilo-db migrate new "index {table} by {" and ".join(columns)}"',
        reason=f"a sequential scan of {table} filtering on {', '.join(columns)} is "
        f"{share:.0%} of the plan's cost",
    )


def suggest_indexes(
    inspector: Inspector, *, min_rows: int
) -> tuple[list[Suggestion], list[Skipped]]:
    """Suggested indexes for the slowest statements of this database, and the statements that
    could not be judged, with why."""
    facts = inspector.facts
    if not facts.statements_ready or facts.statements_version is None:
        raise StatementStatisticsMissingError(enable_statements_hint(facts))
    columns = statement_columns(facts.statements_version)
    candidates = inspector.rows(
        sql.SQL(
            "SELECT query, calls, {mean}::float8 FROM {view}"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND {toplevel} ORDER BY {mean} DESC LIMIT %s"
        ).format(
            mean=sql.SQL(columns["mean"]),
            toplevel=sql.SQL(columns["toplevel"]),
            view=sql.Identifier(str(facts.statements_schema), "pg_stat_statements"),
        ),
        (CANDIDATE_STATEMENTS,),
    ).rows
    suggestions: dict[str, Suggestion] = {}
    skipped: list[Skipped] = []
    for statement, calls, mean_ms in candidates:
        text = str(statement).strip()
        shown = text[:STATEMENT_CHARACTERS]
        if not text.lower().startswith(EXPLAINABLE):
            continue
        generic = facts.version_num >= GENERIC_PLAN_VERSION
        if not generic and re.search(r"\$\d", text):
            skipped.append(Skipped(shown, "its generic plan needs PostgreSQL 16 or later"))
            continue
        options = "FORMAT JSON, GENERIC_PLAN" if generic else "FORMAT JSON"
        try:
            plan = inspector.rows(f"EXPLAIN ({options}) {text}").rows[0][0][0]["Plan"]
        except psycopg.Error as error:
            skipped.append(Skipped(shown, f"EXPLAIN failed: {str(error).strip().splitlines()[0]}"))
            continue
        total = float(plan.get("Total Cost") or 0) or 1.0
        for node in _plan_nodes(plan):
            if node.get("Node Type") != "Seq Scan" or "Filter" not in node:
                continue
            share = float(node["Total Cost"]) / total
            if share < DOMINANT_COST_SHARE:
                continue
            found = _candidate(inspector, node["Relation Name"], node["Filter"], min_rows)
            if isinstance(found, str):
                skipped.append(Skipped(shown, found))
                continue
            suggestion = _suggestion(
                shown, int(calls), float(mean_ms), node["Relation Name"], found, share
            )
            suggestions.setdefault(suggestion.index_name, suggestion)
    return list(suggestions.values()), skipped


def _candidate(
    inspector: Inspector, table: str, condition: str, min_rows: int
) -> tuple[str, ...] | str:
    """The columns to index on `table` for `condition`, or why none."""
    row = inspector.rows(
        "SELECT c.reltuples, array_agg(a.attname::text ORDER BY a.attnum),"
        " array(SELECT DISTINCT l.attname::text FROM pg_index i"
        "   JOIN pg_attribute l ON l.attrelid = i.indrelid AND l.attnum = i.indkey[0]"
        "   WHERE i.indrelid = c.oid AND i.indisvalid)"
        " FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid"
        " WHERE c.oid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped"
        " GROUP BY c.oid, c.reltuples",
        (table,),
    ).rows
    if not row:
        return f"{table} is not on the search path"
    rows, table_columns, leading = row[0]
    if rows < min_rows:
        return f"{table} has about {max(int(rows), 0):,} rows, fewer than {min_rows:,}: a scan is right"
    columns = filter_columns(condition, list(table_columns))
    if not columns:
        return f"the filter on {table} names no column of it: {condition}"
    if columns[0] in leading:
        return f"{columns[0]} already leads an index of {table} the planner chose not to use"
    return columns
