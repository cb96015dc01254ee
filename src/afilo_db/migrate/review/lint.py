"""squawk (from the squawk-cli wheel) on the same SQL, its findings turned into ours."""

from __future__ import annotations

import json
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import Any, Final

from afilo_db.errors import OperationError
from afilo_db.migrate.review.findings import Finding, Severity

# squawk rules that `migrate apply` makes moot: it sets lock_timeout and statement_timeout, runs
# each revision in a transaction of its own, and Alembic writes BEGIN/COMMIT itself.
SQUAWK_EXCLUDED = (
    "require-lock-timeout",
    "require-statement-timeout",
    "prefer-robust-stmts",
    "transaction-nesting",
)

# Every squawk rule (2.x), with the afilo-db findings that cover it at the same or a higher
# severity, or why it is overruled. A squawk warning never blocks; the finding that covers it
# does, when the measured table makes it a danger (docs/migrate-review.md has the table).
SquawkRule = tuple[tuple[str, ...], str]
SQUAWK_SYNTAX_ERROR = "syntax-error"
SQUAWK_RULES: Final[dict[str, SquawkRule]] = {
    "adding-field-with-default": (
        ("table-rewrite",),
        "a volatile default rewrites the table; a constant one has not since PostgreSQL 11",
    ),
    "adding-foreign-key-constraint": (
        ("constraint-scan", "constraint-violated"),
        "measured: rows scanned and rows that break it",
    ),
    "adding-not-nullable-field": (
        ("not-null-without-default", "set-not-null-scan", "constraint-violated"),
        "measured: NULLs counted, the scan skipped when a valid CHECK proves it",
    ),
    "adding-required-field": (("not-null-without-default",), ""),
    "adding-serial-primary-key-field": (("blocking-index-build", "table-rewrite"), ""),
    "ban-alter-domain-with-add-constraint": (
        ("constraint-scan", "constraint-violated"),
        "measured on every column of the domain",
    ),
    "ban-concurrent-index-creation-in-transaction": (("not-transactional",), ""),
    "ban-drop-column": (("breaking-change", "data-loss"), ""),
    "ban-drop-database": (("unclassified",), "the allow list refuses DROP DATABASE in a migration"),
    "ban-drop-table": (("breaking-change", "data-loss"), ""),
    "ban-truncate-cascade": (("data-loss",), ""),
    "changing-column-type": (
        ("table-rewrite", "data-loss", "constraint-violated"),
        "a binary-coercible change (varchar to text, a longer varchar) rewrites nothing and passes",
    ),
    "constraint-missing-not-valid": (("constraint-scan", "constraint-violated"), ""),
    "disallowed-unique-constraint": (("blocking-index-build",), ""),
    "renaming-column": (("breaking-change",), ""),
    "renaming-table": (("breaking-change",), ""),
    "renaming-object": (("breaking-change",), ""),
    # Not a rule (squawk cannot parse the SQL), but reported as one.
    SQUAWK_SYNTAX_ERROR: (("unparsable",), ""),
    "require-concurrent-index-creation": (
        ("blocking-index-build",),
        "a note, not an error, on an empty table (the lock is held for an instant)",
    ),
    "require-concurrent-index-deletion": (("blocking-index-drop",), "a note on an empty table"),
    "require-concurrent-reindex": (("blocking-maintenance",), ""),
    "prefer-repack": (("blocking-maintenance",), ""),
    "ban-create-policy": (
        ("policy-widened",),
        "compared with the contract and, on the rehearsal copy, with the policies before",
    ),
    "ban-alter-policy-roles": (("policy-widened",), ""),
    "ban-drop-policy": (("policy-widened", "access-revoked"), ""),
    "ban-revoke": (
        ("access-revoked",),
        "only a right the application's roles lose breaks the application",
    ),
    "ban-alter-row-level-security": (("rls-weakened",), "enabling or forcing it only narrows"),
    "ban-alter-function-options": (
        ("security-definer-search-path",),
        "other options change no one's access",
    ),
    "ban-alter-role-options": (("role-privileges",), ""),
    "ban-add-enum-value": (
        ("enum-value-used-in-transaction",),
        "adding a value breaks nothing; using it in the same transaction does",
    ),
    "ban-new-write-restriction": (
        ("constraint-violated", "constraint-scan"),
        "measured: the rows that already break it",
    ),
    "ban-alter-generated-expression": (("table-rewrite",), "a virtual column rewrites nothing"),
    "ban-drop-schema": (
        ("breaking-change", "data-loss"),
        "CASCADE: the tables dropped and their rows, measured",
    ),
    "ban-drop-type": (
        ("breaking-change", "data-loss"),
        "CASCADE: the columns dropped and their values, measured",
    ),
    "ban-drop-domain": (
        ("breaking-change", "data-loss"),
        "CASCADE: the columns dropped and their values, measured",
    ),
    "ban-drop-view": (("breaking-change",), ""),
    "ban-set-schema": (("breaking-change",), ""),
    "ban-drop-index": (("blocking-index-drop",), ""),
    # Overruled: the reason is the second element.
    "ban-char-field": (
        (),
        "a modelling rule, not a danger to a running database: the models use text",
    ),
    "ban-create-domain-with-constraint": (
        (),
        "creating a domain touches no row; a later ALTER DOMAIN ... ADD CONSTRAINT is measured",
    ),
    "ban-drop-not-null": ((), "relaxing a constraint takes a brief lock and loses nothing"),
    "ban-drop-constraint": ((), "relaxing a constraint takes a brief lock and loses nothing"),
    "ban-drop-default": (
        (),
        "a brief lock; inserts that relied on the default are the application's change",
    ),
    "ban-set-default": ((), "a new default applies to new rows only and rewrites nothing"),
    "ban-uncommitted-transaction": ((), "Alembic writes BEGIN and COMMIT itself"),
    "transaction-nesting": ((), "Alembic writes BEGIN and COMMIT itself"),
    "prefer-robust-stmts": (
        (),
        "apply runs each revision in a transaction of its own: a failure leaves nothing half-done",
    ),
    "require-timeout-settings": ((), "apply sets lock_timeout and statement_timeout itself"),
    "require-lock-timeout": ((), "apply sets lock_timeout itself"),
    "require-statement-timeout": ((), "apply sets statement_timeout itself"),
    "prefer-bigint-over-int": ((), "a modelling rule: primary keys are UUIDs"),
    "prefer-bigint-over-smallint": ((), "a modelling rule: primary keys are UUIDs"),
    "prefer-identity": (
        (),
        "a modelling rule: primary keys are UUIDs; a serial or identity column added to a table is a table-rewrite",
    ),
    "prefer-text-field": (
        (),
        "a modelling rule; narrowing a varchar is measured as constraint-violated",
    ),
    "prefer-timestamp-tz": ((), "a modelling rule the models keep (timestamptz everywhere)"),
    "prefer-timestamptz": ((), "a modelling rule the models keep (timestamptz everywhere)"),
    "require-table-schema": ((), "the migration environment fixes the search_path"),
    "require-enum-value-ordering": ((), "where a new value sorts is the application's choice"),
    "identifier-too-long": (
        (),
        "PostgreSQL truncates it and the model comparison in migrate test reports the name",
    ),
    "ban-add-column": (
        (),
        "adding a nullable column is instant; the dangerous forms are table-rewrite and not-null-without-default",
    ),
    "ban-add-composite-attribute": (
        (),
        "changes a type no table stores by value in afilo-db's schema; observed on the rehearsal copy",
    ),
    "ban-detach-inheritance": (
        (),
        "afilo-db's schema uses no inheritance; a detached partition is observed on the rehearsal copy",
    ),
    "ban-alter-database-options": ((), "database settings are the operator's, not a migration's"),
    "ban-alter-system-options": (
        (),
        "ALTER SYSTEM cannot run in a transaction (not-transactional)",
    ),
    "ban-alter-view-options": (
        (),
        "not compared yet: security_barrier and security_invoker are reviewed by hand",
    ),
    "ban-alter-identity": ((), "changes how new values are generated, rewrites nothing"),
    "ban-alter-sequence-values": ((), "a sequence's next value is no row of the application"),
    "ban-alter-extension": (
        (),
        "ALTER EXTENSION runs the extension's own scripts: migrate test runs them on a copy",
    ),
    "ban-drop-extension": ((), "what a CASCADE takes with it is observed on the rehearsal copy"),
    "ban-drop-function": (
        (),
        "code that calls it fails: the model comparison in migrate test and the application's tests see it",
    ),
    "ban-drop-sequence": (
        (),
        "dropping a column's sequence is refused by PostgreSQL while the column uses it",
    ),
    "ban-drop-generated-expression": (
        (),
        "the column keeps its values and stops being computed: no loss",
    ),
    "ban-drop-trigger": ((), "a brief lock; what the trigger did is the application's change"),
    "ban-disable-trigger": ((), "a brief lock; what the trigger did is the application's change"),
    "ban-replica-identity": ((), "logical replication settings are the operator's"),
    "ban-replace-view-function": (
        (),
        "the view or function keeps its name; its callers are the application's",
    ),
    "ban-duplicate-column-assignments": ((), "PostgreSQL refuses the statement (fails-on-copy)"),
}


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


def statement_at(starts: list[int], violation: dict[str, Any]) -> int | None:
    line = int(violation.get("line", 0))
    candidates = [index for index, start in enumerate(starts) if start <= line]
    return candidates[-1] if candidates else None


def squawk_finding(violation: dict[str, Any]) -> Finding:
    level = str(violation.get("level", "warning")).lower()
    severity: Severity = "error" if level == "error" else "warning"
    help_text = violation.get("help")
    rule = str(violation.get("rule_name"))
    covered_by, reason = SQUAWK_RULES.get(rule, ((), "not in afilo-db's mapping of squawk's rules"))
    verdict = (
        f"afilo-db: {', '.join(covered_by)}" if covered_by else f"afilo-db overrules it: {reason}"
    )
    return Finding(
        rule=rule,
        severity=severity,
        message=f"{violation.get('message')} ({verdict})",
        recipe=str(help_text) if help_text else None,
        source="squawk",
    )
