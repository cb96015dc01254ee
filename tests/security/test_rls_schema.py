"""The shape of the security: every table covered and forced, every filtered column indexed,
the user read once per statement, the roles as restricted as they claim, the migration working
for an owner that may not create roles."""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import make_url

from afilo_db.data.up import table_names
from afilo_db.db.embedded import EmbeddedServer
from afilo_db.db.target import DatabaseTarget
from afilo_db.db.urls import libpq_url
from afilo_db.db.versions import server_version_at_least
from afilo_db.migrate.revisions import deploy
from afilo_db.security.login import roles_script
from afilo_db.security.policies import TABLES, policies
from afilo_db.security.roles import APP_ROLE, SERVICE_ROLE
from tests.conftest import create_database, drop_database

Connection = psycopg.Connection[tuple[object, ...]]


def test_every_table_is_covered_enabled_and_forced(connection: Connection) -> None:
    assert sorted(table.table for table in TABLES) == sorted(table_names())
    rows = connection.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        " AND relkind IN ('r', 'p') AND relispartition IS FALSE"
        " AND NOT (relrowsecurity AND relforcerowsecurity)"
    ).fetchall()
    assert [row[0] for row in rows] == ["alembic_version"]


@pytest.mark.parametrize(
    ("table", "column"),
    [(table.table, column) for table in TABLES for column in table.filtered_columns],
)
def test_every_column_a_policy_filters_on_leads_an_index(
    connection: Connection, table: str, column: str
) -> None:
    row = connection.execute(
        "SELECT count(*) FROM pg_index i JOIN pg_attribute a"
        " ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
        " WHERE i.indrelid = %s::regclass AND a.attname = %s",
        (table, column),
    ).fetchone()
    assert row != (0,)


def test_policies_read_the_user_through_a_stable_function_in_a_sub_select(
    connection: Connection,
) -> None:
    expressions = [
        str(expression)
        for row in connection.execute("SELECT qual, with_check FROM pg_policies").fetchall()
        for expression in row
        if expression is not None
    ]
    calls = re.compile(r"current_(user_profile|clerk_user)_id\(\)")
    wrapped = re.compile(r"\( SELECT current_(user_profile|clerk_user)_id\(\) AS")
    every_call = sum(len(calls.findall(expression)) for expression in expressions)
    assert every_call > 0
    # The profile id is looked up in the policy itself: a SQL function that reads a table is
    # not inlined, and setting its call up costs each statement (0010_inline_user_lookup).
    assert not [expression for expression in expressions if "current_user_profile_id" in expression]
    assert sum(len(wrapped.findall(expression)) for expression in expressions) == every_call
    volatility = connection.execute(
        "SELECT proname, provolatile FROM pg_proc WHERE proname LIKE 'current\\_%%\\_id'"
        " ORDER BY proname"
    ).fetchall()
    assert volatility == [("current_clerk_user_id", "s"), ("current_user_profile_id", "s")]


def test_the_user_is_read_once_per_statement(connection: Connection) -> None:
    connection.execute(f"SET ROLE {APP_ROLE}")
    plan = "\n".join(
        str(row[0])
        for row in connection.execute(
            "EXPLAIN SELECT * FROM cart_items WHERE quantity > 0"
        ).fetchall()
    )
    assert "InitPlan" in plan and "uq_cart_items_user_id_variant_id" in plan, plan


def test_the_policies_in_the_database_are_the_policies_in_the_code(
    connection: Connection,
) -> None:
    rows = connection.execute(
        "SELECT tablename, policyname, cmd, roles FROM pg_policies"
    ).fetchall()
    found = {(str(t), str(n), str(c), tuple(str(role) for role in r)) for t, n, c, r in rows}  # type: ignore[attr-defined]
    expected = {(p.table, p.name, p.command, (p.role,)) for p in policies()}
    assert found == expected


def test_no_login_role_may_maintain_a_table(connection: Connection) -> None:
    """MAINTAIN (VACUUM, ANALYZE, REINDEX, CLUSTER, REFRESH, LOCK TABLE) exists from PostgreSQL
    17 and comes with any GRANT ALL: neither login role holds it on any table."""
    if not server_version_at_least(connection, 17):
        pytest.skip("the MAINTAIN privilege is PostgreSQL 17's")
    maintainable = connection.execute(
        "SELECT role, relname FROM pg_class, unnest(%s::text[]) AS role"
        " WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p', 'm')"
        " AND has_table_privilege(role, pg_class.oid, 'MAINTAIN')",
        ([APP_ROLE, SERVICE_ROLE],),
    ).fetchall()
    assert maintainable == []


def test_the_activity_log_has_no_update_or_delete_for_anybody_but_the_owner(
    connection: Connection,
) -> None:
    """The service role may blank its personal columns (erasure) and nothing else."""
    for role in (APP_ROLE, SERVICE_ROLE):
        for privilege in ("UPDATE", "DELETE", "TRUNCATE"):
            row = connection.execute(
                "SELECT has_table_privilege(%s, 'user_activity_log', %s)", (role, privilege)
            ).fetchone()
            assert row == (False,), (role, privilege)
    updatable = connection.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'user_activity_log'::regclass"
        " AND attnum > 0 AND has_column_privilege(%s, attrelid, attnum, 'UPDATE') ORDER BY 1",
        (SERVICE_ROLE,),
    ).fetchall()
    assert [row[0] for row in updatable] == ["actor", "details", "ip_address", "user_agent"]
    rows = connection.execute(
        "SELECT roles::text[], cmd, with_check FROM pg_policies"
        " WHERE tablename = 'user_activity_log' AND cmd IN ('UPDATE', 'DELETE', 'ALL')"
    ).fetchall()
    assert len(rows) == 1
    roles, command, check = rows[0]
    assert (roles, command) == ([SERVICE_ROLE], "UPDATE")
    assert "'erased'" in str(check) and "(ip_address IS NULL)" in str(check)


@pytest.mark.parametrize("role", [APP_ROLE, SERVICE_ROLE])
def test_the_roles_are_restricted_and_own_nothing(connection: Connection, role: str) -> None:
    attributes = connection.execute(
        "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication, rolinherit"
        " FROM pg_roles WHERE rolname = %s",
        (role,),
    ).fetchone()
    assert attributes == (False, False, False, False, False, False)
    owned = connection.execute(
        "SELECT count(*) FROM ("
        " SELECT relowner AS owner FROM pg_class UNION ALL SELECT proowner FROM pg_proc"
        " UNION ALL SELECT nspowner FROM pg_namespace UNION ALL SELECT typowner FROM pg_type"
        ") o WHERE owner = %s::regrole",
        (role,),
    ).fetchone()
    assert owned == (0,)
    # No member of the service role: nobody switches to it; it logs in on its own.
    members = connection.execute(
        "SELECT count(*) FROM pg_auth_members WHERE roleid = %s::regrole", (SERVICE_ROLE,)
    ).fetchone()
    assert members == (0,)
    for member in (APP_ROLE, SERVICE_ROLE):
        other = SERVICE_ROLE if member == APP_ROLE else APP_ROLE
        row = connection.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (member, other)).fetchone()
        assert row == (False,)
    can_login = connection.execute(
        "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (role,)
    ).fetchone()
    assert can_login == (True,)


HOSTED_OWNER = "afilo_test_hosted_owner"


@pytest.fixture
def hosted_owner_url(server: EmbeddedServer) -> Iterator[str]:
    """A database owned by a role that may not create roles, with the extensions installed by
    the provider (as Neon does), like a hosted database."""
    name = "hosted_owner_db"
    drop_database(server, name)
    with psycopg.connect(server.url("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(HOSTED_OWNER)))
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'hosted-owner' NOCREATEROLE").format(
                sql.Identifier(HOSTED_OWNER)
            )
        )
    url = create_database(server, name)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
            sql.Identifier(name), sql.Identifier(HOSTED_OWNER)))  # fmt: skip
        admin.execute("CREATE EXTENSION vector")
        admin.execute("CREATE EXTENSION btree_gist")
    yield (
        make_url(url)
        .set(username=HOSTED_OWNER, password="hosted-owner")
        .render_as_string(hide_password=False)
    )
    drop_database(server, name)
    with psycopg.connect(server.url("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(HOSTED_OWNER)))


def test_an_owner_that_may_not_create_roles_migrates_when_the_roles_exist(
    hosted_owner_url: str,
) -> None:
    deploy(hosted_owner_url)
    with psycopg.connect(hosted_owner_url) as connection:
        row = connection.execute("SELECT count(*) FROM pg_policies").fetchone()
        assert row == (len(list(policies())),)
    script = roles_script(DatabaseTarget(libpq_url(hosted_owner_url), hosted_owner_url, None))
    assert script.owner == HOSTED_OWNER and not script.owner_bypasses_rls
    assert set(script.new_passwords) == {APP_ROLE, SERVICE_ROLE}
    assert all(password not in script.sql for password in script.new_passwords.values())
    assert "CREATE ROLE afilo_app LOGIN" in script.sql and "SCRAM-SHA-256$" in script.sql
    assert "CREATE ROLE afilo_service LOGIN" in script.sql
    assert "REVOKE afilo_service FROM afilo_app" in script.sql
