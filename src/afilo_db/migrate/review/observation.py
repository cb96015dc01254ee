"""What each statement actually does, observed on a rehearsal copy: the locks it holds (from
`pg_locks`), the tables it rewrites (their relfilenode changes), the rows it inserts, updates
and deletes (`pg_stat_xact_user_tables`), the rows and values it loses (exact counts before and
after, by table and column), the error it raises, and the access it changes (policies per role
and command with their effective predicates, grants, default privileges, row level security,
SECURITY DEFINER functions and the functions policies call, role attributes).

What is observed outranks what is predicted: a danger the prediction missed becomes a finding
of its own (`judge`), and where the two disagree both are reported.

Statements that change the server rather than the copy (roles, memberships) run in a savepoint
that is rolled back once observed; those PostgreSQL refuses in a transaction and that change the
server (CREATE DATABASE, ALTER SYSTEM, tablespaces, subscriptions) are not run at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import psycopg
from psycopg import sql as pgsql

from afilo_db.migrate.review.access import normalized_expression
from afilo_db.migrate.review.findings import RevisionReview, Severity, StatementReview
from afilo_db.migrate.review.locks import LEVELS, blocks_traffic
from afilo_db.migrate.review.measurements import Thresholds
from afilo_db.migrate.review.syntax import identifier
from afilo_db.security.roles import APP_ROLE, SERVICE_ROLE

# Statements that change the whole server: never committed on the copy.
SERVER_WIDE: Final = frozenset(
    {
        "AlterRoleSetStmt",
        "AlterRoleStmt",
        "CreateRoleStmt",
        "DropRoleStmt",
        "GrantRoleStmt",
        "AlterDatabaseSetStmt",
        "AlterDatabaseStmt",
        "AlterDatabaseRefreshCollStmt",
        "AlterTableSpaceOptionsStmt",
        "DropOwnedStmt",
        "ReassignOwnedStmt",
    }
)
NOT_RUN: Final = frozenset(
    {
        "AlterSystemStmt",
        "CreatedbStmt",
        "DropdbStmt",
        "CreateTableSpaceStmt",
        "DropTableSpaceStmt",
        "CreateSubscriptionStmt",
        "AlterSubscriptionStmt",
        "DropSubscriptionStmt",
        "CheckPointStmt",
    }
)
# Marks an error the statement itself raised, as opposed to one of the observation around it.
_STATEMENT_FAILED = "raised by the statement under observation"
# pg_locks.mode -> the manual's name of the level.
LOCK_MODES: Final = {level.title().replace(" ", "") + "Lock": level for level in LEVELS}
APPLICATION_ROLES: Final = (APP_ROLE, SERVICE_ROLE)
ALL_COMMANDS: Final = ("SELECT", "INSERT", "UPDATE", "DELETE")
POLICY_COMMANDS: Final = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}

_LOCKS = """
SELECT relation, mode FROM pg_locks
WHERE pid = pg_backend_pid() AND locktype = 'relation' AND granted
"""
# Relations the application can use, by oid: a lock is named from the list taken before the
# statement (a table it drops has no name afterwards; one it creates is nobody else's yet).
_RELATIONS = """
SELECT oid, oid::regclass::text FROM pg_class
WHERE relkind IN ('r', 'p', 'm', 'v', 'f') AND relnamespace <> 'pg_catalog'::regnamespace
"""
_FILES = """
SELECT c.oid::regclass::text, c.relfilenode FROM pg_class c
WHERE c.relkind IN ('r', 'm') AND c.relnamespace NOT IN
  ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
  AND c.relnamespace::regnamespace::text NOT LIKE 'pg\\_%'
"""
_ROW_STATS = """
SELECT relid::regclass::text, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_xact_user_tables
"""
# Every object is keyed by its oid (a rename is no change of access) and named for the reader.
_POLICIES = """
SELECT 'r' || p.polrelid::int, p.polpermissive, p.polcmd,
       ARRAY(SELECT CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r) END
             FROM unnest(p.polroles) AS r ORDER BY 1),
       pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
FROM pg_policy p
"""
_ROW_SECURITY = """
SELECT 'r' || oid::int, relrowsecurity, relforcerowsecurity FROM pg_class
WHERE relkind IN ('r', 'p') AND relnamespace <> 'pg_catalog'::regnamespace
"""
# An extension's own functions (hundreds for pgvector) are left out: their grants are the
# extension's, and reading them would make every snapshot several times slower.
_GRANTS = """
SELECT 'r' || c.oid::int, c.oid::regclass::text,
       coalesce(pg_get_userbyid(nullif(a.grantee, 0)), 'PUBLIC'), a.privilege_type
FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) AS a
WHERE c.relkind IN ('r', 'p', 'm', 'v', 'f', 'S')
  AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
  AND c.relnamespace::regnamespace::text NOT LIKE 'pg\\_%'
UNION ALL
SELECT 'r' || c.oid::int || '.' || t.attnum, format('%s.%I', c.oid::regclass, t.attname),
       coalesce(pg_get_userbyid(nullif(a.grantee, 0)), 'PUBLIC'), a.privilege_type
FROM pg_attribute t JOIN pg_class c ON c.oid = t.attrelid, aclexplode(t.attacl) AS a
WHERE t.attacl IS NOT NULL AND NOT t.attisdropped
UNION ALL
SELECT 'n' || n.oid::int, 'schema ' || n.nspname,
       coalesce(pg_get_userbyid(nullif(a.grantee, 0)), 'PUBLIC'), a.privilege_type
FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) AS a
WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
UNION ALL
SELECT 'f' || p.oid::int, 'function ' || p.oid::regprocedure,
       coalesce(pg_get_userbyid(nullif(a.grantee, 0)), 'PUBLIC'), a.privilege_type
FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a
WHERE p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
  AND p.oid NOT IN (SELECT objid FROM pg_depend
                   WHERE classid = 'pg_proc'::regclass AND deptype = 'e')
"""
_DEFAULT_PRIVILEGES = """
SELECT pg_get_userbyid(d.defaclrole), coalesce(d.defaclnamespace::regnamespace::text, '*'),
       d.defaclobjtype, coalesce(pg_get_userbyid(nullif(a.grantee, 0)), 'PUBLIC'),
       a.privilege_type
FROM pg_default_acl d, aclexplode(d.defaclacl) AS a
"""
_DEFINER_FUNCTIONS = """
SELECT 'f' || p.oid::int, pg_get_userbyid(p.proowner),
       coalesce(array_to_string(p.proconfig, ','), '')
FROM pg_proc p WHERE p.prosecdef
  AND p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
"""
_POLICY_FUNCTIONS = """
SELECT DISTINCT 'f' || p.oid::int, md5(coalesce(p.prosrc, '') || p.prosecdef::text
       || coalesce(array_to_string(p.proconfig, ','), ''))
FROM pg_depend d JOIN pg_proc p ON p.oid = d.refobjid
WHERE d.classid = 'pg_policy'::regclass AND d.refclassid = 'pg_proc'::regclass
"""
_ROLES = """
SELECT rolname, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication, rolinherit
FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%'
"""
SECURITY_RULES: Final = frozenset(
    {
        "access-revoked",
        "grant-widened",
        "policy-widened",
        "rls-weakened",
        "role-privileges",
        "security-definer-search-path",
    }
)
ROLE_ATTRIBUTES: Final = ("SUPERUSER", "BYPASSRLS", "CREATEROLE", "CREATEDB", "REPLICATION")


@dataclass
class Access:
    """Who can see and do what, as sets of facts about objects keyed by oid (`names` says what
    each key is called); a fact that appears is a widening, one that disappears a narrowing
    (for restrictive policies and row level security, the reverse)."""

    names: dict[str, str] = field(default_factory=dict)
    permissive: set[tuple[str, str, str, str | None, str | None]] = field(default_factory=set)
    restrictive: set[tuple[str, str, str, str | None, str | None]] = field(default_factory=set)
    row_security: set[tuple[str, str]] = field(default_factory=set)
    grants: set[tuple[str, str, str]] = field(default_factory=set)
    default_privileges: set[tuple[str, ...]] = field(default_factory=set)
    definer_functions: set[tuple[str, str, str]] = field(default_factory=set)
    policy_functions: set[tuple[str, str]] = field(default_factory=set)
    role_attributes: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class Observed:
    """What one statement did on the copy. `failed`: the error it raised (rows it refused);
    `unmeasured`: why observing it failed; `rows`: rows of the tables it touched, before."""

    ran: bool = True
    note: str | None = None
    failed: str | None = None
    unmeasured: str | None = None
    locks: dict[str, str] = field(default_factory=dict)
    rewritten: list[str] = field(default_factory=list)
    rows_inserted: dict[str, int] = field(default_factory=dict)
    rows_updated: dict[str, int] = field(default_factory=dict)
    rows_deleted: dict[str, int] = field(default_factory=dict)
    rows_lost: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    access: list[dict[str, str]] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)


def _access(connection: psycopg.Connection[Any]) -> Access:
    access = Access()
    for key, name, grantee, privilege in connection.execute(_GRANTS):
        access.names[str(key)] = str(name)
        access.grants.add((str(key), str(grantee), str(privilege)))
    for table, permissive, command, roles, using, check in connection.execute(_POLICIES):
        commands = ALL_COMMANDS if command == "*" else (POLICY_COMMANDS[command],)
        facts = access.permissive if permissive else access.restrictive
        facts |= {
            (
                str(table),
                str(role),
                each,
                normalized_expression(using),
                normalized_expression(check),
            )
            for role in roles
            for each in commands
        }
    for table, enabled, forced in connection.execute(_ROW_SECURITY):
        access.row_security |= {
            (str(table), what) for what, on in (("ENABLE", enabled), ("FORCE", forced)) if on
        }
    access.default_privileges = {
        tuple(str(value) for value in row) for row in connection.execute(_DEFAULT_PRIVILEGES)
    }
    access.definer_functions = {
        (str(key), str(owner), str(config))
        for key, owner, config in connection.execute(_DEFINER_FUNCTIONS)
    }
    access.policy_functions = {
        (str(key), str(digest)) for key, digest in connection.execute(_POLICY_FUNCTIONS)
    }
    for name, *flags in connection.execute(_ROLES):
        access.role_attributes |= {
            (str(name), attribute)
            for attribute, enabled in zip(ROLE_ATTRIBUTES, flags, strict=False)
            if enabled
        }
        if flags[-1] and name in APPLICATION_ROLES:
            access.role_attributes.add((str(name), "INHERIT"))
    return access


def _widenings(before: Access, after: Access) -> list[tuple[str, str]]:
    """(rule, words) for every way `after` lets someone see or do more than `before`, on
    objects that existed before (a new object is judged by the contract's checks)."""

    def existed(key: str) -> bool:
        return key in before.names or key.split(".")[0] in before.names

    name = after.names.get
    found: list[tuple[str, str]] = []
    for table, role, command, using, check in sorted(after.permissive - before.permissive, key=str):
        if existed(table):
            found.append(
                (
                    "policy-widened",
                    f"{role} may {command} rows of {name(table)} where "
                    f"{using or check or 'true'}, which no policy let it before",
                )
            )
    for table, role, command, *_ in sorted(before.restrictive - after.restrictive, key=str):
        if table in after.names:
            found.append(
                (
                    "policy-widened",
                    f"a restrictive policy on {name(table)} for {role} {command} went",
                )
            )
    for table, what in sorted(before.row_security - after.row_security):
        if table in after.names:
            found.append(
                ("rls-weakened", f"row level security is no longer {what}D on {name(table)}")
            )
    for target, grantee, privilege in sorted(after.grants - before.grants):
        if existed(target):
            found.append(("grant-widened", f"{grantee} gets {privilege} on {name(target)}"))
    for role, schema, kind, grantee, privilege in sorted(
        after.default_privileges - before.default_privileges
    ):
        found.append(
            (
                "grant-widened",
                f"{grantee} gets {privilege} on every future object ({kind}) {role} creates in "
                f"{schema}",
            )
        )
    for function, owner, config in sorted(after.definer_functions - before.definer_functions):
        if "search_path=" not in config:
            found.append(
                (
                    "security-definer-search-path",
                    f"{name(function)} runs as {owner} (SECURITY DEFINER) without a fixed "
                    "search_path",
                )
            )
    changed = {key for key, _ in after.policy_functions - before.policy_functions}
    for function in sorted(changed & {key for key, _ in before.policy_functions}):
        found.append(("policy-widened", f"{name(function)}, which a policy calls, changed"))
    for role, attribute in sorted(after.role_attributes - before.role_attributes):
        found.append(("role-privileges", f"role {role} gets {attribute}"))
    return found


def _revoked(before: Access, after: Access) -> list[tuple[str, str]]:
    """Rights the application's roles lose on objects that remain: the statements they run that
    need them fail, or find no rows."""
    name = before.names.get
    found = []
    for target, grantee, privilege in sorted(before.grants - after.grants):
        if grantee in APPLICATION_ROLES and target in after.names:
            found.append(
                (
                    "access-revoked",
                    f"{grantee} loses {privilege} on {name(target)}: every {privilege} it runs "
                    "there fails with permission denied",
                )
            )
    for table, role, command, *_ in sorted(before.permissive - after.permissive, key=str):
        if (
            role in APPLICATION_ROLES
            and table in after.names
            and not any(fact[:3] == (table, role, command) for fact in after.permissive)
        ):
            found.append(
                (
                    "access-revoked",
                    f"{role} has no policy left for {command} on {name(table)}: it sees or "
                    "changes no row there any more",
                )
            )
    return found


# (table oid, attnum): 0 for the table's rows, a column's number for its non-null values.
CountKey = tuple[int, int]


def _changes(before: Access, after: Access) -> list[dict[str, str]]:
    return [
        {"rule": rule, "change": words}
        for rule, words in _widenings(before, after) + _revoked(before, after)
    ]


def _row_counts(
    connection: psycopg.Connection[Any], tables: Iterable[str]
) -> dict[CountKey, tuple[str, int]]:
    """Rows of each table and non-null values of each of its columns, keyed by oid and column
    number so that a rename is not a loss, with the name they had."""
    counts: dict[CountKey, tuple[str, int]] = {}
    for table in sorted(set(tables)):
        columns = connection.execute(
            "SELECT attrelid::int, attnum, attname FROM pg_attribute"
            " WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped"
            " ORDER BY attnum",
            (table,),
        ).fetchall()
        oid = connection.execute("SELECT to_regclass(%s)::oid::int", (table,)).fetchone()
        if oid is None or oid[0] is None:
            continue
        query = pgsql.SQL("SELECT count(*){} FROM {}").format(
            pgsql.SQL("").join(
                pgsql.SQL(", count({})").format(pgsql.Identifier(name)) for _, _, name in columns
            ),
            identifier(table),
        )
        row = connection.execute(query).fetchone() or (0,)
        counts[(int(oid[0]), 0)] = (table, int(row[0]))
        for (_, number, name), value in zip(columns, row[1:], strict=True):
            counts[(int(oid[0]), int(number))] = (f"{table}.{name}", int(value))
    return counts


# A relation's name as SQL writes it: an identifier, quoted or not, qualified by its schema or
# not. A lock's description that names no relation ("its indexes") is not looked up: before
# PostgreSQL 16 to_regclass raises on it instead of returning NULL.
_RELATION_NAME = re.compile(
    r'(?:"(?:[^"]|"")+"|[^\W\d][\w$]*)(?:\.(?:"(?:[^"]|"")+"|[^\W\d][\w$]*))?'
)


def _stored_tables(connection: psycopg.Connection[Any], names: Iterable[str]) -> list[str]:
    return [
        name
        for name in names
        if _RELATION_NAME.fullmatch(name)
        and connection.execute(
            "SELECT relkind IN ('r', 'p', 'm') FROM pg_class WHERE oid = to_regclass(%s)",
            (name,),
        ).fetchone()
        == (True,)
    ]


def _strongest(rows: Iterable[tuple[Any, ...]], names: dict[int, str]) -> dict[str, str]:
    held: dict[str, str] = {}
    for relation, mode in rows:
        level = LOCK_MODES.get(str(mode))
        if level is None or relation not in names:
            continue
        name = names[relation]
        if name not in held or LEVELS.index(level) > LEVELS.index(held[name]):
            held[name] = level
    return held


class Observer:
    """Runs a revision's statements on `connection` (a rehearsal copy) one by one, observing
    each. `commits`: whether the copy keeps what they did (so that the next revision runs on
    it) and statements PostgreSQL refuses in a transaction may run; otherwise everything is
    rolled back at the end and those statements are left out."""

    def __init__(self, connection: psycopg.Connection[Any], commits: bool) -> None:
        self.connection = connection
        self.commits = commits
        # The access a server-wide statement gave, read before its savepoint is rolled back.
        self.undone_access: Access | None = None

    def revision(self, review: RevisionReview, thresholds: Thresholds) -> None:
        """Observe every statement of `review`, then judge each: access changes are those that
        last to the end of the migration (a policy dropped and created again is no change),
        attributed to the statement that made them; a server-wide statement, undone at once,
        answers for what it did."""
        connection = self.connection
        start = _access(connection)
        observations: list[Observed] = []
        snapshots: list[Access] = []
        for statement in review.statements:
            before = snapshots[-1] if snapshots else start
            observed = self._statement(statement)
            if self.undone_access is not None:
                observed.access = _changes(before, self.undone_access)
                self.undone_access = None
            observations.append(observed)
            snapshots.append(_access(connection))
        if self.commits:
            connection.commit()
        else:
            connection.rollback()
        final = snapshots[-1] if snapshots else start
        lasting = set(_widenings(start, final) + _revoked(start, final))
        previous = start
        for statement, observed, after in zip(
            review.statements, observations, snapshots, strict=True
        ):
            if not observed.access:
                observed.access = [
                    change
                    for change in _changes(previous, after)
                    if (change["rule"], change["change"]) in lasting
                ]
            previous = after
            judge(statement, observed, thresholds)
            statement.observed = asdict(observed)

    def _statement(self, statement: StatementReview) -> Observed:
        connection = self.connection
        if statement.kind in NOT_RUN:
            return Observed(ran=False, note="it changes the server, not the copy: not run")
        if statement.transactional and statement.in_transaction:
            return self._run(statement, keep=statement.kind not in SERVER_WIDE)
        if not self.commits:
            return Observed(ran=False, note="runs outside a transaction: observed on a copy only")
        connection.commit()
        connection.autocommit = True
        try:
            observed = self._run(statement, keep=True)
            observed.note = "ran outside a transaction: its locks ended with it"
            return observed
        finally:
            connection.autocommit = False

    def _run(self, statement: StatementReview, keep: bool) -> Observed:
        """Run the statement in a savepoint (rolled back unless `keep`), or on its own when the
        connection is in autocommit; an error of the statement is `failed`, an error of the
        observation around it (a timeout included) `unmeasured`."""
        connection = self.connection
        observed = Observed()
        try:
            if connection.autocommit:
                self._observe(statement, observed)
            else:
                with connection.transaction() as savepoint:
                    self._observe(statement, observed)
                    if not keep:
                        observed.note = "it changes the server: rolled back once observed"
                        self.undone_access = _access(connection)
                        raise psycopg.Rollback(savepoint)
        except psycopg.Error as error:
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            raised_by_statement = _STATEMENT_FAILED in getattr(error, "__notes__", ())
            if raised_by_statement and not isinstance(error, psycopg.errors.QueryCanceled):
                observed.failed = message
            else:
                observed.unmeasured = message
        return observed

    def _observe(self, statement: StatementReview, observed: Observed) -> None:
        connection = self.connection
        tables = _stored_tables(
            connection, [name for name in (statement.table, *statement.other_locks) if name]
        )
        counts = _row_counts(connection, tables)
        files = dict(connection.execute(_FILES).fetchall())
        stats = {row[0]: tuple(row[1:]) for row in connection.execute(_ROW_STATS)}
        names = {
            int(oid): str(name).removeprefix("public.")
            for oid, name in connection.execute(_RELATIONS)
        }
        held = _strongest(connection.execute(_LOCKS).fetchall(), names)
        try:
            connection.execute(statement.sql.encode())
        except psycopg.Error as error:
            error.add_note(_STATEMENT_FAILED)
            raise
        self._effects(observed, counts, files, stats, held, names)

    def _effects(
        self,
        observed: Observed,
        counts: dict[CountKey, tuple[str, int]],
        files: dict[str, int],
        stats: dict[str, tuple[int, ...]],
        held: dict[str, str],
        names: dict[int, str],
    ) -> None:
        """What the statement just did."""
        connection = self.connection
        if not connection.autocommit:
            observed.locks = {
                table: lock
                for table, lock in _strongest(connection.execute(_LOCKS).fetchall(), names).items()
                if held.get(table) is None or LEVELS.index(lock) > LEVELS.index(held[table])
            }
        after_files = dict(connection.execute(_FILES).fetchall())
        observed.rewritten = sorted(
            table.removeprefix("public.")
            for table, node in files.items()
            if table in after_files and after_files[table] != node
        )
        for table, *now in connection.execute(_ROW_STATS):
            was = stats.get(table, (0, 0, 0))
            for into, after, before in zip(
                (observed.rows_inserted, observed.rows_updated, observed.rows_deleted),
                now,
                was,
                strict=True,
            ):
                if after - before:
                    into[str(table).removeprefix("public.")] = int(after - before)
        remaining = _row_counts(
            connection,
            {
                str(row[0])
                for row in connection.execute(
                    "SELECT oid::regclass::text FROM pg_class WHERE oid = ANY(%s::oid[])",
                    (sorted({oid for oid, _ in counts}),),
                )
            },
        )
        observed.rows_lost = {
            label.removeprefix("public."): count - remaining.get(key, ("", 0))[1]
            for key, (label, count) in counts.items()
            if count > remaining.get(key, ("", 0))[1]
        }
        for (_, number), (label, count) in counts.items():
            if number == 0:
                observed.rows[label.removeprefix("public.")] = count
        for table in {*observed.rewritten, *observed.locks} - observed.rows.keys():
            row = connection.execute(
                pgsql.SQL("SELECT count(*) FROM {}").format(identifier(table))
            ).fetchone()
            observed.rows[table] = int(row[0]) if row else 0


def _predicted_lock(statement: StatementReview, table: str) -> str | None:
    names = {table, f"public.{table}"}
    if statement.table in names:
        return statement.lock
    return next((lock for name, lock in statement.other_locks.items() if name in names), None)


def judge(statement: StatementReview, observed: Observed, thresholds: Thresholds) -> None:
    """Findings for what the copy showed and the prediction missed; the disagreements, in
    words, into `observed`."""
    rules = {finding.rule for finding in statement.findings if finding.severity == "error"}

    def blocking(table: str) -> Severity:
        return "error" if observed.rows.get(table, 0) > thresholds.tiny_rows else "info"

    if observed.unmeasured:
        statement.find(
            "unmeasured",
            "error",
            f"could not measure it on the rehearsal copy: {observed.unmeasured}",
        )
    if observed.failed and not rules:
        observed.disagreements.append(f"predicted to pass; it failed: {observed.failed}")
        statement.find("fails-on-copy", "error", f"PostgreSQL refuses it: {observed.failed}")
    for table in observed.rewritten:
        if statement.rewrites or statement.kind == "TruncateStmt":
            continue
        observed.disagreements.append(f"predicted no rewrite; {table} was rewritten")
        if "table-rewrite" not in rules:
            statement.find(
                "table-rewrite",
                blocking(table),
                f"{table} ({observed.rows.get(table, 0)} rows) was rewritten on the rehearsal "
                "copy (its relfilenode changed) under ACCESS EXCLUSIVE: no reads or writes "
                "meanwhile",
                observed.rows.get(table),
            )
    for table, lock in observed.locks.items():
        predicted = _predicted_lock(statement, table)
        if not blocks_traffic(lock) or (
            predicted is not None and LEVELS.index(predicted) >= LEVELS.index(lock)
        ):
            continue
        observed.disagreements.append(f"predicted {predicted or 'no lock'} on {table}; held {lock}")
        if not rules:
            statement.find(
                "unpredicted-lock",
                blocking(table),
                f"{statement.kind} held {lock} on {table} on the rehearsal copy, which the "
                f"review did not predict: it blocks {table}'s traffic until the migration commits",
                observed.rows.get(table),
            )
    # Rows deleted count wherever they went (a function, a trigger, a cascade); values lost
    # only in the tables the statement names.
    lost = max([*observed.rows_lost.values(), *observed.rows_deleted.values()], default=0)
    if lost:
        predicted_counts = {
            finding.count for finding in statement.findings if finding.rule == "data-loss"
        }
        if "data-loss" not in rules:
            where = ", ".join(
                f"{name}: {n}"
                for name, n in {**observed.rows_deleted, **observed.rows_lost}.items()
            )
            statement.find(
                "data-loss",
                "error",
                f"on the rehearsal copy it lost rows or values ({where})",
                lost,
            )
        elif lost not in predicted_counts:
            observed.disagreements.append(
                f"predicted {sorted(c for c in predicted_counts if c is not None)} lost; "
                f"observed {lost}"
            )
    # A statement already blocked for its security is not reported again for each fact.
    if not rules & SECURITY_RULES:
        for rule in dict.fromkeys(change["rule"] for change in observed.access):
            statement.find(
                rule,
                "error",
                "on the rehearsal copy: "
                + "; ".join(c["change"] for c in observed.access if c["rule"] == rule),
            )


@contextmanager
def rehearsing(copy_url: str, timeout: str) -> Iterator[Observer]:
    """An observer that runs statements on the copy at `copy_url` and keeps what they do; each
    statement may take `timeout` before its observation counts as failed (unmeasured)."""
    with psycopg.connect(copy_url) as connection:
        connection.execute(pgsql.SQL("SET statement_timeout = {}").format(pgsql.Literal(timeout)))
        connection.commit()
        yield Observer(connection, commits=True)
