"""What a review finds: a finding with its safe recipe, per statement, per revision, in all."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]

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
