"""CREATE TABLE, CREATE TABLE AS, CREATE INDEX: the new object, the lock an index build holds
on its table, and the rows that break a new unique key."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pglast import ast
from psycopg import sql as pgsql

from afilo_db.migrate.review.families.registry import compares
from afilo_db.migrate.review.findings import StatementReview
from afilo_db.migrate.review.locks import (
    SHARE,
    SHARE_ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
)
from afilo_db.migrate.review.syntax import (
    column_names,
    deparse,
    relation_name,
)

if TYPE_CHECKING:
    from afilo_db.migrate.review.analysis import Analyzer


@compares(ast.CreateStmt)
def create_table(analyzer: Analyzer, statement: StatementReview, node: ast.CreateStmt) -> None:
    table = relation_name(node.relation)
    statement.table = table
    if table is not None:
        analyzer.m.created_tables.add(table)
    for element in node.tableElts or ():
        constraints = element.constraints if isinstance(element, ast.ColumnDef) else (element,)
        for constraint in constraints or ():
            if isinstance(constraint, ast.Constraint) and constraint.pktable is not None:
                referenced = relation_name(constraint.pktable)
                if referenced and referenced != table:
                    statement.other_locks[referenced] = SHARE_ROW_EXCLUSIVE


@compares(ast.CreateTableAsStmt)
def create_table_as(
    analyzer: Analyzer, statement: StatementReview, node: ast.CreateTableAsStmt
) -> None:
    table = relation_name(node.into.rel) if node.into else None
    statement.table = table
    if table is not None:
        analyzer.m.created_tables.add(table)


@compares(ast.IndexStmt)
def create_index(analyzer: Analyzer, statement: StatementReview, node: ast.IndexStmt) -> None:
    table = relation_name(node.relation)
    existing = analyzer.existing(statement, table)
    if node.concurrent:
        analyzer.lock(statement, SHARE_UPDATE_EXCLUSIVE)
        statement.transactional = False
    else:
        analyzer.lock(statement, SHARE)
    statement.scans = existing
    if existing and not node.concurrent:
        statement.find(
            "blocking-index-build",
            analyzer.blocking(statement),
            f"CREATE INDEX on {table} ({analyzer.size_words(statement)}) blocks every write "
            "to it until the index is built",
            statement.table_rows,
        )
    if existing and node.unique:
        unique_violations(analyzer, statement, table, node.indexParams, node.whereClause)


def unique_violations(
    analyzer: Analyzer,
    statement: StatementReview,
    table: str | None,
    params: Any,
    where: Any = None,
    primary: bool = False,
) -> None:
    expressions = [
        pgsql.Identifier(item.name) if item.name else pgsql.SQL(deparse(item.expr))
        for item in params or ()
        if isinstance(item, ast.IndexElem)
    ] or [pgsql.Identifier(name) for name in column_names(params)]
    if table is None or not expressions:
        return
    keys = pgsql.SQL(", ").join(expressions)
    filters = [pgsql.SQL("({}) IS NOT NULL").format(key) for key in expressions]
    if where is not None:
        filters.append(pgsql.SQL("({})").format(pgsql.SQL(deparse(where))))
    query = pgsql.SQL(
        "SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM {} WHERE {}"
        " GROUP BY {} HAVING count(*) > 1) AS duplicates"
    ).format(analyzer.rows_of(table), pgsql.SQL(" AND ").join(filters), keys)
    violations = analyzer.measure(statement, "rows with duplicate keys", query)
    if primary:
        violations += analyzer.measure(
            statement,
            "rows with a NULL key",
            pgsql.SQL("SELECT count(*) FROM {} WHERE NOT ({})").format(
                analyzer.rows_of(table), pgsql.SQL(" AND ").join(filters)
            ),
        )
    if violations:
        statement.find(
            "constraint-violated",
            "error",
            f"{violations} rows of {table} break the new key (duplicates"
            + (" or NULLs)" if primary else ")"),
            violations,
        )
