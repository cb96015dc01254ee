"""`migrate review`: what the pending SQL will do to a database that is in use.

For each statement: its classification in the allow list generated from pglast's grammar
(`classification`), then the comparator of its family (`families/`): the lock it takes and on
which table, whether it rewrites or scans the table, whether it may run in a transaction,
measurements against the target (rows in the table, rows affected, values that would be lost,
rows that already break a constraint being added), changes that break the code still running,
and a safe recipe for each danger. Then the revisions run on a scratch copy, statement by
statement, and what each did is observed (`observation`). squawk (from the squawk-cli wheel)
lints the same SQL. docs/migrate-review.md describes all of it.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from pglast import ast, parse_sql
from pglast.enums import TransactionStmtKind
from pglast.parser import ParseError

from afilo_db.config import get_settings
from afilo_db.db.databases import copy_database, drop_database
from afilo_db.db.urls import with_database
from afilo_db.errors import OperationError
from afilo_db.migrate import revisions
from afilo_db.migrate.log import UNMEASURED_DETAIL, Step, record
from afilo_db.migrate.review.analysis import NOT_TRANSACTIONAL, Analyzer
from afilo_db.migrate.review.findings import Finding, Review, RevisionReview, StatementReview
from afilo_db.migrate.review.lint import squawk, squawk_finding, statement_at
from afilo_db.migrate.review.measurements import Measurer, Thresholds, measuring
from afilo_db.migrate.review.observation import Observer, rehearsing
from afilo_db.migrate.review.syntax import relation_name

__all__ = [
    "Finding",
    "Measurer",
    "Observer",
    "Review",
    "RevisionReview",
    "StatementReview",
    "Thresholds",
    "measuring",
    "rehearsing",
    "review_pending",
    "review_sql",
]

# -- a whole piece of SQL -------------------------------------------------------------------------


def review_sql(
    measurer: Measurer,
    sql: str,
    revision: str = "sql",
    checksum: str | None = None,
    in_transaction: bool = True,
    thresholds: Thresholds | None = None,
) -> RevisionReview:
    """Review `sql` (one migration's statements) against the database `measurer` reads.

    `in_transaction`: whether the statements start inside a transaction block (Alembic's online
    runs); BEGIN and COMMIT statements in the SQL change it as they go. `thresholds`: the table
    sizes from which dangers become errors (default: the settings').
    """
    statements: list[StatementReview] = []
    try:
        parsed = parse_sql(sql)
    except ParseError as error:
        failed = StatementReview(index=0, sql=sql, kind="unparsable")
        failed.find("unparsable", "error", f"PostgreSQL cannot parse it: {error}")
        return RevisionReview(revision, checksum, sql, [failed], [])
    analyzer = Analyzer(measurer, thresholds or settings_thresholds(), _created_policies(parsed))
    starts: list[int] = []
    for raw in parsed:
        node: Any = raw.stmt
        start = raw.stmt_location or 0
        text = sql.encode()[start : start + raw.stmt_len if raw.stmt_len else None].decode().strip()
        if isinstance(node, ast.TransactionStmt):
            in_transaction = _transaction_state(node, in_transaction)
            if node.kind not in _SAVEPOINT_KINDS:
                analyzer.end_transaction()
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
        (statement_at(starts, violation), squawk_finding(violation)) for violation in squawk(sql)
    ]
    return RevisionReview(revision, checksum, sql, statements, lint)


def _observe(url: str, reviews: list[RevisionReview], limits: Thresholds, timeout: str) -> None:
    """Run the revisions, in order, on a scratch copy of the database (dropped whatever
    happens), observing each statement. A copy that cannot be made leaves every statement
    unmeasured, an error `apply --accept-unmeasured` may accept."""
    scratch = f"afilo_review_{uuid.uuid4().hex[:12]}"
    try:
        copy_database(url, scratch, lock_wait_timeout=timeout)
        with rehearsing(with_database(url, scratch), timeout) as observer:
            for reviewed in reviews:
                observer.revision(reviewed, limits)
    except (OperationError, psycopg.Error) as error:
        for reviewed in reviews:
            for statement in reviewed.statements:
                if statement.observed is None:
                    statement.find(
                        "unmeasured",
                        "error",
                        "could not measure it on a rehearsal copy: "
                        + (str(error).splitlines() or [type(error).__name__])[0],
                    )
    finally:
        drop_database(url, scratch)


_SAVEPOINT_KINDS = (
    TransactionStmtKind.TRANS_STMT_SAVEPOINT,
    TransactionStmtKind.TRANS_STMT_RELEASE,
    TransactionStmtKind.TRANS_STMT_ROLLBACK_TO,
)


def settings_thresholds() -> Thresholds:
    settings = get_settings()
    return Thresholds(
        tiny_rows=settings.afilo_review_tiny_rows,
        large_rows=settings.afilo_review_large_rows,
        large_bytes=settings.afilo_review_large_bytes,
    )


def _created_policies(parsed: Any) -> set[tuple[str, str]]:
    """(table, policy) created anywhere in the migration: a DROP POLICY followed by its
    re-creation is a change of the policy, judged by the CREATE."""
    return {
        ((relation_name(raw.stmt.table) or "").removeprefix("public."), str(raw.stmt.policy_name))
        for raw in parsed
        if isinstance(raw.stmt, ast.CreatePolicyStmt)
    }


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


def review_pending(
    url: str,
    up_to: str | None = None,
    thresholds: Thresholds | None = None,
    measure_timeout: str | None = None,
) -> Review:
    """Review every pending revision (or those up to `up_to`), oldest first: predicted from the
    SQL and measured on the database, then observed statement by statement on a scratch copy
    (dropped whatever happens); record each one that passes with its checksum, so that `apply` can check it was reviewed unchanged. A
    revision whose only errors are measurements that failed is recorded too, with them, and
    `apply` refuses it unless told to accept them."""
    pending = revisions.pending_revisions(url)
    if up_to is not None:
        if up_to not in pending:
            raise OperationError(f"revision {up_to} is not pending")
        pending = pending[: pending.index(up_to) + 1]
    reviews: list[RevisionReview] = []
    limits = thresholds or settings_thresholds()
    timeout = measure_timeout or get_settings().afilo_review_measure_timeout
    with measuring(url, timeout) as measurer:
        for revision in pending:
            checksum = revisions.revision_checksum(revision)
            sql = revisions.revision_sql(url, revision)
            reviews.append(review_sql(measurer, sql, revision, checksum, False, limits))
    _observe(url, reviews, limits, timeout)
    for reviewed in reviews:
        if reviewed.passed or reviewed.only_unmeasured:
            record(
                url,
                reviewed.revision,
                Step.REVIEWED,
                reviewed.checksum,
                details={
                    "warnings": len(reviewed.findings) - len(reviewed.unmeasured),
                    UNMEASURED_DETAIL: [finding.message for finding in reviewed.unmeasured],
                },
            )
    return Review(reviews)
