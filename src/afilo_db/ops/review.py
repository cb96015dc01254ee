"""`migrate review`: what the pending SQL will do to a database that is in use.

For each statement: the lock it takes and on which table (PostgreSQL docs, "Explicit Locking" and
ALTER TABLE), whether it rewrites or scans the table, whether it may run in a transaction; then
measurements against the target (rows in the table, rows affected, values that would be lost,
rows that already break a constraint being added), changes that break the code still running,
and a safe recipe for each danger. squawk (from the squawk-cli wheel) lints the same SQL.
"""

from __future__ import annotations

import json
import subprocess
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import psycopg
from pglast import ast, parse_sql
from pglast.enums import AlterTableType, ConstrType, ObjectType, TransactionStmtKind
from pglast.parser import ParseError
from pglast.stream import RawStream
from psycopg import sql as pgsql

from afilo_db.errors import OperationError
from afilo_db.ops import migrate
from afilo_db.ops.migration_log import Step, record

Severity = Literal["error", "warning", "info"]

# Lock levels and what each one blocks while it is held.
ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
SHARE = "SHARE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
ROW_EXCLUSIVE = "ROW EXCLUSIVE"
BLOCKS = {
    ACCESS_EXCLUSIVE: "reads and writes",
    SHARE_ROW_EXCLUSIVE: "writes",
    SHARE: "writes",
    SHARE_UPDATE_EXCLUSIVE: "other schema changes and VACUUM (not reads or writes)",
    ROW_EXCLUSIVE: "nothing but writers of the same rows",
}

# ALTER TABLE sub-commands: (lock, rewrites the table, scans the table). From the ALTER TABLE
# page of the PostgreSQL manual; the rewrite / scan cases that depend on the details
# (ADD COLUMN with a volatile default, a type change, NOT VALID) are decided in _alter_command.
ALTER_TABLE_FORMS: dict[AlterTableType, tuple[str, bool, bool]] = {
    AlterTableType.AT_AddColumn: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_DropColumn: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_AlterColumnType: (ACCESS_EXCLUSIVE, True, False),
    AlterTableType.AT_SetNotNull: (ACCESS_EXCLUSIVE, False, True),
    AlterTableType.AT_DropNotNull: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_ColumnDefault: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_AddConstraint: (ACCESS_EXCLUSIVE, False, True),
    AlterTableType.AT_ValidateConstraint: (SHARE_UPDATE_EXCLUSIVE, False, True),
    AlterTableType.AT_DropConstraint: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_EnableRowSecurity: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_DisableRowSecurity: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_ForceRowSecurity: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_NoForceRowSecurity: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_SetLogged: (ACCESS_EXCLUSIVE, True, False),
    AlterTableType.AT_SetUnLogged: (ACCESS_EXCLUSIVE, True, False),
    AlterTableType.AT_SetStatistics: (SHARE_UPDATE_EXCLUSIVE, False, False),
    AlterTableType.AT_SetOptions: (SHARE_UPDATE_EXCLUSIVE, False, False),
    AlterTableType.AT_SetRelOptions: (SHARE_UPDATE_EXCLUSIVE, False, False),
    AlterTableType.AT_AttachPartition: (SHARE_UPDATE_EXCLUSIVE, False, True),
    AlterTableType.AT_DetachPartition: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_EnableTrig: (SHARE_ROW_EXCLUSIVE, False, False),
    AlterTableType.AT_DisableTrig: (SHARE_ROW_EXCLUSIVE, False, False),
}

RECIPES = {
    "blocking-index-build": (
        "build the index with CREATE INDEX CONCURRENTLY outside the transaction: "
        "op.create_index(..., postgresql_concurrently=True) inside "
        "`with op.get_context().autocommit_block():`; for a UNIQUE or PRIMARY KEY constraint, "
        "build the unique index concurrently, then ADD CONSTRAINT ... USING INDEX"
    ),
    "table-rewrite": (
        "expand and contract: add a new column, backfill it in batches, switch the code to it, "
        "then drop the old column in a later release"
    ),
    "not-null-without-default": (
        "add the column nullable (or with a constant DEFAULT), backfill in batches, then "
        "ADD CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT, SET NOT NULL"
    ),
    "set-not-null-scan": (
        "ADD CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID, then VALIDATE CONSTRAINT "
        "(no write lock), then SET NOT NULL: PostgreSQL uses the valid CHECK and skips the scan"
    ),
    "constraint-scan": (
        "add the constraint NOT VALID (no scan, brief lock), then VALIDATE CONSTRAINT in a "
        "later statement (SHARE UPDATE EXCLUSIVE: reads and writes go on)"
    ),
    "constraint-violated": (
        "fix or delete the offending rows first (a data migration), or add the constraint "
        "NOT VALID so that it holds for new rows, then clean up and VALIDATE"
    ),
    "data-loss": (
        "copy the data somewhere first (a backup is taken by `migrate apply`), and drop only "
        "after the code has stopped reading it (expand and contract)"
    ),
    "breaking-change": (
        "expand and contract: add the new column or table, write to both, move reads, and "
        "drop or rename the old one in a later release, once no running code uses it"
    ),
    "not-transactional": (
        "run the statement outside the transaction: `with op.get_context().autocommit_block():`"
    ),
    "large-update": "update in batches of a few thousand rows, each in its own transaction",
    "unparsable": "fix the SQL: PostgreSQL's own parser refuses it",
}

# squawk rules that `migrate apply` makes moot: it sets lock_timeout and statement_timeout, runs
# each revision in a transaction of its own, and Alembic writes BEGIN/COMMIT itself.
SQUAWK_EXCLUDED = (
    "require-lock-timeout",
    "require-statement-timeout",
    "prefer-robust-stmts",
    "transaction-nesting",
)
LARGE_UPDATE_ROWS = 10_000
NOT_TRANSACTIONAL = "cannot run inside a transaction block"


@dataclass
class Finding:
    rule: str
    severity: Severity
    message: str
    recipe: str | None = None
    source: str = "afilo-db"


@dataclass
class StatementReview:
    index: int
    sql: str
    kind: str
    table: str | None = None
    lock: str | None = None
    blocks: str | None = None
    other_locks: dict[str, str] = field(default_factory=dict)
    rewrites: bool = False
    scans: bool = False
    transactional: bool = True
    in_transaction: bool = True
    table_rows: int | None = None
    measurements: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def find(self, rule: str, severity: Severity, message: str) -> None:
        self.findings.append(Finding(rule, severity, message, RECIPES.get(rule)))


@dataclass
class RevisionReview:
    revision: str
    checksum: str | None
    sql: str
    statements: list[StatementReview]
    lint: list[tuple[int | None, Finding]]

    @property
    def findings(self) -> list[Finding]:
        own = [finding for statement in self.statements for finding in statement.findings]
        return own + [finding for _, finding in self.lint]

    @property
    def errors(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.severity == "error"]

    @property
    def passed(self) -> bool:
        return not self.errors


@dataclass
class Review:
    revisions: list[RevisionReview]

    @property
    def passed(self) -> bool:
        return all(revision.passed for revision in self.revisions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "revisions": [
                {
                    **asdict(revision),
                    "passed": revision.passed,
                    "lint": [
                        {"statement": index, **asdict(finding)} for index, finding in revision.lint
                    ],
                }
                for revision in self.revisions
            ],
        }


# -- the database as it is now ------------------------------------------------------------------


class Measurer:
    """Read-only questions to the target, each in a savepoint so that one failure (a column
    added earlier in the same migration, a cast that fails) spoils nothing else."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection
        self.created_tables: set[str] = set()

    def table_exists(self, table: str) -> bool:
        if table in self.created_tables:
            return False
        row = self.connection.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
        return bool(row and row[0])

    def count(self, query: pgsql.Composed | str) -> int | str:
        """The count, or why it could not be measured."""
        try:
            with self.connection.transaction():
                row = self.connection.execute(query).fetchone()
        except psycopg.Error as error:
            return str(error).splitlines()[0]
        return int(row[0]) if row and row[0] is not None else 0

    def column_type(self, table: str, column: str) -> str | None:
        row = self.connection.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = to_regclass(%s) AND attname = %s AND NOT attisdropped",
            (table, column),
        ).fetchone()
        return str(row[0]) if row else None

    def is_volatile(self, expression: ast.Node | None) -> bool:
        names = [
            ".".join(part.sval for part in node.funcname or ())
            for node in _walk(expression)
            if isinstance(node, ast.FuncCall)
        ]
        if not names:
            return False
        row = self.connection.execute(
            "SELECT bool_or(provolatile = 'v') FROM pg_proc WHERE proname = ANY(%s::text[])",
            ([name.split(".")[-1] for name in names],),
        ).fetchone()
        return bool(row and row[0])


def _walk(node: Any) -> Iterator[ast.Node]:
    if isinstance(node, ast.Node):
        yield node
        for name in node:
            yield from _walk(getattr(node, name))
    elif isinstance(node, tuple | list):
        for item in node:
            yield from _walk(item)


def _deparse(node: Any) -> str:
    return str(RawStream()(node))


def _relation(node: ast.RangeVar | None) -> str | None:
    if node is None:
        return None
    return f"{node.schemaname}.{node.relname}" if node.schemaname else str(node.relname)


def _ident(name: str) -> pgsql.Composable:
    return pgsql.SQL(".").join(pgsql.Identifier(part) for part in name.split("."))


def _columns(names: Any) -> list[str]:
    return [str(item.sval) for item in names or ()]


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
        rows = self.m.count(pgsql.SQL("SELECT count(*) FROM {}").format(_ident(table)))
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
        table = _relation(node.relation)
        statement.table = table
        if table is not None:
            self.m.created_tables.add(table)
        for element in node.tableElts or ():
            constraints = element.constraints if isinstance(element, ast.ColumnDef) else (element,)
            for constraint in constraints or ():
                if isinstance(constraint, ast.Constraint) and constraint.pktable is not None:
                    referenced = _relation(constraint.pktable)
                    if referenced and referenced != table:
                        statement.other_locks[referenced] = SHARE_ROW_EXCLUSIVE

    def _IndexStmt(self, statement: StatementReview, node: ast.IndexStmt) -> None:  # noqa: N802
        table = _relation(node.relation)
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
            pgsql.Identifier(item.name) if item.name else pgsql.SQL(_deparse(item.expr))
            for item in params or ()
            if isinstance(item, ast.IndexElem)
        ] or [pgsql.Identifier(name) for name in _columns(params)]
        if table is None or not expressions:
            return
        keys = pgsql.SQL(", ").join(expressions)
        filters = [pgsql.SQL("({}) IS NOT NULL").format(key) for key in expressions]
        if where is not None:
            filters.append(pgsql.SQL("({})").format(pgsql.SQL(_deparse(where))))
        query = pgsql.SQL(
            "SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM {} WHERE {}"
            " GROUP BY {} HAVING count(*) > 1) AS duplicates"
        ).format(_ident(table), pgsql.SQL(" AND ").join(filters), keys)
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
        table = _relation(node.relation)
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
            table = _relation(relation)
            if self._existing(statement, table) and statement.table_rows:
                self._lock(statement, ACCESS_EXCLUSIVE)
                statement.find(
                    "data-loss", "error", f"TRUNCATE {table} deletes {statement.table_rows} rows"
                )

    def _dml_rows(self, statement: StatementReview, table: str | None, where: Any) -> int:
        if table is None or not self._existing(statement, table):
            return 0
        self._lock(statement, ROW_EXCLUSIVE)
        query = pgsql.SQL("SELECT count(*) FROM {}").format(_ident(table))
        if where is not None:
            query += pgsql.SQL(" WHERE {}").format(pgsql.SQL(_deparse(where)))
        return self._measure(statement, "rows affected", query)

    def _UpdateStmt(self, statement: StatementReview, node: ast.UpdateStmt) -> None:  # noqa: N802
        rows = self._dml_rows(statement, _relation(node.relation), node.whereClause)
        if rows > LARGE_UPDATE_ROWS:
            statement.find(
                "large-update",
                "warning",
                f"one UPDATE of {rows} rows holds their row locks until the migration commits",
            )

    def _DeleteStmt(self, statement: StatementReview, node: ast.DeleteStmt) -> None:  # noqa: N802
        table = _relation(node.relation)
        rows = self._dml_rows(statement, table, node.whereClause)
        if rows:
            statement.find("data-loss", "error", f"DELETE removes {rows} rows of {table}")

    # ALTER TABLE -------------------------------------------------------------------------------

    def _AlterTableStmt(self, statement: StatementReview, node: ast.AlterTableStmt) -> None:  # noqa: N802
        table = _relation(node.relation)
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
                    _ident(table), pgsql.Identifier(command.name)
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
                    _ident(table), pgsql.Identifier(command.name)
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
        new = _deparse(column.typeName)
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
            pgsql.SQL(_deparse(column.raw_default))
            if column.raw_default
            else (pgsql.SQL("{}::{}").format(pgsql.Identifier(name), pgsql.SQL(new)))
        )
        changed = self.m.count(
            pgsql.SQL(
                "SELECT count(*) FROM {} WHERE {} IS NOT NULL AND ({})::text IS DISTINCT FROM {}::text"
            ).format(_ident(table), pgsql.Identifier(name), using, pgsql.Identifier(name))
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
                    _ident(table), pgsql.SQL(_deparse(constraint.raw_expr))
                ),
            )
        elif kind == ConstrType.CONSTR_FOREIGN:
            referenced = _relation(constraint.pktable)
            self._lock(statement, SHARE_ROW_EXCLUSIVE)
            if referenced:
                statement.other_locks[referenced] = SHARE_ROW_EXCLUSIVE
            if not_valid or referenced is None:
                statement.scans = False
                return
            local = _columns(constraint.fk_attrs)
            remote = _columns(constraint.pk_attrs) or local
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
                ).format(_ident(table), present, _ident(referenced), match),
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


# -- squawk -------------------------------------------------------------------------------------


def squawk_executable() -> Path:
    return Path(sysconfig.get_path("scripts")) / "squawk"


def squawk(sql: str) -> list[dict[str, Any]]:
    """squawk's findings on `sql` (its JSON reporter), lines counted from 0."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "migration.sql"
        path.write_text(sql)
        try:
            result = subprocess.run(
                [
                    str(squawk_executable()),
                    "--reporter",
                    "json",
                    "--exclude",
                    ",".join(SQUAWK_EXCLUDED),
                    str(path),
                ],
                capture_output=True,
                text=True,
                check=False,
                timeout=120,
            )
        except OSError as error:
            raise OperationError(f"squawk could not run: {error}") from error
    if result.returncode not in (0, 1) or not result.stdout.strip():
        if result.returncode == 0:
            return []
        raise OperationError(f"squawk failed: {result.stderr.strip() or result.stdout.strip()}")
    violations: list[dict[str, Any]] = json.loads(result.stdout)
    return violations


# -- a whole piece of SQL -------------------------------------------------------------------------


@contextmanager
def measuring(url: str) -> Iterator[Measurer]:
    with psycopg.connect(url) as connection:
        connection.execute("SET TRANSACTION READ ONLY")
        connection.execute("SET statement_timeout = '60s'")
        try:
            yield Measurer(connection)
        finally:
            connection.rollback()


def review_sql(
    measurer: Measurer,
    sql: str,
    revision: str = "sql",
    checksum: str | None = None,
    in_transaction: bool = True,
) -> RevisionReview:
    """Review `sql` (one migration's statements) against the database `measurer` reads.

    `in_transaction`: whether the statements start inside a transaction block (Alembic's online
    runs); BEGIN and COMMIT statements in the SQL change it as they go.
    """
    statements: list[StatementReview] = []
    try:
        parsed = parse_sql(sql)
    except ParseError as error:
        failed = StatementReview(index=0, sql=sql, kind="unparsable")
        failed.find("unparsable", "error", f"PostgreSQL cannot parse it: {error}")
        return RevisionReview(revision, checksum, sql, [failed], [])
    analyzer = Analyzer(measurer)
    starts: list[int] = []
    for raw in parsed:
        node: Any = raw.stmt
        start = raw.stmt_location or 0
        text = sql.encode()[start : start + raw.stmt_len if raw.stmt_len else None].decode().strip()
        if isinstance(node, ast.TransactionStmt):
            in_transaction = _transaction_state(node, in_transaction)
            continue
        if _touches_alembic_version(node):
            continue
        statement = StatementReview(
            index=len(statements), sql=text, kind=type(node).__name__, in_transaction=in_transaction
        )
        analyzer.statement(statement, node)
        if not statement.transactional and in_transaction:
            statement.find(
                "not-transactional",
                "error",
                f"{statement.kind} {NOT_TRANSACTIONAL}, and this one runs inside one",
            )
        statements.append(statement)
        starts.append(sql.encode()[:start].decode().count("\n"))
    lint = [
        (_statement_at(starts, violation), _squawk_finding(violation)) for violation in squawk(sql)
    ]
    return RevisionReview(revision, checksum, sql, statements, lint)


def _transaction_state(node: ast.TransactionStmt, current: bool) -> bool:
    if node.kind in (TransactionStmtKind.TRANS_STMT_BEGIN, TransactionStmtKind.TRANS_STMT_START):
        return True
    if node.kind in (
        TransactionStmtKind.TRANS_STMT_COMMIT,
        TransactionStmtKind.TRANS_STMT_ROLLBACK,
    ):
        return False
    return current


def _touches_alembic_version(node: ast.Node) -> bool:
    relation = getattr(node, "relation", None)
    return isinstance(relation, ast.RangeVar) and relation.relname == "alembic_version"


def _statement_at(starts: list[int], violation: dict[str, Any]) -> int | None:
    line = int(violation.get("line", 0))
    candidates = [index for index, start in enumerate(starts) if start <= line]
    return candidates[-1] if candidates else None


def _squawk_finding(violation: dict[str, Any]) -> Finding:
    level = str(violation.get("level", "warning")).lower()
    severity: Severity = "error" if level == "error" else "warning"
    help_text = violation.get("help")
    return Finding(
        rule=str(violation.get("rule_name")),
        severity=severity,
        message=str(violation.get("message")),
        recipe=str(help_text) if help_text else None,
        source="squawk",
    )


def review_pending(url: str, up_to: str | None = None) -> Review:
    """Review every pending revision (or those up to `up_to`), oldest first, and record each one
    that passes with its checksum, so that `apply` can check it was reviewed unchanged."""
    pending = migrate.pending_revisions(url)
    if up_to is not None:
        if up_to not in pending:
            raise OperationError(f"revision {up_to} is not pending")
        pending = pending[: pending.index(up_to) + 1]
    reviews: list[RevisionReview] = []
    with measuring(url) as measurer:
        for revision in pending:
            checksum = migrate.revision_checksum(revision)
            sql = migrate.revision_sql(url, revision)
            reviews.append(review_sql(measurer, sql, revision, checksum, in_transaction=False))
    for reviewed in reviews:
        if reviewed.passed:
            record(
                url,
                reviewed.revision,
                Step.REVIEWED,
                reviewed.checksum,
                details={"warnings": len(reviewed.findings)},
            )
    return Review(reviews)
