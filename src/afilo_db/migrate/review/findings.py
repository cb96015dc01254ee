"""What a review finds: a finding with its safe recipe, per statement, per revision, in all."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]
# Errors that say the review could not decide (a measurement or observation that failed, a
# statement it cannot classify), not that the migration is dangerous: `migrate apply
# --accept-unmeasured` may apply a revision whose only errors are these.
UNDECIDED = ("unmeasured", "unclassified")

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
    "blocking-maintenance": (
        "do not run whole-table maintenance in a migration: REINDEX ... CONCURRENTLY for an "
        "index; pg_repack or pg_squeeze to rewrite or move a table without blocking it; for SET "
        "LOGGED / UNLOGGED / TABLESPACE / ACCESS METHOD, a new table filled in batches and "
        "swapped in by a rename"
    ),
    "blocking-index-drop": (
        "DROP INDEX CONCURRENTLY inside `with op.get_context().autocommit_block():` "
        "(op.drop_index(..., postgresql_concurrently=True))"
    ),
    "explicit-lock": (
        "do not LOCK TABLE in a migration: each statement takes the lock it needs, and "
        "`migrate apply` bounds every wait with lock_timeout"
    ),
    "validate-in-same-transaction": (
        "VALIDATE CONSTRAINT in a later revision, or after a COMMIT (an autocommit block), so "
        "that it runs under SHARE UPDATE EXCLUSIVE instead of the lock ADD CONSTRAINT holds"
    ),
    "enum-value-used-in-transaction": (
        "add the enum value in a revision of its own (or an autocommit block) and use it in a "
        "later one: PostgreSQL refuses a value added in the same transaction"
    ),
    "rls-weakened": (
        "keep row level security enabled and forced on every table: security/policies.py is "
        "the contract, and a change to it comes with a revision that applies it"
    ),
    "policy-widened": (
        "change the policy in security/policies.py first, then write the revision from it; a "
        "policy never names PUBLIC and never reaches rows the contract does not give"
    ),
    "grant-widened": (
        "grant only what security/policies.py gives each role (`_grants`): no grant to PUBLIC, "
        "none beyond the policies' commands and columns"
    ),
    "security-definer-search-path": (
        "give every SECURITY DEFINER function a fixed search_path: "
        "`SET search_path = pg_catalog, pg_temp` (and schema-qualify what it uses)"
    ),
    "role-privileges": (
        "keep afilo_app and afilo_service NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB "
        "NOREPLICATION NOINHERIT (security/roles.py), and give no role BYPASSRLS in a migration"
    ),
    "fails-on-copy": (
        "fix the statement or the data first: PostgreSQL refuses it on a copy of this database"
    ),
    "unpredicted-lock": (
        "find what takes the lock (a trigger, a function, a foreign key, a cascade) and move "
        "that work out of the migration, or run it when the table is idle, with a short "
        "lock_timeout"
    ),
    "access-revoked": (
        "expand and contract: stop the application using the right first (a release), then "
        "revoke it in a later revision; change security/policies.py in the same release"
    ),
    "unmeasured": (
        "find out why the measurement failed (a lock held by another session, a timeout: "
        "`migrate review --measure-timeout`) and review again; `migrate apply "
        "--accept-unmeasured` applies it anyway and records that you did"
    ),
    "unclassified": (
        "write the change as plain SQL statements the review knows, or review it by hand and "
        "run it outside `migrate apply`"
    ),
}


@dataclass
class Finding:
    rule: str
    severity: Severity
    message: str
    recipe: str | None = None
    source: str = "afilo-db"
    # The measured number the finding is about (rows blocked, values lost, rows that fail).
    count: int | None = None


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
    table_bytes: int | None = None
    measurements: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    # The allow list's classification of the statement (`classification.Classification`).
    predicted: dict[str, object] | None = None
    # What it did on the rehearsal copy (`observation.Observed`); None when not rehearsed.
    observed: dict[str, Any] | None = None

    def find(self, rule: str, severity: Severity, message: str, count: int | None = None) -> None:
        self.findings.append(Finding(rule, severity, message, RECIPES.get(rule), count=count))


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

    @property
    def unmeasured(self) -> list[Finding]:
        return [finding for finding in self.errors if finding.rule in UNDECIDED]

    @property
    def only_unmeasured(self) -> bool:
        """Failed only because something could not be measured or classified (apply may
        accept it)."""
        return bool(self.errors) and len(self.unmeasured) == len(self.errors)


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
                    "unmeasured": [finding.message for finding in revision.unmeasured],
                    "lint": [
                        {"statement": index, **asdict(finding)} for index, finding in revision.lint
                    ],
                }
                for revision in self.revisions
            ],
        }
