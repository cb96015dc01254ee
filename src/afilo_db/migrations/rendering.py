"""How `migrate new` writes index builds: concurrently, outside the transaction, last.

An index added to a table that already exists is built with CREATE INDEX CONCURRENTLY inside
`op.get_context().autocommit_block()`, so writers are never blocked for the length of the build,
and after the revision's other operations: if those fail, they roll back before any index is built.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from alembic.autogenerate.api import AutogenContext
from alembic.autogenerate.render import render_op_text, renderers
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text


class ConcurrentIndexOp(ops.MigrateOperation):
    """A CreateIndexOp rendered inside an autocommit block."""

    def __init__(self, create: ops.CreateIndexOp) -> None:
        self.create = create


@renderers.dispatch_for(ConcurrentIndexOp)
def _render_concurrent_index(autogen_context: AutogenContext, op: ConcurrentIndexOp) -> str:
    inner = render_op_text(autogen_context, op.create)
    indented = "\n".join("    " + line for line in inner.splitlines())
    return "with op.get_context().autocommit_block():\n" + indented


def _table_exists(context: MigrationContext, table: str, schema: str | None) -> bool:
    assert context.connection is not None
    name = f"{schema}.{table}" if schema else table
    return bool(
        context.connection.execute(
            text("SELECT to_regclass(:name) IS NOT NULL"), {"name": name}
        ).scalar()
    )


def build_indexes_concurrently(
    context: MigrationContext, revision: Any, directives: Iterable[ops.MigrationScript]
) -> None:
    """process_revision_directives hook for `migrate new`."""
    for script in directives:
        for upgrade in script.upgrade_ops_list:
            concurrent: list[ops.MigrateOperation] = []
            for container in upgrade.ops:
                if not isinstance(container, ops.ModifyTableOps):
                    continue
                if not _table_exists(context, container.table_name, container.schema):
                    continue
                kept: list[ops.MigrateOperation] = []
                for operation in container.ops:
                    if isinstance(operation, ops.CreateIndexOp):
                        operation.kw["postgresql_concurrently"] = True
                        concurrent.append(ConcurrentIndexOp(operation))
                    else:
                        kept.append(operation)
                container.ops = kept
            upgrade.ops = [
                operation
                for operation in upgrade.ops
                if not (isinstance(operation, ops.ModifyTableOps) and not operation.ops)
            ] + concurrent
        # Going down, an index is dropped in the revision's transaction (a brief lock), so a
        # failed downgrade rolls back whole.
        for downgrade in script.downgrade_ops_list:
            for container in downgrade.ops:
                for operation in getattr(container, "ops", ()):
                    if isinstance(operation, ops.DropIndexOp):
                        operation.kw.pop("postgresql_concurrently", None)
