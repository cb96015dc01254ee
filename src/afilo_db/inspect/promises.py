"""The schema's promises, checked on the live database.

- Every index the models declare (indexes, primary keys, unique and exclusion constraints) exists
  and is valid (a CREATE INDEX CONCURRENTLY that failed leaves an INVALID one that no query uses).
- Those the models mark `performance_critical()` (afilo_db.models.base) have also been used since
  the statistics reset, once their table has been read often enough to tell.
- Row-level security is enabled and forced on every table `afilo_db.security.policies.TABLES`
  covers.
- The application's and the service's logins are held to the policies: neither SUPERUSER nor
  BYPASSRLS.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import PrimaryKeyConstraint, UniqueConstraint
from sqlalchemy.dialects.postgresql import ExcludeConstraint

from afilo_db.inspect.queries import Inspector
from afilo_db.inspect.verdicts import Check, Finding, Thresholds
from afilo_db.models import Base
from afilo_db.security.policies import TABLES
from afilo_db.security.roles import APP_ROLE, SERVICE_ROLE

CRITICAL = "performance_critical"


@dataclass(frozen=True)
class DeclaredIndex:
    table: str
    name: str
    critical: bool


def declared_indexes() -> list[DeclaredIndex]:
    """Every index the models declare, with whether it is marked performance-critical (on the
    Index itself, or for a unique constraint on its one column)."""
    declared = []
    for table in Base.metadata.sorted_tables:
        for index in table.indexes:
            declared.append(
                DeclaredIndex(table.name, str(index.name), bool(index.info.get(CRITICAL)))
            )
        for constraint in table.constraints:
            if not isinstance(
                constraint, PrimaryKeyConstraint | UniqueConstraint | ExcludeConstraint
            ):
                continue
            columns = list(constraint.columns)
            critical = (
                isinstance(constraint, UniqueConstraint)
                and len(columns) == 1
                and bool(columns[0].info.get(CRITICAL))
            )
            declared.append(DeclaredIndex(table.name, str(constraint.name), critical))
    return sorted(declared, key=lambda index: (index.table, index.name))


def declared_index_check(inspector: Inspector, thresholds: Thresholds) -> list[Finding]:
    declared = declared_indexes()
    rows = inspector.rows(
        "SELECT c.relname, i.indisvalid AND i.indisready, s.idx_scan,"
        " t.seq_scan + coalesce(t.idx_scan, 0), t.n_live_tup"
        " FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid"
        " LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = c.oid"
        " LEFT JOIN pg_stat_user_tables t ON t.relid = i.indrelid"
        " WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY (%s)",
        ([index.name for index in declared],),
    ).rows
    found = {name: (valid, scans, reads, live) for name, valid, scans, reads, live in rows}
    findings = []
    for index in declared:
        if index.name not in found:
            findings.append(
                Finding(
                    "declared-index",
                    "bad",
                    index.name,
                    f"declared on {index.table} by the models but missing from the database: "
                    "`afilo-db migrate status` shows whether a revision is pending; else "
                    "recreate it (CREATE INDEX CONCURRENTLY, as `migrate new` writes it)",
                )
            )
            continue
        valid, scans, table_reads, table_rows = found[index.name]
        if not valid:
            findings.append(
                Finding(
                    "declared-index",
                    "bad",
                    index.name,
                    f"on {index.table} is INVALID (a concurrent build that failed): no query "
                    "uses it; DROP INDEX CONCURRENTLY and build it again",
                )
            )
        elif (
            index.critical
            and scans == 0
            and table_reads is not None
            and table_reads >= thresholds.min_table_scans
            and table_rows >= thresholds.min_table_rows
        ):
            findings.append(
                Finding(
                    "declared-index",
                    "bad",
                    index.name,
                    f"performance-critical index on {index.table} unused since the statistics "
                    f"reset while the table was read {table_reads} times (threshold "
                    f"{thresholds.min_table_scans}): the reads it serves plan around it "
                    "(`inspect outliers`, `inspect suggest`)",
                )
            )
    critical = sum(index.critical for index in declared)
    return findings or [
        Finding(
            "declared-index",
            "ok",
            "",
            f"all {len(declared)} declared indexes exist and are valid; the {critical} "
            "performance-critical ones are used (or their tables too small or barely read)",
        )
    ]


def row_security_check(inspector: Inspector, thresholds: Thresholds) -> list[Finding]:
    names = [table.table for table in TABLES]
    rows = inspector.rows(
        "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class"
        " WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'p')"
        " AND relname = ANY (%s)",
        (names,),
    ).rows
    found = {name: (enabled, forced) for name, enabled, forced in rows}
    findings = []
    for name in names:
        if name not in found:
            findings.append(
                Finding("row-security", "bad", name, "table missing: the schema is not at head")
            )
            continue
        enabled, forced = found[name]
        missing = [
            words for words, present in (("ENABLE", enabled), ("FORCE", forced)) if not present
        ]
        if missing:
            statements = "; ".join(
                f"ALTER TABLE {name} {words} ROW LEVEL SECURITY" for words in missing
            )
            findings.append(
                Finding(
                    "row-security",
                    "bad",
                    name,
                    "row-level security is not "
                    + " and not ".join(w.lower() + "d" for w in missing)
                    + f": its policies do not hold; run {statements} in a revision",
                )
            )
    return findings or [
        Finding("row-security", "ok", "", f"enabled and forced on all {len(names)} tables")
    ]


def role_check(application_login: str | None = None) -> Check:
    """The check that the application's roles (and `application_login`, the user of
    DATABASE_URL when it is another) can bypass no policy."""
    roles = sorted({APP_ROLE, SERVICE_ROLE, *([application_login] if application_login else [])})

    def check(inspector: Inspector, thresholds: Thresholds) -> list[Finding]:
        rows = inspector.rows(
            "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = ANY (%s)",
            (roles,),
        ).rows
        found = {name: (superuser, bypass) for name, superuser, bypass in rows}
        findings = []
        for role in roles:
            if role not in found:
                findings.append(
                    Finding(
                        "roles",
                        "bad",
                        role,
                        "role missing: `afilo-db db roles` prints the SQL that creates it",
                    )
                    if role in (APP_ROLE, SERVICE_ROLE)
                    else Finding("roles", "unknown", role, "not a role of this server")
                )
                continue
            superuser, bypass = found[role]
            if superuser or bypass:
                attribute = "SUPERUSER" if superuser else "BYPASSRLS"
                findings.append(
                    Finding(
                        "roles",
                        "bad",
                        role,
                        f"has {attribute}: row-level security does not hold it; "
                        f"ALTER ROLE {role} NOSUPERUSER NOBYPASSRLS",
                    )
                )
        return findings or [Finding("roles", "ok", "", f"{', '.join(roles)}: held to the policies")]

    return check


def promise_checks(application_login: str | None = None) -> tuple[Check, ...]:
    return (declared_index_check, row_security_check, role_check(application_login))
