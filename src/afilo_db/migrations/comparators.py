"""What plain Alembic autogenerate does not compare, and this schema uses.

Measured on this schema: Alembic finds new tables, columns (generated ones included) and indexes
(GIN, HNSW, expression and partial ones included), but not

- CHECK and EXCLUDE constraints added to or dropped from an existing table;
- an index whose access method (btree -> gin) or partial predicate changed under the same name.

These comparators add that. Extensions, functions and policies come from alembic-utils
(afilo_db.migrations.entities). A changed CHECK expression under the same name is not compared:
PostgreSQL rewrites the expression (pg_get_constraintdef), so text comparison would report noise;
rename the constraint when its rule changes.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import comparators
from alembic.autogenerate.api import AutogenContext
from alembic.operations import ops
from sqlalchemy import CheckConstraint, Index, MetaData, Table, text
from sqlalchemy.dialects.postgresql import ExcludeConstraint

_TABLE_CONSTRAINTS = text(
    """
    SELECT con.conname, con.contype,
           CASE con.contype WHEN 'c' THEN pg_get_expr(con.conbin, con.conrelid) END
    FROM pg_constraint con
    JOIN pg_class rel ON rel.oid = con.conrelid
    JOIN pg_namespace nsp ON nsp.oid = rel.relnamespace
    WHERE rel.relname = :table AND nsp.nspname = coalesce(:schema, current_schema())
      AND con.contype IN ('c', 'x') AND con.conparentid = 0
    """
)

_TABLE_INDEXES = text(
    """
    SELECT cls.relname, am.amname, idx.indpred IS NOT NULL AS partial
    FROM pg_index idx
    JOIN pg_class cls ON cls.oid = idx.indexrelid
    JOIN pg_am am ON am.oid = cls.relam
    JOIN pg_class rel ON rel.oid = idx.indrelid
    JOIN pg_namespace nsp ON nsp.oid = rel.relnamespace
    WHERE rel.relname = :table AND nsp.nspname = coalesce(:schema, current_schema())
    """
)


@comparators.dispatch_for("table")
def compare_check_and_exclude_constraints(
    autogen_context: AutogenContext,
    modify_table_ops: ops.ModifyTableOps,
    schema: str | None,
    table_name: str,
    conn_table: Table | None,
    metadata_table: Table | None,
) -> None:
    if conn_table is None or metadata_table is None or autogen_context.connection is None:
        return  # new and dropped tables carry their constraints with them
    rows = autogen_context.connection.execute(
        _TABLE_CONSTRAINTS, {"table": table_name, "schema": schema}
    ).all()
    in_database = {str(name): (str(kind), expression) for name, kind, expression in rows}
    declared = {
        str(constraint.name): constraint
        for constraint in metadata_table.constraints
        if isinstance(constraint, CheckConstraint | ExcludeConstraint) and constraint.name
    }
    for name, constraint in sorted(declared.items()):
        if name not in in_database:
            modify_table_ops.ops.append(ops.AddConstraintOp.from_constraint(constraint))
    for name, (kind, expression) in sorted(in_database.items()):
        if name in declared:
            continue
        if kind == "c":
            # With the rule it drops, so that the revision's downgrade (which Alembic writes
            # by reversing each operation) can put it back.
            check = CheckConstraint(text(expression), name=name)
            Table(table_name, MetaData(), schema=schema).append_constraint(check)
            modify_table_ops.ops.append(ops.DropConstraintOp.from_constraint(check))
        else:
            modify_table_ops.ops.append(ops.DropConstraintOp(name, table_name, schema=schema))


def _declared_method(index: Index) -> str:
    using: Any = index.dialect_options["postgresql"].get("using")
    return str(using or "btree").lower()


def _declared_partial(index: Index) -> bool:
    return index.dialect_options["postgresql"].get("where") is not None


@comparators.dispatch_for("table")
def compare_index_definitions(
    autogen_context: AutogenContext,
    modify_table_ops: ops.ModifyTableOps,
    schema: str | None,
    table_name: str,
    conn_table: Table | None,
    metadata_table: Table | None,
) -> None:
    if conn_table is None or metadata_table is None or autogen_context.connection is None:
        return
    rows = autogen_context.connection.execute(
        _TABLE_INDEXES, {"table": table_name, "schema": schema}
    ).all()
    in_database = {str(name): (str(method), bool(partial)) for name, method, partial in rows}
    for index in sorted(metadata_table.indexes, key=lambda item: str(item.name)):
        existing = in_database.get(str(index.name))
        if existing is None:
            continue  # a new index: Alembic's own comparison adds it
        if existing != (_declared_method(index), _declared_partial(index)):
            modify_table_ops.ops.append(
                ops.DropIndexOp(str(index.name), table_name=table_name, schema=schema)
            )
            modify_table_ops.ops.append(ops.CreateIndexOp.from_index(index))
