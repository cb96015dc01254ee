"""VACUUM, CLUSTER, REINDEX, REFRESH MATERIALIZED VIEW, LOCK: whole-table work and explicit
locks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pglast import ast
from pglast.enums import (
    ReindexObjectType,
)

from afilo_db.migrate.review.families.registry import compares
from afilo_db.migrate.review.findings import StatementReview
from afilo_db.migrate.review.locks import (
    ACCESS_EXCLUSIVE,
    BLOCKS,
    EXCLUSIVE,
    LEVELS,
    SHARE,
    SHARE_UPDATE_EXCLUSIVE,
    blocks_traffic,
)
from afilo_db.migrate.review.syntax import (
    relation_name,
)

if TYPE_CHECKING:
    from afilo_db.migrate.review.analysis import Analyzer


def maintenance(
    analyzer: Analyzer, statement: StatementReview, table: str | None, what: str
) -> None:
    if analyzer.existing(statement, table):
        statement.rewrites = True
        statement.find(
            "blocking-maintenance",
            analyzer.blocking(statement),
            f"{what} holds {statement.lock} on {table} ({analyzer.size_words(statement)}) "
            f"while it works through the whole table: it blocks {statement.blocks}",
            statement.table_rows,
        )


def whole_database(analyzer: Analyzer, statement: StatementReview, what: str) -> None:
    statement.find(
        "blocking-maintenance",
        "error",
        f"{what} works through every table it reaches, each under a lock that blocks it",
    )


@compares(ast.VacuumStmt)
def vacuum(analyzer: Analyzer, statement: StatementReview, node: ast.VacuumStmt) -> None:
    options = {option.defname for option in node.options or ()}
    if not node.is_vacuumcmd:
        analyzer.lock(statement, SHARE_UPDATE_EXCLUSIVE)
        return
    statement.transactional = False
    if "full" not in options:
        analyzer.lock(statement, SHARE_UPDATE_EXCLUSIVE)
        return
    analyzer.lock(statement, ACCESS_EXCLUSIVE)
    if not node.rels:
        whole_database(analyzer, statement, "VACUUM FULL of the whole database")
    for item in node.rels or ():
        maintenance(analyzer, statement, relation_name(item.relation), "VACUUM FULL")


@compares(ast.ClusterStmt)
def cluster(analyzer: Analyzer, statement: StatementReview, node: ast.ClusterStmt) -> None:
    analyzer.lock(statement, ACCESS_EXCLUSIVE)
    if node.relation is None:
        statement.transactional = False
        whole_database(analyzer, statement, "CLUSTER of every clustered table")
        return
    maintenance(analyzer, statement, relation_name(node.relation), "CLUSTER")


@compares(ast.ReindexStmt)
def reindex(analyzer: Analyzer, statement: StatementReview, node: ast.ReindexStmt) -> None:
    concurrently = any(option.defname == "concurrently" for option in node.params or ())
    if concurrently:
        analyzer.lock(statement, SHARE_UPDATE_EXCLUSIVE)
        statement.transactional = False
        return
    analyzer.lock(statement, SHARE)
    statement.other_locks["its indexes"] = ACCESS_EXCLUSIVE
    name = relation_name(node.relation)
    if node.kind == ReindexObjectType.REINDEX_OBJECT_INDEX:
        table = analyzer.m.index_table(name) if name else None
        maintenance(analyzer, statement, table, f"REINDEX INDEX {name}")
    elif node.kind == ReindexObjectType.REINDEX_OBJECT_TABLE:
        maintenance(analyzer, statement, name, "REINDEX TABLE")
    else:
        statement.transactional = False
        whole_database(analyzer, statement, f"REINDEX {str(node.kind).split('_')[-1]}")


@compares(ast.RefreshMatViewStmt)
def refresh_materialized_view(
    analyzer: Analyzer, statement: StatementReview, node: ast.RefreshMatViewStmt
) -> None:
    if node.concurrent:
        analyzer.lock(statement, EXCLUSIVE)
        return
    analyzer.lock(statement, ACCESS_EXCLUSIVE)
    maintenance(analyzer, statement, relation_name(node.relation), "REFRESH MATERIALIZED VIEW")


@compares(ast.LockStmt)
def lock_table(analyzer: Analyzer, statement: StatementReview, node: ast.LockStmt) -> None:
    lock = LEVELS[max(1, min(node.mode or len(LEVELS), len(LEVELS))) - 1]
    analyzer.lock(statement, lock)
    for relation in node.relations or ():
        table = relation_name(relation)
        if analyzer.existing(statement, table) and blocks_traffic(lock):
            statement.find(
                "explicit-lock",
                analyzer.blocking(statement),
                f"LOCK TABLE {table} IN {lock} MODE ({analyzer.size_words(statement)}) blocks "
                f"{BLOCKS[lock]} until the migration commits, everything after it included",
                statement.table_rows,
            )
