"""UPDATE and DELETE: rows affected and rows lost, and what earlier writes of the migration
leave behind for the statements after them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pglast import ast
from psycopg import sql as pgsql

from afilo_db.migrate.review.families.registry import compares
from afilo_db.migrate.review.findings import StatementReview
from afilo_db.migrate.review.locks import (
    ACCESS_EXCLUSIVE,
    ROW_EXCLUSIVE,
)
from afilo_db.migrate.review.syntax import (
    deparse,
    relation_name,
)

if TYPE_CHECKING:
    from afilo_db.migrate.review.analysis import Analyzer


def written(analyzer: Analyzer, table: str, where: Any, values: dict[str, str] | None) -> None:
    condition = deparse(where) if where is not None else None
    analyzer.writes.setdefault(table, []).append((condition, values))


def null_after_writes(analyzer: Analyzer, table: str, column: str, now_null: str) -> str:
    """The condition a row meets when `column` is NULL once this migration's earlier
    UPDATEs and DELETEs of the table have run (each judged on the rows as they are)."""
    conditions = [now_null]
    for where, values in analyzer.writes.get(table, []):
        reached = f"coalesce(({where}), false)" if where else "true"
        if values is None:
            conditions.append(f"NOT {reached}")
        elif column in values:
            conditions.append(f"NOT ({reached} AND ({values[column]}) IS NOT NULL)")
    return " AND ".join(conditions)


def dml_rows(analyzer: Analyzer, statement: StatementReview, table: str | None, where: Any) -> int:
    if table is None or not analyzer.existing(statement, table):
        return 0
    analyzer.lock(statement, ROW_EXCLUSIVE)
    query = pgsql.SQL("SELECT count(*) FROM {}").format(analyzer.rows_of(table))
    if where is not None:
        query += pgsql.SQL(" WHERE {}").format(pgsql.SQL(deparse(where)))
    return analyzer.measure(statement, "rows affected", query)


@compares(ast.UpdateStmt)
def update(analyzer: Analyzer, statement: StatementReview, node: ast.UpdateStmt) -> None:
    table = relation_name(node.relation)
    rows = dml_rows(analyzer, statement, table, node.whereClause)
    if table is not None and not node.fromClause:
        values = {
            str(target.name): deparse(target.val)
            for target in node.targetList or ()
            if isinstance(target, ast.ResTarget) and target.name and target.val is not None
        }
        written(analyzer, table, node.whereClause, values)
    if rows >= analyzer.limits.large_rows:
        statement.find(
            "large-update",
            "error",
            f"one UPDATE of {rows} rows of {table} holds their row locks (and every writer "
            "of them waits) until the migration commits",
            rows,
        )
    elif rows and analyzer.transaction.locks.get(str(table)) == ACCESS_EXCLUSIVE:
        statement.find(
            "large-update",
            analyzer.scanning(statement),
            f"this UPDATE of {rows} rows runs while the transaction holds ACCESS EXCLUSIVE "
            f"on {table}: no one reads the table until it commits",
            rows,
        )


@compares(ast.DeleteStmt)
def delete(analyzer: Analyzer, statement: StatementReview, node: ast.DeleteStmt) -> None:
    table = relation_name(node.relation)
    rows = dml_rows(analyzer, statement, table, node.whereClause)
    if table is not None and not node.usingClause:
        written(analyzer, table, node.whereClause, None)
    if rows:
        statement.find("data-loss", "error", f"DELETE removes {rows} rows of {table}", rows)
