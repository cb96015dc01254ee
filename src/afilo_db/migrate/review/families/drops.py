"""DROP, TRUNCATE, RENAME, SET SCHEMA: what goes, with the rows and values it held, and the
names the running code loses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pglast import ast
from pglast.enums import (
    DropBehavior,
    ObjectType,
)
from psycopg import sql as pgsql

from afilo_db.migrate.review.families.registry import compares
from afilo_db.migrate.review.findings import StatementReview
from afilo_db.migrate.review.locks import (
    ACCESS_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
)
from afilo_db.migrate.review.syntax import (
    deparse,
    identifier,
    qualified_name,
    relation_name,
)

if TYPE_CHECKING:
    from afilo_db.migrate.review.analysis import Analyzer


@compares(ast.DropStmt)
def drop(analyzer: Analyzer, statement: StatementReview, node: ast.DropStmt) -> None:
    kind = node.removeType
    if kind == ObjectType.OBJECT_POLICY:
        # DROP POLICY name ON table: the table is held ACCESS EXCLUSIVE while it goes.
        for *table, _ in (tuple(part.sval for part in name) for name in node.objects or ()):
            analyzer.existing(statement, qualified_name(table))
            analyzer.lock(statement, ACCESS_EXCLUSIVE)
        analyzer.access.policy_dropped(statement, node.objects)
        return
    if kind == ObjectType.OBJECT_INDEX:
        drop_index(analyzer, statement, node)
        return
    if kind in (ObjectType.OBJECT_SCHEMA, ObjectType.OBJECT_TYPE, ObjectType.OBJECT_DOMAIN):
        if node.behavior == DropBehavior.DROP_CASCADE:
            drop_cascade(analyzer, statement, kind, node.objects)
        return
    if kind not in (
        ObjectType.OBJECT_TABLE,
        ObjectType.OBJECT_VIEW,
        ObjectType.OBJECT_MATVIEW,
        ObjectType.OBJECT_SEQUENCE,
        ObjectType.OBJECT_FOREIGN_TABLE,
    ):
        return
    for name in node.objects or ():
        target = qualified_name(part.sval for part in name)
        if not analyzer.existing(statement, target):
            continue
        analyzer.lock(statement, ACCESS_EXCLUSIVE)
        what = kind.name.removeprefix("OBJECT_").lower().replace("matview", "view")
        statement.find(
            "breaking-change", "error", f"dropping {what} {target} breaks code that uses it"
        )
        if kind == ObjectType.OBJECT_TABLE and statement.table_rows:
            statement.find(
                "data-loss",
                "error",
                f"dropping {target} loses {statement.table_rows} rows",
                statement.table_rows,
            )


def drop_cascade(
    analyzer: Analyzer, statement: StatementReview, kind: ObjectType, objects: Any
) -> None:
    """DROP SCHEMA / TYPE / DOMAIN ... CASCADE: the tables of the schema, or the columns of
    the type, go with it."""
    for name in objects or ():
        target = (
            str(name.sval)
            if isinstance(name, ast.String)
            else deparse(name)
            if isinstance(name, ast.TypeName)
            else ".".join(part.sval for part in name)
        )
        if kind == ObjectType.OBJECT_SCHEMA:
            query = (
                "SELECT c.oid::regclass::text, NULL FROM pg_class c JOIN pg_namespace n"
                " ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind IN ('r', 'p')"
                " AND NOT c.relispartition"
            )
        else:
            query = (
                "SELECT a.attrelid::regclass::text, a.attname FROM pg_attribute a"
                " JOIN pg_class c ON c.oid = a.attrelid WHERE a.atttypid = to_regtype(%s)"
                " AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p')"
                " AND NOT c.relispartition"
            )
        for table, column in analyzer.m.rows(query, (target,)):
            what = f"{table}.{column}" if column else f"table {table}"
            statement.find(
                "breaking-change",
                "error",
                f"DROP {kind.name.removeprefix('OBJECT_')} {target} CASCADE drops {what}",
            )
            counted = pgsql.SQL("SELECT count(*) FROM {}").format(identifier(table))
            if column:
                counted += pgsql.SQL(" WHERE {} IS NOT NULL").format(pgsql.Identifier(column))
            lost = analyzer.measure(statement, f"values lost in {what}", counted)
            if lost:
                statement.find("data-loss", "error", f"dropping {what} loses {lost}", lost)


def drop_index(analyzer: Analyzer, statement: StatementReview, node: ast.DropStmt) -> None:
    if node.concurrent:
        analyzer.lock(statement, SHARE_UPDATE_EXCLUSIVE)
        statement.transactional = False
        return
    analyzer.lock(statement, ACCESS_EXCLUSIVE)
    for name in node.objects or ():
        index = qualified_name(part.sval for part in name)
        table = analyzer.m.index_table(index)
        if analyzer.existing(statement, table):
            statement.find(
                "blocking-index-drop",
                analyzer.blocking(statement),
                f"DROP INDEX {index} holds ACCESS EXCLUSIVE on {table} "
                f"({analyzer.size_words(statement)}): it waits for every query on the table, "
                "and every query waits for it",
                statement.table_rows,
            )


@compares(ast.RenameStmt)
def rename(analyzer: Analyzer, statement: StatementReview, node: ast.RenameStmt) -> None:
    table = relation_name(node.relation)
    if not analyzer.existing(statement, table):
        return
    if node.renameType == ObjectType.OBJECT_INDEX:
        analyzer.lock(statement, SHARE_UPDATE_EXCLUSIVE)
        return
    analyzer.lock(statement, ACCESS_EXCLUSIVE)
    if node.renameType == ObjectType.OBJECT_COLUMN:
        statement.find(
            "breaking-change",
            "error",
            f"renaming {table}.{node.subname} to {node.newname} breaks code that uses the old name",
        )
    elif node.renameType in (
        ObjectType.OBJECT_TABLE,
        ObjectType.OBJECT_VIEW,
        ObjectType.OBJECT_MATVIEW,
    ):
        statement.find(
            "breaking-change",
            "error",
            f"renaming {table} to {node.newname} breaks code that uses the old name",
        )


@compares(ast.AlterObjectSchemaStmt)
def move_to_schema(
    analyzer: Analyzer, statement: StatementReview, node: ast.AlterObjectSchemaStmt
) -> None:
    table = relation_name(node.relation)
    if analyzer.existing(statement, table):
        analyzer.lock(statement, ACCESS_EXCLUSIVE)
        statement.find(
            "breaking-change",
            "error",
            f"moving {table} to schema {node.newschema} breaks code that uses its old name",
        )


@compares(ast.TruncateStmt)
def truncate(analyzer: Analyzer, statement: StatementReview, node: ast.TruncateStmt) -> None:
    for relation in node.relations or ():
        table = relation_name(relation)
        if analyzer.existing(statement, table):
            analyzer.lock(statement, ACCESS_EXCLUSIVE)
            if statement.table_rows:
                statement.find(
                    "data-loss",
                    "error",
                    f"TRUNCATE {table} deletes {statement.table_rows} rows",
                    statement.table_rows,
                )
