"""One statement: the lock it takes, whether it rewrites or scans, whether it may run in a
transaction, and the measurements and findings that follow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pglast import ast
from pglast.enums import AlterTableType, ConstrType, ObjectType
from psycopg import sql as pgsql

from afilo_db.migrate.review.findings import Severity, StatementReview
from afilo_db.migrate.review.locks import (
    ACCESS_EXCLUSIVE,
    ALTER_TABLE_FORMS,
    BLOCKS,
    ROW_EXCLUSIVE,
    SHARE,
    SHARE_ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
)
from afilo_db.migrate.review.measurements import Measurer
from afilo_db.migrate.review.syntax import column_names, deparse, identifier, relation_name

LARGE_UPDATE_ROWS = 10_000
NOT_TRANSACTIONAL = "cannot run inside a transaction block"


# -- one statement ------------------------------------------------------------------------------


class Analyzer:
    def __init__(self, measurer: Measurer) -> None:
        self.m = measurer

    def statement(self, statement: StatementReview, node: ast.Node) -> None:
        handler: Callable[[StatementReview, Any], None] | None = getattr(
            self, f"_{type(node).__name__}", None
        )
        if handler is not None:
            handler(statement, node)

    def _existing(self, statement: StatementReview, table: str | None) -> bool:
        """Whether `table` holds data already (and so locks and measurements matter)."""
        statement.table = table
        if table is None or not self.m.table_exists(table):
            return False
        rows = self.m.count(pgsql.SQL("SELECT count(*) FROM {}").format(identifier(table)))
        if isinstance(rows, int):
            statement.table_rows = rows
        return True

    def _lock(self, statement: StatementReview, lock: str) -> None:
        statement.lock = lock
        statement.blocks = BLOCKS[lock]

    def _measure(self, statement: StatementReview, label: str, query: pgsql.Composed) -> int:
        value = self.m.count(query)
        if isinstance(value, str):
            statement.notes.append(f"{label}: not measured ({value})")
            return 0
        statement.measurements[label] = value
        return value

    # CREATE TABLE / INDEX ----------------------------------------------------------------------

    def _CreateStmt(self, statement: StatementReview, node: ast.CreateStmt) -> None:  # noqa: N802
        table = relation_name(node.relation)
        statement.table = table
        if table is not None:
            self.m.created_tables.add(table)
        for element in node.tableElts or ():
            constraints = element.constraints if isinstance(element, ast.ColumnDef) else (element,)
            for constraint in constraints or ():
                if isinstance(constraint, ast.Constraint) and constraint.pktable is not None:
                    referenced = relation_name(constraint.pktable)
                    if referenced and referenced != table:
                        statement.other_locks[referenced] = SHARE_ROW_EXCLUSIVE

    def _IndexStmt(self, statement: StatementReview, node: ast.IndexStmt) -> None:  # noqa: N802
        table = relation_name(node.relation)
        existing = self._existing(statement, table)
        if node.concurrent:
            self._lock(statement, SHARE_UPDATE_EXCLUSIVE)
            statement.transactional = False
        else:
            self._lock(statement, SHARE)
        statement.scans = existing
        if existing and not node.concurrent:
            severity: Severity = "error" if statement.table_rows else "warning"
            statement.find(
                "blocking-index-build",
                severity,
                f"CREATE INDEX on {table} ({statement.table_rows} rows) blocks every write to it "
                "until the index is built",
            )
        if existing and node.unique:
            self._unique_violations(statement, table, node.indexParams, node.whereClause)

    def _unique_violations(
        self, statement: StatementReview, table: str | None, params: Any, where: Any = None
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
        ).format(identifier(table), pgsql.SQL(" AND ").join(filters), keys)
        duplicates = self._measure(statement, "rows with duplicate keys", query)
        if duplicates:
            statement.find(
                "constraint-violated",
                "error",
                f"{duplicates} rows of {table} share a key that must become unique",
            )

    # DROP, RENAME, TRUNCATE, DML ---------------------------------------------------------------

    def _DropStmt(self, statement: StatementReview, node: ast.DropStmt) -> None:  # noqa: N802
        if node.removeType == ObjectType.OBJECT_TABLE:
            for name in node.objects or ():
                table = ".".join(part.sval for part in name)
                if not self._existing(statement, table):
                    continue
                self._lock(statement, ACCESS_EXCLUSIVE)
                statement.find(
                    "breaking-change", "error", f"dropping table {table} breaks code that uses it"
                )
                if statement.table_rows:
                    statement.find(
                        "data-loss", "error", f"dropping {table} loses {statement.table_rows} rows"
                    )
        elif node.removeType == ObjectType.OBJECT_INDEX:
            if node.concurrent:
                self._lock(statement, SHARE_UPDATE_EXCLUSIVE)
                statement.transactional = False
            else:
                self._lock(statement, ACCESS_EXCLUSIVE)

    def _RenameStmt(self, statement: StatementReview, node: ast.RenameStmt) -> None:  # noqa: N802
        table = relation_name(node.relation)
        if not self._existing(statement, table):
            return
        self._lock(statement, ACCESS_EXCLUSIVE)
        if node.renameType == ObjectType.OBJECT_COLUMN:
            statement.find(
                "breaking-change",
                "error",
                f"renaming {table}.{node.subname} to {node.newname} breaks code that uses the old "
                "name",
            )
        elif node.renameType == ObjectType.OBJECT_TABLE:
            statement.find(
                "breaking-change",
                "error",
                f"renaming table {table} to {node.newname} breaks code that uses the old name",
            )

    def _TruncateStmt(self, statement: StatementReview, node: ast.TruncateStmt) -> None:  # noqa: N802
        for relation in node.relations or ():
            table = relation_name(relation)
            if self._existing(statement, table) and statement.table_rows:
                self._lock(statement, ACCESS_EXCLUSIVE)
                statement.find(
                    "data-loss", "error", f"TRUNCATE {table} deletes {statement.table_rows} rows"
                )

    def _dml_rows(self, statement: StatementReview, table: str | None, where: Any) -> int:
        if table is None or not self._existing(statement, table):
            return 0
        self._lock(statement, ROW_EXCLUSIVE)
        query = pgsql.SQL("SELECT count(*) FROM {}").format(identifier(table))
        if where is not None:
            query += pgsql.SQL(" WHERE {}").format(pgsql.SQL(deparse(where)))
        return self._measure(statement, "rows affected", query)

    def _UpdateStmt(self, statement: StatementReview, node: ast.UpdateStmt) -> None:  # noqa: N802
        rows = self._dml_rows(statement, relation_name(node.relation), node.whereClause)
        if rows > LARGE_UPDATE_ROWS:
            statement.find(
                "large-update",
                "warning",
                f"one UPDATE of {rows} rows holds their row locks until the migration commits",
            )

    def _DeleteStmt(self, statement: StatementReview, node: ast.DeleteStmt) -> None:  # noqa: N802
        table = relation_name(node.relation)
        rows = self._dml_rows(statement, table, node.whereClause)
        if rows:
            statement.find("data-loss", "error", f"DELETE removes {rows} rows of {table}")

    # ALTER TABLE -------------------------------------------------------------------------------

    def _AlterTableStmt(self, statement: StatementReview, node: ast.AlterTableStmt) -> None:  # noqa: N802
        table = relation_name(node.relation)
        existing = self._existing(statement, table)
        for command in node.cmds or ():
            lock, rewrites, scans = ALTER_TABLE_FORMS.get(
                command.subtype, (ACCESS_EXCLUSIVE, False, False)
            )
            if statement.lock is None or lock == ACCESS_EXCLUSIVE:
                self._lock(statement, lock)
            if not existing:
                continue
            statement.rewrites |= rewrites and command.subtype != AlterTableType.AT_AlterColumnType
            statement.scans |= scans
            self._alter_command(statement, str(table), command)

    def _alter_command(self, statement: StatementReview, table: str, command: Any) -> None:
        subtype = command.subtype
        rows = statement.table_rows or 0
        if subtype == AlterTableType.AT_AddColumn:
            self._add_column(statement, table, command.def_)
        elif subtype == AlterTableType.AT_DropColumn:
            statement.find(
                "breaking-change",
                "error",
                f"dropping {table}.{command.name} breaks code that still reads or writes it",
            )
            lost = self._measure(
                statement,
                f"non-null values in {command.name}",
                pgsql.SQL("SELECT count(*) FROM {} WHERE {} IS NOT NULL").format(
                    identifier(table), pgsql.Identifier(command.name)
                ),
            )
            if lost:
                statement.find(
                    "data-loss", "error", f"dropping {table}.{command.name} loses {lost} values"
                )
        elif subtype == AlterTableType.AT_AlterColumnType:
            self._change_type(statement, table, command.name, command.def_)
        elif subtype == AlterTableType.AT_SetNotNull:
            nulls = self._measure(
                statement,
                f"rows with {command.name} NULL",
                pgsql.SQL("SELECT count(*) FROM {} WHERE {} IS NULL").format(
                    identifier(table), pgsql.Identifier(command.name)
                ),
            )
            if nulls:
                statement.find(
                    "constraint-violated",
                    "error",
                    f"{nulls} rows of {table} have {command.name} NULL: SET NOT NULL will fail",
                )
            elif rows:
                statement.find(
                    "set-not-null-scan",
                    "warning",
                    f"SET NOT NULL scans all {rows} rows of {table} under ACCESS EXCLUSIVE",
                )
        elif subtype == AlterTableType.AT_AddConstraint and isinstance(
            command.def_, ast.Constraint
        ):
            self._add_constraint(statement, table, command.def_)

    def _add_column(self, statement: StatementReview, table: str, column: Any) -> None:
        constraints = list(column.constraints or ())
        kinds = {ConstrType(constraint.contype) for constraint in constraints}
        default = next(
            (c.raw_expr for c in constraints if c.contype == ConstrType.CONSTR_DEFAULT), None
        )
        rows = statement.table_rows or 0
        if ConstrType.CONSTR_GENERATED in kinds and any(
            c.generated_when == "a" and c.contype == ConstrType.CONSTR_GENERATED
            for c in constraints
        ):
            statement.rewrites = True
        if ConstrType.CONSTR_IDENTITY in kinds or (
            default is not None and self.m.is_volatile(default)
        ):
            statement.rewrites = True
        if statement.rewrites:
            statement.find(
                "table-rewrite",
                "error" if rows else "warning",
                f"adding {table}.{column.colname} rewrites all {rows} rows under ACCESS EXCLUSIVE "
                "(a volatile default or a stored generated column)",
            )
        if (
            ConstrType.CONSTR_NOTNULL in kinds
            and default is None
            and not (kinds & {ConstrType.CONSTR_GENERATED, ConstrType.CONSTR_IDENTITY})
        ):
            statement.find(
                "not-null-without-default",
                "error",
                f"new column {table}.{column.colname} is NOT NULL without a default: "
                + (
                    f"it fails on the {rows} existing rows"
                    if rows
                    else "the code still running inserts without it and fails"
                ),
            )
        if ConstrType.CONSTR_UNIQUE in kinds or ConstrType.CONSTR_PRIMARY in kinds:
            statement.find(
                "blocking-index-build",
                "error" if rows else "warning",
                f"a UNIQUE column on {table} builds its index under ACCESS EXCLUSIVE",
            )

    def _change_type(self, statement: StatementReview, table: str, name: str, column: Any) -> None:
        old = self.m.column_type(table, name)
        new = deparse(column.typeName)
        statement.rewrites = not _binary_coercible(old, new)
        rows = statement.table_rows or 0
        if statement.rewrites:
            statement.find(
                "table-rewrite",
                "error" if rows else "warning",
                f"changing {table}.{name} from {old} to {new} rewrites all {rows} rows (and its "
                "indexes) under ACCESS EXCLUSIVE",
            )
        using = (
            pgsql.SQL(deparse(column.raw_default))
            if column.raw_default
            else (pgsql.SQL("{}::{}").format(pgsql.Identifier(name), pgsql.SQL(new)))
        )
        changed = self.m.count(
            pgsql.SQL(
                "SELECT count(*) FROM {} WHERE {} IS NOT NULL AND ({})::text IS DISTINCT FROM {}::text"
            ).format(identifier(table), pgsql.Identifier(name), using, pgsql.Identifier(name))
        )
        if isinstance(changed, str):
            statement.find(
                "data-loss", "error", f"converting {table}.{name} to {new} fails: {changed}"
            )
        elif changed:
            statement.measurements[f"values of {name} changed by the conversion"] = changed
            statement.find(
                "data-loss",
                "error",
                f"converting {table}.{name} to {new} changes {changed} values",
            )

    def _add_constraint(self, statement: StatementReview, table: str, constraint: Any) -> None:
        kind = ConstrType(constraint.contype)
        rows = statement.table_rows or 0
        not_valid = bool(constraint.skip_validation)
        if kind in (
            ConstrType.CONSTR_UNIQUE,
            ConstrType.CONSTR_PRIMARY,
            ConstrType.CONSTR_EXCLUSION,
        ):
            statement.scans = True
            if constraint.indexname is None:
                statement.find(
                    "blocking-index-build",
                    "error" if rows else "warning",
                    f"adding {constraint.conname or kind.name} builds an index on {table} under "
                    "ACCESS EXCLUSIVE (no reads or writes meanwhile)",
                )
                if kind != ConstrType.CONSTR_EXCLUSION:
                    self._unique_violations(statement, table, constraint.keys)
            return
        if kind == ConstrType.CONSTR_CHECK:
            if not_valid:
                statement.scans = False
                return
            violations = self._measure(
                statement,
                "rows violating the constraint",
                pgsql.SQL("SELECT count(*) FROM {} WHERE NOT ({})").format(
                    identifier(table), pgsql.SQL(deparse(constraint.raw_expr))
                ),
            )
        elif kind == ConstrType.CONSTR_FOREIGN:
            referenced = relation_name(constraint.pktable)
            self._lock(statement, SHARE_ROW_EXCLUSIVE)
            if referenced:
                statement.other_locks[referenced] = SHARE_ROW_EXCLUSIVE
            if not_valid or referenced is None:
                statement.scans = False
                return
            local = column_names(constraint.fk_attrs)
            remote = column_names(constraint.pk_attrs) or local
            match = pgsql.SQL(" AND ").join(
                pgsql.SQL("r.{} = t.{}").format(pgsql.Identifier(a), pgsql.Identifier(b))
                for a, b in zip(remote, local, strict=False)
            )
            present = pgsql.SQL(" AND ").join(
                pgsql.SQL("t.{} IS NOT NULL").format(pgsql.Identifier(c)) for c in local
            )
            violations = self._measure(
                statement,
                "rows violating the constraint",
                pgsql.SQL(
                    "SELECT count(*) FROM {} AS t WHERE {} AND NOT EXISTS (SELECT 1 FROM {} AS r WHERE {})"
                ).format(identifier(table), present, identifier(referenced), match),
            )
        else:
            return
        if violations:
            statement.find(
                "constraint-violated",
                "error",
                f"{violations} rows of {table} already break {constraint.conname or kind.name}",
            )
        elif rows:
            statement.find(
                "constraint-scan",
                "warning",
                f"adding {constraint.conname or kind.name} scans all {rows} rows of {table} while "
                f"holding {statement.lock}",
            )


def _binary_coercible(old: str | None, new: str) -> bool:
    """Type changes PostgreSQL makes without rewriting: varchar(n) -> text or a larger varchar,
    numeric(p, s) -> numeric(larger p, same s), and no change at all."""
    if old is None:
        return False
    old, new = old.lower(), new.lower().replace("pg_catalog.", "")
    aliases = {"varchar": "character varying", "int4": "integer", "int8": "bigint"}
    for short, long in aliases.items():
        new = new.replace(short, long) if new.startswith(short) else new
    if old == new:
        return True
    if old.startswith("character varying") and (new == "text" or new == "character varying"):
        return True
    sizes_old, sizes_new = _type_modifiers(old), _type_modifiers(new)
    base_old, base_new = old.split("(")[0], new.split("(")[0]
    if base_old != base_new or not sizes_old or not sizes_new:
        return False
    if base_old == "character varying":
        return sizes_new[0] >= sizes_old[0]
    if base_old == "numeric" and len(sizes_old) == len(sizes_new) == 2:
        return sizes_new[0] >= sizes_old[0] and sizes_new[1] == sizes_old[1]
    return False


def _type_modifiers(type_name: str) -> list[int]:
    if "(" not in type_name:
        return []
    inside = type_name.split("(", 1)[1].rstrip(")")
    return [int(part) for part in inside.split(",") if part.strip().isdigit()]
