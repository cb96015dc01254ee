"""One statement: the lock it takes, whether it rewrites or scans, whether it may run in a
transaction, and the measurements and findings that follow.

Severity follows the measured size of the table (see `Thresholds`): a statement that blocks a
table while it works on every row is a note on an empty (tiny) table and an error on any other;
a scan under a lock is a warning below the large-table threshold and an error from it on.
A statement kind the analysis does not know is an error wherever it touches a table that holds
rows, and a measurement the database does not answer is an error: the review fails closed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from pglast import ast
from pglast.enums import (
    AlterTableType,
    ConstrType,
    DropBehavior,
    NullTestType,
    ObjectType,
    ReindexObjectType,
)
from psycopg import sql as pgsql

from afilo_db.db.versions import server_version_at_least
from afilo_db.migrate.review.access import AccessChecks
from afilo_db.migrate.review.findings import Severity, StatementReview
from afilo_db.migrate.review.locks import (
    ACCESS_EXCLUSIVE,
    ALTER_TABLE_FORMS,
    BLOCKS,
    EXCLUSIVE,
    LEVELS,
    ROW_EXCLUSIVE,
    SHARE,
    SHARE_ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    UNKNOWN_ALTER_FORM,
    blocks_traffic,
    stronger,
)
from afilo_db.migrate.review.measurements import MeasurementError, Measurer, Thresholds
from afilo_db.migrate.review.syntax import (
    column_names,
    deparse,
    identifier,
    relation_name,
    walk,
)

NOT_TRANSACTIONAL = "cannot run inside a transaction block"
SERIAL_TYPES: Final = frozenset(
    {"serial", "bigserial", "smallserial", "serial2", "serial4", "serial8"}
)
# Statements that touch no table's rows, or take no lock that matters (their own new objects,
# a brief catalogue change, a row-level lock of their own rows).
HARMLESS: Final = frozenset(
    {
        "AlterCollationStmt",
        "AlterEventTrigStmt",
        "AlterExtensionStmt",
        "AlterOperatorStmt",
        "AlterSeqStmt",
        "AlterStatsStmt",
        "AlterTSConfigurationStmt",
        "AlterTSDictionaryStmt",
        "AlterTypeStmt",
        "CheckPointStmt",
        "CommentStmt",
        "CompositeTypeStmt",
        "CreateAmStmt",
        "CreateCastStmt",
        "CreateConversionStmt",
        "CreateDomainStmt",
        "CreateEnumStmt",
        "CreateEventTrigStmt",
        "CreateExtensionStmt",
        "CreateOpClassStmt",
        "CreateOpFamilyStmt",
        "CreatePLangStmt",
        "CreateRangeStmt",
        "CreateSchemaStmt",
        "CreateSeqStmt",
        "CreateStatsStmt",
        "CreateTransformStmt",
        "CreateTrigStmt",
        "DefineStmt",
        "InsertStmt",
        "NotifyStmt",
        "SecLabelStmt",
        "SelectStmt",
        "VariableSetStmt",
        "ViewStmt",
    }
)
# Statements PostgreSQL refuses inside a transaction block, whatever their options.
NEVER_IN_TRANSACTION: Final = frozenset(
    {
        "AlterSystemStmt",
        "CreatedbStmt",
        "CreateSubscriptionStmt",
        "CreateTableSpaceStmt",
        "DropSubscriptionStmt",
        "DropTableSpaceStmt",
        "DropdbStmt",
    }
)


@dataclass
class Transaction:
    """What earlier statements of the same transaction leave behind."""

    locks: dict[str, str] = field(default_factory=dict)
    not_valid: set[tuple[str, str]] = field(default_factory=set)
    enum_values: dict[str, set[str]] = field(default_factory=dict)


class Analyzer:
    def __init__(
        self,
        measurer: Measurer,
        thresholds: Thresholds,
        recreated_policies: set[tuple[str, str]] | None = None,
    ) -> None:
        self.m = measurer
        self.limits = thresholds
        self.access = AccessChecks(measurer, recreated_policies or set())
        self.transaction = Transaction()
        # Columns a validated CHECK (col IS NOT NULL) added by this migration proves, and the
        # column of each such CHECK added NOT VALID (proof once validated).
        self.proven_not_null: set[tuple[str, str]] = set()
        self.unvalidated_not_null: dict[tuple[str, str], str] = {}
        # Earlier writes of this migration, per table: (WHERE, {column: value}) for an UPDATE,
        # (WHERE, None) for a DELETE; and columns it added, with their default.
        self.writes: dict[str, list[tuple[str | None, dict[str, str] | None]]] = {}
        self.added_columns: dict[tuple[str, str], str | None] = {}

    def end_transaction(self) -> None:
        self.transaction = Transaction()

    def statement(self, statement: StatementReview, node: ast.Node) -> None:
        kind = type(node).__name__
        handler: Callable[[StatementReview, Any], None] | None = getattr(self, f"_{kind}", None)
        if kind in NEVER_IN_TRANSACTION:
            statement.transactional = False
        try:
            if statement.in_transaction:
                self._enum_value_used(statement, node)
            if handler is not None:
                handler(statement, node)
            elif kind not in HARMLESS and kind not in NEVER_IN_TRANSACTION:
                self._unclassified(statement, node)
        except MeasurementError as error:
            statement.find("unmeasured", "error", f"could not measure: {error}")
        if statement.table and statement.lock:
            held = self.transaction.locks.get(statement.table)
            self.transaction.locks[statement.table] = stronger(held, statement.lock)
        if not statement.in_transaction:
            self.end_transaction()

    # sizes, locks and severities ---------------------------------------------------------------

    def _existing(self, statement: StatementReview, table: str | None) -> bool:
        """Whether `table` exists already (so locks and measurements matter); measures it."""
        statement.table = table
        if table is None or not self.m.table_exists(table):
            return False
        size = self.m.size(table)
        statement.table_rows, statement.table_bytes = size.rows, size.bytes
        return True

    def _lock(self, statement: StatementReview, lock: str) -> None:
        statement.lock = stronger(statement.lock, lock)
        statement.blocks = BLOCKS[statement.lock]

    def _blocking(self, statement: StatementReview) -> Severity:
        """A statement that blocks the table while it works on every row."""
        return "error" if (statement.table_rows or 0) > self.limits.tiny_rows else "info"

    def _large(self, statement: StatementReview) -> bool:
        return (statement.table_rows or 0) >= self.limits.large_rows or (
            statement.table_bytes or 0
        ) >= self.limits.large_bytes

    def _scanning(self, statement: StatementReview) -> Severity:
        """A scan under a lock: fine on a small table, an error on a large one."""
        return "error" if self._large(statement) else "warning"

    def _measure(
        self, statement: StatementReview, label: str, query: pgsql.Composed | pgsql.SQL
    ) -> int:
        value = self.m.count(query)
        statement.measurements[label] = value
        return value

    def _size_words(self, statement: StatementReview) -> str:
        return f"{statement.table_rows} rows, {statement.table_bytes or 0:,} bytes"

    def _unclassified(self, statement: StatementReview, node: ast.Node) -> None:
        for relation in walk(node):
            if not isinstance(relation, ast.RangeVar):
                continue
            table = relation_name(relation)
            if self._existing(statement, table) and statement.table_rows:
                statement.find(
                    "unclassified",
                    "error",
                    f"{statement.kind} on {table} ({self._size_words(statement)}): the review "
                    "cannot tell what it locks or how long it holds the lock",
                    statement.table_rows,
                )
                return

    def _DoStmt(self, statement: StatementReview, node: ast.DoStmt) -> None:  # noqa: N802
        statement.find(
            "unclassified",
            "error",
            "a DO block runs statements the review cannot see (PL/pgSQL, dynamic SQL)",
        )

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

    def _CreateTableAsStmt(self, statement: StatementReview, node: ast.CreateTableAsStmt) -> None:  # noqa: N802
        table = relation_name(node.into.rel) if node.into else None
        statement.table = table
        if table is not None:
            self.m.created_tables.add(table)

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
            statement.find(
                "blocking-index-build",
                self._blocking(statement),
                f"CREATE INDEX on {table} ({self._size_words(statement)}) blocks every write "
                "to it until the index is built",
                statement.table_rows,
            )
        if existing and node.unique:
            self._unique_violations(statement, table, node.indexParams, node.whereClause)

    def _unique_violations(
        self,
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
        ).format(self._rows_of(table), pgsql.SQL(" AND ").join(filters), keys)
        violations = self._measure(statement, "rows with duplicate keys", query)
        if primary:
            violations += self._measure(
                statement,
                "rows with a NULL key",
                pgsql.SQL("SELECT count(*) FROM {} WHERE NOT ({})").format(
                    self._rows_of(table), pgsql.SQL(" AND ").join(filters)
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

    # DROP, RENAME, TRUNCATE, DML ---------------------------------------------------------------

    def _DropStmt(self, statement: StatementReview, node: ast.DropStmt) -> None:  # noqa: N802
        kind = node.removeType
        if kind == ObjectType.OBJECT_POLICY:
            self.access.policy_dropped(statement, node.objects)
            return
        if kind == ObjectType.OBJECT_INDEX:
            self._drop_index(statement, node)
            return
        if kind in (ObjectType.OBJECT_SCHEMA, ObjectType.OBJECT_TYPE, ObjectType.OBJECT_DOMAIN):
            if node.behavior == DropBehavior.DROP_CASCADE:
                self._drop_cascade(statement, kind, node.objects)
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
            target = ".".join(part.sval for part in name)
            if not self._existing(statement, target):
                continue
            self._lock(statement, ACCESS_EXCLUSIVE)
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

    def _drop_cascade(self, statement: StatementReview, kind: ObjectType, objects: Any) -> None:
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
            for table, column in self.m.rows(query, (target,)):
                what = f"{table}.{column}" if column else f"table {table}"
                statement.find(
                    "breaking-change",
                    "error",
                    f"DROP {kind.name.removeprefix('OBJECT_')} {target} CASCADE drops {what}",
                )
                counted = pgsql.SQL("SELECT count(*) FROM {}").format(identifier(table))
                if column:
                    counted += pgsql.SQL(" WHERE {} IS NOT NULL").format(pgsql.Identifier(column))
                lost = self._measure(statement, f"values lost in {what}", counted)
                if lost:
                    statement.find("data-loss", "error", f"dropping {what} loses {lost}", lost)

    def _drop_index(self, statement: StatementReview, node: ast.DropStmt) -> None:
        if node.concurrent:
            self._lock(statement, SHARE_UPDATE_EXCLUSIVE)
            statement.transactional = False
            return
        self._lock(statement, ACCESS_EXCLUSIVE)
        for name in node.objects or ():
            index = ".".join(part.sval for part in name)
            table = self.m.index_table(index)
            if self._existing(statement, table):
                statement.find(
                    "blocking-index-drop",
                    self._blocking(statement),
                    f"DROP INDEX {index} holds ACCESS EXCLUSIVE on {table} "
                    f"({self._size_words(statement)}): it waits for every query on the table, "
                    "and every query waits for it",
                    statement.table_rows,
                )

    def _RenameStmt(self, statement: StatementReview, node: ast.RenameStmt) -> None:  # noqa: N802
        table = relation_name(node.relation)
        if not self._existing(statement, table):
            return
        if node.renameType == ObjectType.OBJECT_INDEX:
            self._lock(statement, SHARE_UPDATE_EXCLUSIVE)
            return
        self._lock(statement, ACCESS_EXCLUSIVE)
        if node.renameType == ObjectType.OBJECT_COLUMN:
            statement.find(
                "breaking-change",
                "error",
                f"renaming {table}.{node.subname} to {node.newname} breaks code that uses the old "
                "name",
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

    def _AlterObjectSchemaStmt(  # noqa: N802
        self, statement: StatementReview, node: ast.AlterObjectSchemaStmt
    ) -> None:
        table = relation_name(node.relation)
        if self._existing(statement, table):
            self._lock(statement, ACCESS_EXCLUSIVE)
            statement.find(
                "breaking-change",
                "error",
                f"moving {table} to schema {node.newschema} breaks code that uses its old name",
            )

    def _TruncateStmt(self, statement: StatementReview, node: ast.TruncateStmt) -> None:  # noqa: N802
        for relation in node.relations or ():
            table = relation_name(relation)
            if self._existing(statement, table):
                self._lock(statement, ACCESS_EXCLUSIVE)
                if statement.table_rows:
                    statement.find(
                        "data-loss",
                        "error",
                        f"TRUNCATE {table} deletes {statement.table_rows} rows",
                        statement.table_rows,
                    )

    def _rows_of(self, table: str, alias: str | None = None) -> pgsql.Composed:
        """The table's rows as they will be when a measurement's statement runs: with the
        columns this migration added before it, each holding its default (or NULL)."""
        name = pgsql.Identifier(alias or table.split(".")[-1])
        added = [
            pgsql.SQL("({}) AS {}").format(pgsql.SQL(default or "NULL"), pgsql.Identifier(column))
            for (owner, column), default in self.added_columns.items()
            if owner == table
        ]
        if not added:
            return pgsql.SQL("{} AS {}").format(identifier(table), name)
        return pgsql.SQL("(SELECT *, {} FROM {}) AS {}").format(
            pgsql.SQL(", ").join(added), identifier(table), name
        )

    def _written(self, table: str, where: Any, values: dict[str, str] | None) -> None:
        condition = deparse(where) if where is not None else None
        self.writes.setdefault(table, []).append((condition, values))

    def _null_after_writes(self, table: str, column: str, now_null: str) -> str:
        """The condition a row meets when `column` is NULL once this migration's earlier
        UPDATEs and DELETEs of the table have run (each judged on the rows as they are)."""
        conditions = [now_null]
        for where, values in self.writes.get(table, []):
            reached = f"coalesce(({where}), false)" if where else "true"
            if values is None:
                conditions.append(f"NOT {reached}")
            elif column in values:
                conditions.append(f"NOT ({reached} AND ({values[column]}) IS NOT NULL)")
        return " AND ".join(conditions)

    def _dml_rows(self, statement: StatementReview, table: str | None, where: Any) -> int:
        if table is None or not self._existing(statement, table):
            return 0
        self._lock(statement, ROW_EXCLUSIVE)
        query = pgsql.SQL("SELECT count(*) FROM {}").format(self._rows_of(table))
        if where is not None:
            query += pgsql.SQL(" WHERE {}").format(pgsql.SQL(deparse(where)))
        return self._measure(statement, "rows affected", query)

    def _UpdateStmt(self, statement: StatementReview, node: ast.UpdateStmt) -> None:  # noqa: N802
        table = relation_name(node.relation)
        rows = self._dml_rows(statement, table, node.whereClause)
        if table is not None and not node.fromClause:
            values = {
                str(target.name): deparse(target.val)
                for target in node.targetList or ()
                if isinstance(target, ast.ResTarget) and target.name and target.val is not None
            }
            self._written(table, node.whereClause, values)
        if rows >= self.limits.large_rows:
            statement.find(
                "large-update",
                "error",
                f"one UPDATE of {rows} rows of {table} holds their row locks (and every writer "
                "of them waits) until the migration commits",
                rows,
            )
        elif rows and self.transaction.locks.get(str(table)) == ACCESS_EXCLUSIVE:
            statement.find(
                "large-update",
                self._scanning(statement),
                f"this UPDATE of {rows} rows runs while the transaction holds ACCESS EXCLUSIVE "
                f"on {table}: no one reads the table until it commits",
                rows,
            )

    def _DeleteStmt(self, statement: StatementReview, node: ast.DeleteStmt) -> None:  # noqa: N802
        table = relation_name(node.relation)
        rows = self._dml_rows(statement, table, node.whereClause)
        if table is not None and not node.usingClause:
            self._written(table, node.whereClause, None)
        if rows:
            statement.find("data-loss", "error", f"DELETE removes {rows} rows of {table}", rows)

    # maintenance and explicit locks ------------------------------------------------------------

    def _maintenance(self, statement: StatementReview, table: str | None, what: str) -> None:
        if self._existing(statement, table):
            statement.rewrites = True
            statement.find(
                "blocking-maintenance",
                self._blocking(statement),
                f"{what} holds {statement.lock} on {table} ({self._size_words(statement)}) "
                f"while it works through the whole table: it blocks {statement.blocks}",
                statement.table_rows,
            )

    def _whole_database(self, statement: StatementReview, what: str) -> None:
        statement.find(
            "blocking-maintenance",
            "error",
            f"{what} works through every table it reaches, each under a lock that blocks it",
        )

    def _VacuumStmt(self, statement: StatementReview, node: ast.VacuumStmt) -> None:  # noqa: N802
        options = {option.defname for option in node.options or ()}
        if not node.is_vacuumcmd:
            self._lock(statement, SHARE_UPDATE_EXCLUSIVE)
            return
        statement.transactional = False
        if "full" not in options:
            self._lock(statement, SHARE_UPDATE_EXCLUSIVE)
            return
        self._lock(statement, ACCESS_EXCLUSIVE)
        if not node.rels:
            self._whole_database(statement, "VACUUM FULL of the whole database")
        for item in node.rels or ():
            self._maintenance(statement, relation_name(item.relation), "VACUUM FULL")

    def _ClusterStmt(self, statement: StatementReview, node: ast.ClusterStmt) -> None:  # noqa: N802
        self._lock(statement, ACCESS_EXCLUSIVE)
        if node.relation is None:
            statement.transactional = False
            self._whole_database(statement, "CLUSTER of every clustered table")
            return
        self._maintenance(statement, relation_name(node.relation), "CLUSTER")

    def _ReindexStmt(self, statement: StatementReview, node: ast.ReindexStmt) -> None:  # noqa: N802
        concurrently = any(option.defname == "concurrently" for option in node.params or ())
        if concurrently:
            self._lock(statement, SHARE_UPDATE_EXCLUSIVE)
            statement.transactional = False
            return
        self._lock(statement, SHARE)
        statement.other_locks["its indexes"] = ACCESS_EXCLUSIVE
        name = relation_name(node.relation)
        if node.kind == ReindexObjectType.REINDEX_OBJECT_INDEX:
            table = self.m.index_table(name) if name else None
            self._maintenance(statement, table, f"REINDEX INDEX {name}")
        elif node.kind == ReindexObjectType.REINDEX_OBJECT_TABLE:
            self._maintenance(statement, name, "REINDEX TABLE")
        else:
            statement.transactional = False
            self._whole_database(statement, f"REINDEX {str(node.kind).split('_')[-1]}")

    def _RefreshMatViewStmt(self, statement: StatementReview, node: ast.RefreshMatViewStmt) -> None:  # noqa: N802
        if node.concurrent:
            self._lock(statement, EXCLUSIVE)
            return
        self._lock(statement, ACCESS_EXCLUSIVE)
        self._maintenance(statement, relation_name(node.relation), "REFRESH MATERIALIZED VIEW")

    def _LockStmt(self, statement: StatementReview, node: ast.LockStmt) -> None:  # noqa: N802
        lock = LEVELS[max(1, min(node.mode or len(LEVELS), len(LEVELS))) - 1]
        self._lock(statement, lock)
        for relation in node.relations or ():
            table = relation_name(relation)
            if self._existing(statement, table) and blocks_traffic(lock):
                statement.find(
                    "explicit-lock",
                    self._blocking(statement),
                    f"LOCK TABLE {table} IN {lock} MODE ({self._size_words(statement)}) blocks "
                    f"{BLOCKS[lock]} until the migration commits, everything after it included",
                    statement.table_rows,
                )

    # types, functions, roles, grants, policies --------------------------------------------------

    def _AlterEnumStmt(self, statement: StatementReview, node: ast.AlterEnumStmt) -> None:  # noqa: N802
        if node.newVal and not node.oldVal:
            name = ".".join(part.sval for part in node.typeName or ())
            self.transaction.enum_values.setdefault(name.split(".")[-1], set()).add(node.newVal)

    def _enum_value_used(self, statement: StatementReview, node: ast.Node) -> None:
        if not self.transaction.enum_values or isinstance(node, ast.AlterEnumStmt):
            return
        literals = {
            str(item.val.sval)
            for item in walk(node)
            if isinstance(item, ast.A_Const) and isinstance(item.val, ast.String)
        }
        for enum, values in self.transaction.enum_values.items():
            used = literals & values
            if not used:
                continue
            named = any(
                isinstance(item, ast.TypeName) and item.names and item.names[-1].sval == enum
                for item in walk(node)
            )
            tables = [relation_name(item) for item in walk(node) if isinstance(item, ast.RangeVar)]
            typed_column = any(
                self.m.value(
                    "SELECT EXISTS (SELECT FROM pg_attribute a JOIN pg_type t"
                    " ON t.oid = a.atttypid WHERE a.attrelid = to_regclass(%s)"
                    " AND t.typname = %s AND NOT a.attisdropped)",
                    (table, enum),
                )
                for table in tables
                if table and self.m.table_exists(table)
            )
            if named or typed_column:
                statement.find(
                    "enum-value-used-in-transaction",
                    "error",
                    f"{', '.join(sorted(used))} is added to {enum} in this transaction: "
                    "PostgreSQL refuses to use it before the transaction commits",
                )

    def _CreateFunctionStmt(  # noqa: N802
        self, statement: StatementReview, node: ast.CreateFunctionStmt
    ) -> None:
        name = ".".join(part.sval for part in node.funcname or ())
        self.access.function_options(statement, name, node.options, existing=False)

    def _AlterFunctionStmt(self, statement: StatementReview, node: ast.AlterFunctionStmt) -> None:  # noqa: N802
        name = ".".join(part.sval for part in (node.func.objname if node.func else None) or ())
        self.access.function_options(statement, name, node.actions, existing=True)

    def _CreateRoleStmt(self, statement: StatementReview, node: ast.CreateRoleStmt) -> None:  # noqa: N802
        self.access.role_attributes(statement, str(node.role), node.options)

    def _AlterRoleStmt(self, statement: StatementReview, node: ast.AlterRoleStmt) -> None:  # noqa: N802
        role = node.role.rolename if node.role else None
        self.access.role_attributes(statement, str(role), node.options)

    def _GrantStmt(self, statement: StatementReview, node: ast.GrantStmt) -> None:  # noqa: N802
        self.access.granted(statement, node)

    def _GrantRoleStmt(self, statement: StatementReview, node: ast.GrantRoleStmt) -> None:  # noqa: N802
        self.access.role_granted(statement, node)

    def _AlterDefaultPrivilegesStmt(  # noqa: N802
        self, statement: StatementReview, node: ast.AlterDefaultPrivilegesStmt
    ) -> None:
        self.access.default_privileges(statement, node)

    def _AlterOwnerStmt(self, statement: StatementReview, node: ast.AlterOwnerStmt) -> None:  # noqa: N802
        if node.newowner is not None:
            self.access.owner_changed(statement, node.newowner, deparse(node.object))

    def _CreatePolicyStmt(self, statement: StatementReview, node: ast.CreatePolicyStmt) -> None:  # noqa: N802
        statement.table = relation_name(node.table)
        self._lock(statement, ACCESS_EXCLUSIVE)
        self.access.policy_created(statement, node)

    def _AlterPolicyStmt(self, statement: StatementReview, node: ast.AlterPolicyStmt) -> None:  # noqa: N802
        statement.table = relation_name(node.table)
        self._lock(statement, ACCESS_EXCLUSIVE)
        self.access.policy_altered(statement, node)

    # ALTER TABLE -------------------------------------------------------------------------------

    def _AlterTableStmt(self, statement: StatementReview, node: ast.AlterTableStmt) -> None:  # noqa: N802
        name = relation_name(node.relation)
        if node.objtype == ObjectType.OBJECT_INDEX:
            self._alter_index(statement, name, node)
            return
        existing = self._existing(statement, name)
        table = str(name)
        for command in node.cmds or ():
            lock, rewrites, scans = ALTER_TABLE_FORMS.get(command.subtype, UNKNOWN_ALTER_FORM)
            self._lock(statement, lock)
            if command.subtype in (
                AlterTableType.AT_DisableRowSecurity,
                AlterTableType.AT_NoForceRowSecurity,
            ):
                what = (
                    "DISABLE ROW LEVEL SECURITY"
                    if command.subtype == AlterTableType.AT_DisableRowSecurity
                    else "NO FORCE ROW LEVEL SECURITY"
                )
                self.access.row_security_weakened(statement, table, what)
            elif command.subtype == AlterTableType.AT_ChangeOwner:
                self.access.owner_changed(statement, command.newowner, f"table {table}")
            elif command.subtype == AlterTableType.AT_DetachPartition and command.def_.concurrent:
                statement.transactional = False
            if not existing:
                continue
            statement.scans |= scans
            self._alter_command(statement, table, command, rewrites)

    def _alter_index(self, statement: StatementReview, index: str | None, node: Any) -> None:
        for command in node.cmds or ():
            lock, rewrites, _ = ALTER_TABLE_FORMS.get(command.subtype, UNKNOWN_ALTER_FORM)
            self._lock(statement, lock)
            if rewrites and index and self.m.index_table(index):
                self._lock(statement, ACCESS_EXCLUSIVE)
                self._maintenance(
                    statement, self.m.index_table(index), f"ALTER INDEX {index} (rewrite)"
                )

    def _alter_command(
        self, statement: StatementReview, table: str, command: Any, rewrites: bool
    ) -> None:
        subtype = command.subtype
        if subtype == AlterTableType.AT_AddColumn:
            self._add_column(statement, table, command.def_)
        elif subtype == AlterTableType.AT_DropColumn:
            self._drop_column(statement, table, command.name)
        elif subtype == AlterTableType.AT_AlterColumnType:
            self._change_type(statement, table, command.name, command.def_)
        elif subtype == AlterTableType.AT_SetNotNull:
            self._set_not_null(statement, table, command.name)
        elif subtype == AlterTableType.AT_SetExpression:
            generated = self.m.value(
                "SELECT attgenerated FROM pg_attribute WHERE attrelid = to_regclass(%s)"
                " AND attname = %s",
                (table, command.name),
            )
            if generated != "v":
                self._rewrite(statement, f"SET EXPRESSION of the stored column {command.name}")
        elif subtype == AlterTableType.AT_AddConstraint and isinstance(
            command.def_, ast.Constraint
        ):
            self._add_constraint(statement, table, command.def_)
        elif subtype == AlterTableType.AT_ValidateConstraint:
            self._validate(statement, table, command.name)
        elif subtype == AlterTableType.AT_AttachPartition:
            self._attach(statement, table, command.def_)
        elif subtype in (
            AlterTableType.AT_SetLogged,
            AlterTableType.AT_SetUnLogged,
            AlterTableType.AT_SetTableSpace,
            AlterTableType.AT_SetAccessMethod,
        ):
            self._relation_move(statement, table, command)
        elif subtype not in ALTER_TABLE_FORMS:
            statement.find(
                "unclassified",
                self._blocking(statement),
                f"ALTER TABLE {table} ({subtype.name}): a form the review does not know, "
                "counted as a rewrite under ACCESS EXCLUSIVE",
                statement.table_rows,
            )
        elif rewrites:
            self._rewrite(statement, subtype.name)

    def _rewrite(self, statement: StatementReview, why: str) -> None:
        statement.rewrites = True
        statement.find(
            "table-rewrite",
            self._blocking(statement),
            f"{why} rewrites all {statement.table_rows} rows of {statement.table} (and its "
            "indexes) under ACCESS EXCLUSIVE: no reads or writes meanwhile",
            statement.table_rows,
        )

    def _relation_move(self, statement: StatementReview, table: str, command: Any) -> None:
        persistence, method, space = self.m.row(
            "SELECT c.relpersistence, coalesce(a.amname, ''), coalesce(t.spcname, 'pg_default')"
            " FROM pg_class c LEFT JOIN pg_am a ON a.oid = c.relam"
            " LEFT JOIN pg_tablespace t ON t.oid = c.reltablespace WHERE c.oid = to_regclass(%s)",
            (table,),
        )
        unchanged = {
            AlterTableType.AT_SetLogged: persistence == "p",
            AlterTableType.AT_SetUnLogged: persistence == "u",
            AlterTableType.AT_SetAccessMethod: (command.name or "heap") == method,
            AlterTableType.AT_SetTableSpace: command.name == space,
        }[command.subtype]
        if unchanged:
            statement.notes.append(f"{command.subtype.name}: already so, nothing to rewrite")
            return
        words = {
            AlterTableType.AT_SetLogged: "SET LOGGED",
            AlterTableType.AT_SetUnLogged: "SET UNLOGGED",
            AlterTableType.AT_SetAccessMethod: f"SET ACCESS METHOD {command.name}",
            AlterTableType.AT_SetTableSpace: f"SET TABLESPACE {command.name}",
        }[command.subtype]
        self._maintenance(statement, table, f"ALTER TABLE {words}")

    def _drop_column(self, statement: StatementReview, table: str, column: str) -> None:
        if self.m.column_type(table, column) is None:
            statement.notes.append(f"{table}.{column} does not exist (yet): nothing to lose")
            return
        statement.find(
            "breaking-change",
            "error",
            f"dropping {table}.{column} breaks code that still reads or writes it",
        )
        lost = self._measure(
            statement,
            f"non-null values in {column}",
            pgsql.SQL("SELECT count(*) FROM {} WHERE {} IS NOT NULL").format(
                identifier(table), pgsql.Identifier(column)
            ),
        )
        if lost:
            statement.find(
                "data-loss", "error", f"dropping {table}.{column} loses {lost} values", lost
            )

    def _set_not_null(self, statement: StatementReview, table: str, column: str) -> None:
        facts = self.m.row(
            "SELECT a.attnotnull, EXISTS (SELECT FROM pg_constraint c WHERE c.conrelid = a.attrelid"
            " AND c.contype = 'c' AND c.convalidated AND pg_get_constraintdef(c.oid)"
            " = format('CHECK ((%%I IS NOT NULL))', a.attname))"
            " FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attname = %s"
            " AND NOT a.attisdropped",
            (table, column),
        )
        quoted = pgsql.Identifier(column).as_string(self.m.connection)
        if facts is None and (table, column) in self.added_columns:
            default = self.added_columns[(table, column)]
            facts, now_null = (False, False), (f"({default}) IS NULL" if default else "true")
        elif facts is None:
            raise MeasurementError(f"column {table}.{column} does not exist yet")
        else:
            now_null = f"{quoted} IS NULL"
        already, checked = facts
        statement.scans = False
        if already:
            statement.notes.append(f"{column} is NOT NULL already: nothing to check")
            return
        if checked or (table, column) in self.proven_not_null:
            statement.find(
                "set-not-null-scan",
                "info",
                f"SET NOT NULL on {table}.{column} skips its scan: a validated "
                f"CHECK ({column} IS NOT NULL) proves it",
            )
            return
        statement.scans = True
        nulls = self._measure(
            statement,
            f"rows with {column} NULL",
            pgsql.SQL("SELECT count(*) FROM {} WHERE {}").format(
                identifier(table), pgsql.SQL(self._null_after_writes(table, column, now_null))
            ),
        )
        if nulls:
            statement.find(
                "constraint-violated",
                "error",
                f"{nulls} rows of {table} have {column} NULL: SET NOT NULL fails on them",
                nulls,
            )
        elif statement.table_rows:
            statement.find(
                "set-not-null-scan",
                self._scanning(statement),
                f"SET NOT NULL scans all {statement.table_rows} rows of {table} "
                f"({self._size_words(statement)}) under ACCESS EXCLUSIVE",
                statement.table_rows,
            )

    def _add_column(self, statement: StatementReview, table: str, column: Any) -> None:
        constraints = list(column.constraints or ())
        kinds = {ConstrType(constraint.contype) for constraint in constraints}
        default = next(
            (c.raw_expr for c in constraints if c.contype == ConstrType.CONSTR_DEFAULT), None
        )
        type_name = column.typeName.names[-1].sval if column.typeName else ""
        rows = statement.table_rows or 0
        self.added_columns[(table, str(column.colname))] = (
            deparse(default) if default is not None else None
        )
        why = None
        if any(
            c.contype == ConstrType.CONSTR_GENERATED and c.generated_kind != "v"
            for c in constraints
        ):
            why = "a stored generated column"
        elif ConstrType.CONSTR_IDENTITY in kinds:
            why = "an identity column (a sequence number for every row)"
        elif type_name in SERIAL_TYPES:
            why = f"a {type_name} column (a nextval() default for every row)"
        elif default is not None and self.m.is_volatile(default):
            why = "a volatile default"
        if why:
            self._rewrite(statement, f"adding {table}.{column.colname}, {why},")
        if (
            ConstrType.CONSTR_NOTNULL in kinds
            and default is None
            and type_name not in SERIAL_TYPES
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
                rows,
            )
        if kinds & {ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY}:
            statement.find(
                "blocking-index-build",
                self._blocking(statement),
                f"a UNIQUE column on {table} builds its index under ACCESS EXCLUSIVE",
                rows,
            )

    def _change_type(self, statement: StatementReview, table: str, name: str, column: Any) -> None:
        old = self.m.column_type(table, name)
        if old is None:
            raise MeasurementError(f"column {table}.{name} does not exist yet")
        new = deparse(column.typeName)
        if not self._binary_coercible(old, new):
            self._rewrite(statement, f"changing {table}.{name} from {old} to {new}")
        failures, changed = self._conversion(statement, table, name, old, new, column.raw_default)
        if failures:
            statement.find(
                "constraint-violated",
                "error",
                f"converting {table}.{name} to {new} fails on {failures} existing rows: "
                "the migration would stop there",
                failures,
            )
        if changed:
            statement.find(
                "data-loss",
                "error",
                f"converting {table}.{name} to {new} changes {changed} values",
                changed,
            )

    def _conversion(
        self,
        statement: StatementReview,
        table: str,
        name: str,
        old: str,
        new: str,
        using: ast.Node | None,
    ) -> tuple[int, int]:
        """(rows the conversion fails on, values it changes), comparing typed values: a string
        becoming a number is compared as a number, anything else in its old type.

        Rows it fails on are counted in one scan where PostgreSQL's input function decides (a
        string read as the new type, a string too long for it); otherwise, once the one-scan
        conversion fails, row by row."""
        facts = self.m.row(
            "SELECT format_type(oid, NULL), typcategory, %s LIKE '%%(%%' FROM pg_type"
            " WHERE oid = to_regtype(%s)",
            (new, new),
        )
        if facts is None:
            raise MeasurementError(f"type {new} does not exist yet")
        base, category, modified = facts
        old_category = self.m.value(
            "SELECT typcategory FROM pg_type WHERE oid = to_regtype(%s)", (old,)
        )
        column = pgsql.Identifier(name).as_string(self.m.connection)
        expression = deparse(using) if using is not None else column
        converted = f"CAST(({expression}) AS {new})"
        # pg_input_is_valid is PostgreSQL 16's. Before it, a row the conversion fails on is
        # found by converting it (conversion_by_row, once the one-scan conversion fails), a
        # string too long for its new length by comparing it with the cast that cuts it short,
        # and a changed value by comparing the texts: a string the new type writes otherwise
        # ('007' as 7) then counts as changed, a false alarm at worst, never a loss missed.
        input_checked = server_version_at_least(self.m.connection, 16)
        if old_category == "S" and category != "S" and not input_checked:
            differs = f"({converted})::text IS DISTINCT FROM {column}::text"
        elif old_category == "S" and category != "S":
            # A string that is no valid value of the new type cannot survive as itself.
            differs = (
                f"NOT pg_input_is_valid({column}::text, {_literal(base)})"
                f" OR {converted} IS DISTINCT FROM CAST({column} AS {base})"
            )
        else:
            differs = f"CAST({converted} AS {old}) IS DISTINCT FROM {column}"
        source = identifier(table).as_string(self.m.connection)
        present = f"{column} IS NOT NULL"
        valid = None
        if category in ("S", "V") and modified:
            # A too long string or bit string: the assignment ALTER TYPE makes refuses it
            # (an explicit cast would cut it short instead; trailing spaces it drops either way).
            valid = (
                f"pg_input_is_valid(({expression})::text, {_literal(new)})"
                if input_checked
                else f"rtrim(({converted})::text) = rtrim(({expression})::text)"
            )
        elif input_checked and old_category == "S" and _reads_column_as(using, name, new):
            # A string becomes the new type through the type's input function.
            valid = f"pg_input_is_valid({column}::text, {_literal(new)})"
        failures = 0
        if valid is not None:
            failures = self._measure(
                statement,
                f"rows {name} cannot be converted on",
                pgsql.SQL(f"SELECT count(*) FROM {source} WHERE {present} AND NOT {valid}"),
            )
        attempted = valid or "true"
        label = f"values of {name} changed by the conversion"
        try:
            # count() of the converted value makes every row convert, whatever `differs` skips.
            changed = self._measure(
                statement,
                label,
                pgsql.SQL(
                    f"SELECT count(*) FILTER (WHERE {present} AND {attempted} AND ({differs}))"
                    f" + 0 * count({converted}) FILTER (WHERE {attempted}) FROM {source}"
                ),
            )
        except MeasurementError:
            failures, changed = self.m.conversion_by_row(table, expression, new, differs, present)
            statement.measurements[f"rows {name} cannot be converted on"] = failures
            statement.measurements[label] = changed
        return failures, changed

    def _base_name(self, type_name: str) -> str | None:
        name = self.m.value("SELECT format_type(to_regtype(%s), NULL)", (type_name,))
        return str(name) if name else None

    def _binary_coercible(self, old: str, new: str) -> bool:
        """Type changes PostgreSQL makes without rewriting: the same type with a larger (or no)
        length, precision or scale-preserving precision, and binary-coercible casts (varchar to
        text)."""
        facts = self.m.row(
            "SELECT o.oid = n.oid, EXISTS (SELECT FROM pg_cast WHERE castsource = o.oid"
            " AND casttarget = n.oid AND castmethod = 'b'),"
            " format_type(o.oid, NULL), %s NOT LIKE '%%(%%'"
            " FROM pg_type o, pg_type n WHERE o.oid = to_regtype(%s) AND n.oid = to_regtype(%s)",
            (new, old, new),
        )
        if facts is None:
            raise MeasurementError(f"type {new} does not exist yet")
        same, binary, base, unlimited = facts
        if {base, str(self._base_name(new))} == {
            "timestamp without time zone",
            "timestamp with time zone",
        }:
            # No rewrite when the session's time zone is UTC (PostgreSQL 12 and later).
            return bool(
                self.m.value(
                    "SELECT utc_offset = interval '0' AND NOT is_dst FROM pg_timezone_names"
                    " WHERE name = current_setting('TimeZone')"
                )
            ) and _type_modifiers(old) == _type_modifiers(new)
        sizes_old, sizes_new = _type_modifiers(old), _type_modifiers(new)
        if same:
            if unlimited or sizes_old == sizes_new:
                return True
            if not sizes_old:
                return False
            if base == "numeric" and len(sizes_old) == len(sizes_new) == 2:
                return sizes_new[0] >= sizes_old[0] and sizes_new[1] == sizes_old[1]
            if base in ("character varying", "bit varying") or base.startswith(
                ("timestamp", "time", "interval")
            ):
                return sizes_new[0] >= sizes_old[0]
            return False
        return bool(binary and unlimited and base != "bpchar" and not old.startswith("character("))

    def _add_constraint(self, statement: StatementReview, table: str, constraint: Any) -> None:
        kind = ConstrType(constraint.contype)
        rows = statement.table_rows or 0
        name = constraint.conname or kind.name
        not_valid = bool(constraint.skip_validation)
        if kind in (
            ConstrType.CONSTR_UNIQUE,
            ConstrType.CONSTR_PRIMARY,
            ConstrType.CONSTR_EXCLUSION,
        ):
            if constraint.indexname is None:
                statement.scans = True
                statement.find(
                    "blocking-index-build",
                    self._blocking(statement),
                    f"adding {name} builds an index on {table} ({self._size_words(statement)}) "
                    "under ACCESS EXCLUSIVE (no reads or writes meanwhile)",
                    rows,
                )
                if kind != ConstrType.CONSTR_EXCLUSION:
                    self._unique_violations(
                        statement,
                        table,
                        constraint.keys,
                        primary=kind == ConstrType.CONSTR_PRIMARY,
                    )
            return
        if kind == ConstrType.CONSTR_CHECK:
            expression = constraint.raw_expr
            proves = _not_null_column(expression)
            if not_valid:
                statement.scans = False
                self.transaction.not_valid.add((table, name))
                if proves:
                    self.unvalidated_not_null[(table, name)] = proves
                return
            if proves:
                self.proven_not_null.add((table, proves))
            violations = self._measure(
                statement,
                "rows violating the constraint",
                pgsql.SQL("SELECT count(*) FROM {} WHERE NOT ({})").format(
                    self._rows_of(table), pgsql.SQL(deparse(expression))
                ),
            )
        elif kind == ConstrType.CONSTR_FOREIGN:
            referenced = relation_name(constraint.pktable)
            self._lock(statement, SHARE_ROW_EXCLUSIVE)
            if referenced:
                statement.other_locks[referenced] = SHARE_ROW_EXCLUSIVE
            if not_valid or referenced is None:
                statement.scans = False
                self.transaction.not_valid.add((table, name))
                return
            violations = self._foreign_key_violations(statement, table, referenced, constraint)
        else:
            return
        if violations:
            statement.find(
                "constraint-violated",
                "error",
                f"{violations} rows of {table} already break {name}",
                violations,
            )
        elif rows:
            statement.find(
                "constraint-scan",
                self._scanning(statement),
                f"adding {name} scans all {rows} rows of {table} ({self._size_words(statement)}) "
                f"while holding {statement.lock}",
                rows,
            )

    def _foreign_key_violations(
        self, statement: StatementReview, table: str, referenced: str, constraint: Any
    ) -> int:
        local = column_names(constraint.fk_attrs)
        remote = column_names(constraint.pk_attrs) or local
        match = pgsql.SQL(" AND ").join(
            pgsql.SQL("r.{} = t.{}").format(pgsql.Identifier(a), pgsql.Identifier(b))
            for a, b in zip(remote, local, strict=False)
        )
        present = pgsql.SQL(" AND ").join(
            pgsql.SQL("t.{} IS NOT NULL").format(pgsql.Identifier(c)) for c in local
        )
        return self._measure(
            statement,
            "rows violating the constraint",
            pgsql.SQL(
                "SELECT count(*) FROM {} WHERE {} AND NOT EXISTS (SELECT 1 FROM {} AS r WHERE {})"
            ).format(self._rows_of(table, "t"), present, identifier(referenced), match),
        )

    def _validate(self, statement: StatementReview, table: str, name: str) -> None:
        proves = self.unvalidated_not_null.get((table, name)) or self.m.value(
            "SELECT a.attname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid"
            " AND a.attnum = ANY (c.conkey) WHERE c.conrelid = to_regclass(%s) AND c.conname = %s"
            " AND pg_get_constraintdef(c.oid) = format('CHECK ((%%I IS NOT NULL)) NOT VALID',"
            " a.attname)",
            (table, name),
        )
        if proves:
            self.proven_not_null.add((table, str(proves)))
        held = self.transaction.locks.get(table)
        if (table, name) in self.transaction.not_valid or (
            held is not None and LEVELS.index(held) > LEVELS.index(SHARE_UPDATE_EXCLUSIVE)
        ):
            statement.find(
                "validate-in-same-transaction",
                self._blocking(statement),
                f"VALIDATE CONSTRAINT {name} scans {table} ({self._size_words(statement)}) in "
                f"the transaction that holds {held or ACCESS_EXCLUSIVE} on it since ADD "
                "CONSTRAINT: the validation runs under that lock",
                statement.table_rows,
            )

    def _attach(self, statement: StatementReview, table: str, command: Any) -> None:
        partition = relation_name(command.name)
        if partition is None or not self.m.table_exists(partition):
            return
        statement.other_locks[partition] = ACCESS_EXCLUSIVE
        rows = self.m.size(partition).rows
        if rows:
            statement.find(
                "constraint-scan",
                "error" if rows >= self.limits.large_rows else "warning",
                f"ATTACH PARTITION scans all {rows} rows of {partition} under ACCESS EXCLUSIVE "
                "on it (a CHECK constraint matching the bound, validated first, skips the scan)",
                rows,
            )


def _not_null_column(expression: Any) -> str | None:
    """The column a CHECK (col IS NOT NULL) is about, if it is one."""
    if (
        isinstance(expression, ast.NullTest)
        and expression.nulltesttype == NullTestType.IS_NOT_NULL
        and isinstance(expression.arg, ast.ColumnRef)
        and expression.arg.fields
    ):
        return str(expression.arg.fields[-1].sval)
    return None


def _reads_column_as(using: ast.Node | None, column: str, new: str) -> bool:
    """Whether the conversion is the column itself, or the column cast to the new type."""
    if using is None:
        return True
    if not isinstance(using, ast.TypeCast) or not isinstance(using.arg, ast.ColumnRef):
        return False
    fields = using.arg.fields or ()
    return (
        bool(fields)
        and getattr(fields[-1], "sval", None) == column
        and (deparse(using.typeName) == new)
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _type_modifiers(type_name: str) -> list[int]:
    if "(" not in type_name:
        return []
    inside = type_name.split("(", 1)[1].split(")", 1)[0]
    return [int(part) for part in inside.split(",") if part.strip().isdigit()]
