"""One statement: the lock it takes, whether it rewrites or scans, whether it may run in a
transaction, and the measurements and findings that follow.

Every statement is looked up first in the allow list (`classification`): a statement or form
it does not have, or one it refuses (code the review cannot see), is an error whatever the size
of the table; one it proves safe is recorded with its lock; the others go to the comparator of
their family (`families/`), which measures them. Severity follows the measured size of the
table (see `Thresholds`): a statement that blocks a table while it works on every row is a note
on an empty (tiny) table and an error on any other; a scan under a lock is a warning below the
large-table threshold and an error from it on. A measurement the database does not answer is an
error: the review fails closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pglast import ast
from psycopg import sql as pgsql

from afilo_db.migrate.review.access import AccessChecks
from afilo_db.migrate.review.classification import classify
from afilo_db.migrate.review.families import COMPARATORS
from afilo_db.migrate.review.families.types import enum_value_used
from afilo_db.migrate.review.findings import Severity, StatementReview
from afilo_db.migrate.review.locks import BLOCKS, stronger
from afilo_db.migrate.review.measurements import MeasurementError, Measurer, Thresholds
from afilo_db.migrate.review.syntax import identifier, relation_name, walk

NOT_TRANSACTIONAL = "cannot run inside a transaction block"


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
        classification = classify(node)
        if classification is not None:
            statement.predicted = classification.as_dict()
            statement.transactional = classification.transactional
        try:
            if statement.in_transaction:
                enum_value_used(self, statement, node)
            if classification is None or classification.verdict == "refused":
                self.unclassified(statement, node, classification is None)
            elif classification.verdict == "examined":
                # Every examined statement has one (tests/migrate/test_review_grammar.py).
                COMPARATORS[statement.kind](self, statement, node)
        except MeasurementError as error:
            statement.find("unmeasured", "error", f"could not measure: {error}")
        if statement.table and statement.lock:
            held = self.transaction.locks.get(statement.table)
            self.transaction.locks[statement.table] = stronger(held, statement.lock)
        if not statement.in_transaction:
            self.end_transaction()

    def unclassified(self, statement: StatementReview, node: ast.Node, unknown: bool) -> None:
        """A statement the allow list does not have (`unknown`) or refuses: an error, with the
        size of the first existing table it names."""
        why = (
            "is not in the review's allow list"
            if unknown
            else "runs work the review cannot see or measure"
        )
        if isinstance(node, ast.DoStmt):
            why = "is a DO block: it runs statements the review cannot see (PL/pgSQL, dynamic SQL)"
        table = next(
            (
                name
                for relation in walk(node)
                if isinstance(relation, ast.RangeVar)
                and (name := relation_name(relation)) is not None
                and self.m.table_exists(name)
            ),
            None,
        )
        if table is not None and self.existing(statement, table):
            statement.find(
                "unclassified",
                "error",
                f"{statement.kind} on {table} ({self.size_words(statement)}) {why}: the review "
                "cannot tell what it locks, rewrites or loses",
                statement.table_rows,
            )
            return
        statement.find("unclassified", "error", f"{statement.kind} {why}")

    # sizes, locks and severities ---------------------------------------------------------------

    def existing(self, statement: StatementReview, table: str | None) -> bool:
        """Whether `table` exists already (so locks and measurements matter); measures it."""
        statement.table = table
        if table is None or not self.m.table_exists(table):
            return False
        size = self.m.size(table)
        statement.table_rows, statement.table_bytes = size.rows, size.bytes
        return True

    def lock(self, statement: StatementReview, lock: str) -> None:
        statement.lock = stronger(statement.lock, lock)
        statement.blocks = BLOCKS[statement.lock]

    def blocking(self, statement: StatementReview) -> Severity:
        """A statement that blocks the table while it works on every row."""
        return "error" if (statement.table_rows or 0) > self.limits.tiny_rows else "info"

    def large(self, statement: StatementReview) -> bool:
        return (statement.table_rows or 0) >= self.limits.large_rows or (
            statement.table_bytes or 0
        ) >= self.limits.large_bytes

    def scanning(self, statement: StatementReview) -> Severity:
        """A scan under a lock: fine on a small table, an error on a large one."""
        return "error" if self.large(statement) else "warning"

    def measure(
        self, statement: StatementReview, label: str, query: pgsql.Composed | pgsql.SQL
    ) -> int:
        value = self.m.count(query)
        statement.measurements[label] = value
        return value

    def size_words(self, statement: StatementReview) -> str:
        return f"{statement.table_rows} rows, {statement.table_bytes or 0:,} bytes"

    def rows_of(self, table: str, alias: str | None = None) -> pgsql.Composed:
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
