"""The application role cannot get around the policies: not by turning row level security off,
becoming the owner or the service role, reading through a view, a function or COPY, nor by
granting itself more."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors

from afilo_db.db.versions import server_version_at_least
from afilo_db.security.policies import CLERK_USER_ID_SETTING
from afilo_db.security.roles import APP_ROLE, SERVICE_ROLE
from tests.security.conftest import Marketplace

# Grant options PostgreSQL 16 introduced: older servers reject them as syntax, no escape there.
GRANT_OPTIONS_SINCE_16 = (" WITH INHERIT ", " WITH SET ")


def skip_before_its_release(
    connection: psycopg.Connection[tuple[object, ...]], statement: str
) -> None:
    if any(option in statement for option in GRANT_OPTIONS_SINCE_16) and not (
        server_version_at_least(connection, 16)
    ):
        pytest.skip("GRANT ... WITH INHERIT / WITH SET is PostgreSQL 16's syntax")


ALICE_CONTEXT = f"SELECT set_config('{CLERK_USER_ID_SETTING}', %s, false)"


@pytest.fixture
def app(marketplace: Marketplace) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """The application role acting for Alice (a session setting: one connection, no pooler)."""
    with psycopg.connect(marketplace.app_url, autocommit=True) as connection:
        connection.execute(ALICE_CONTEXT, (marketplace.alice.clerk_user_id,))
        yield connection


def cart_ids(connection: psycopg.Connection[tuple[object, ...]], source: str) -> set[object]:
    return {row[0] for row in connection.execute(f"SELECT id FROM {source}").fetchall()}


def test_the_context_shows_alices_rows(
    app: psycopg.Connection[tuple[object, ...]], marketplace: Marketplace
) -> None:
    assert cart_ids(app, "cart_items") == set(marketplace.alice.rows["cart_items"])


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE cart_items DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE cart_items NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY cart_items_app_select ON cart_items",
        "ALTER POLICY cart_items_app_select ON cart_items USING (true)",
        "CREATE POLICY open_door ON cart_items FOR SELECT TO afilo_app USING (true)",
        "ALTER TABLE cart_items OWNER TO afilo_app",
        "TRUNCATE cart_items",
    ],
)
def test_cannot_turn_row_level_security_off(
    app: psycopg.Connection[tuple[object, ...]], statement: str
) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        app.execute(statement)


def test_row_security_off_is_an_error_not_a_bypass(
    app: psycopg.Connection[tuple[object, ...]],
) -> None:
    app.execute("SET row_security = off")
    with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
        app.execute("SELECT id FROM cart_items")


@pytest.mark.parametrize(
    "statement",
    [
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION postgres",
        "SELECT set_config('role', 'postgres', false)",
        "GRANT postgres TO afilo_app",
        "ALTER ROLE afilo_app BYPASSRLS",
        "ALTER ROLE afilo_app SUPERUSER",
        "ALTER ROLE afilo_app INHERIT",
        "GRANT afilo_service TO afilo_app WITH INHERIT TRUE",
        "GRANT pg_read_all_data TO afilo_app",
    ],
)
def test_cannot_become_the_owner_or_grant_itself_a_role(
    app: psycopg.Connection[tuple[object, ...]], statement: str
) -> None:
    skip_before_its_release(app, statement)
    with pytest.raises(errors.InsufficientPrivilege):
        app.execute(statement)
    row = app.execute("SELECT current_user, session_user").fetchone()
    assert row == (APP_ROLE, APP_ROLE)


@pytest.mark.parametrize(
    ("grant", "privilege"),
    [
        ("GRANT UPDATE ON user_activity_log TO afilo_app", "UPDATE"),
        ("GRANT DELETE ON user_activity_log TO afilo_app", "DELETE"),
        ("GRANT ALL ON user_subscriptions TO afilo_app", "INSERT"),
        ("GRANT UPDATE ON user_profiles TO afilo_app", "UPDATE"),
    ],
)
def test_cannot_grant_itself_a_privilege(
    app: psycopg.Connection[tuple[object, ...]],
    marketplace: Marketplace,
    grant: str,
    privilege: str,
) -> None:
    table = grant.split(" ON ")[1].split()[0]
    # PostgreSQL answers a grant without the grant option with a warning, not an error.
    app.execute(grant)
    with psycopg.connect(marketplace.owner_url) as owner:
        row = owner.execute(
            "SELECT has_table_privilege(%s, %s, %s)", (APP_ROLE, table, privilege)
        ).fetchone()
    assert row == (False,)


def test_cannot_create_a_view_in_the_schema(app: psycopg.Connection[tuple[object, ...]]) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        app.execute("CREATE VIEW public.all_carts AS SELECT * FROM cart_items")


def test_a_view_of_its_own_is_held_to_the_policies(
    app: psycopg.Connection[tuple[object, ...]], marketplace: Marketplace
) -> None:
    app.execute("CREATE TEMP VIEW all_carts AS SELECT * FROM cart_items")
    app.execute(
        "CREATE TEMP VIEW all_carts_invoker WITH (security_invoker = false)"
        " AS SELECT * FROM cart_items"
    )
    assert cart_ids(app, "all_carts") == set(marketplace.alice.rows["cart_items"])
    assert cart_ids(app, "all_carts_invoker") == set(marketplace.alice.rows["cart_items"])


@pytest.mark.parametrize("security", ["SECURITY INVOKER", "SECURITY DEFINER"])
def test_a_function_is_held_to_the_policies(
    app: psycopg.Connection[tuple[object, ...]], marketplace: Marketplace, security: str
) -> None:
    app.execute(
        "CREATE FUNCTION pg_temp.every_cart() RETURNS SETOF cart_items"
        f" LANGUAGE sql {security} AS 'SELECT * FROM cart_items'"
    )
    assert cart_ids(app, "pg_temp.every_cart()") == set(marketplace.alice.rows["cart_items"])


def test_a_shadow_user_profiles_table_does_not_change_who_the_user_is(
    app: psycopg.Connection[tuple[object, ...]], marketplace: Marketplace
) -> None:
    """The policy functions are bound when created: a temporary `user_profiles` first on the
    search_path, claiming Alice's Clerk id is Bob, changes nothing."""
    app.execute("CREATE TEMP TABLE user_profiles (id uuid, clerk_user_id text)")
    app.execute(
        "INSERT INTO pg_temp.user_profiles VALUES (%s, %s)",
        (marketplace.bob.id, marketplace.alice.clerk_user_id),
    )
    app.execute("SET search_path = pg_temp, public")
    assert cart_ids(app, "public.cart_items") == set(marketplace.alice.rows["cart_items"])
    row = app.execute("SELECT public.current_user_profile_id()").fetchone()
    assert row == (marketplace.alice.id,)


@pytest.mark.parametrize("source", ["cart_items", "(SELECT * FROM cart_items)"])
def test_copy_out_is_held_to_the_policies(
    app: psycopg.Connection[tuple[object, ...]], marketplace: Marketplace, source: str
) -> None:
    with app.cursor().copy(f"COPY {source} TO STDOUT") as copy:
        rows = [row for row in copy.rows()]
    assert {row[0] for row in rows} == {str(i) for i in marketplace.alice.rows["cart_items"]}


def test_copy_in_is_refused(
    app: psycopg.Connection[tuple[object, ...]], marketplace: Marketplace
) -> None:
    copy_in = "COPY cart_items (user_id, variant_id) FROM STDIN"
    with (
        pytest.raises(errors.FeatureNotSupported, match="row-level security"),
        app.cursor().copy(copy_in) as copy,
    ):
        copy.write_row((marketplace.bob.id, marketplace.variant_ids[1]))


def test_cannot_read_a_partition_directly(app: psycopg.Connection[tuple[object, ...]]) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        app.execute("SELECT * FROM events_default")


# Every way PostgreSQL has to change the current role, at session and transaction level, by
# statement and by function, spelled the ways the parser accepts.
BECOME_THE_SERVICE = [
    "SET ROLE afilo_service",
    'SET ROLE "afilo_service"',
    "SET ROLE 'afilo_service'",
    "SET ROLE TO afilo_service",
    "SET ROLE = afilo_service",
    "SET SESSION ROLE afilo_service",
    "SET LOCAL ROLE afilo_service",
    "SET role TO 'afilo_service'",
    "SET SESSION AUTHORIZATION afilo_service",
    "SET LOCAL SESSION AUTHORIZATION afilo_service",
    "SELECT set_config('role', 'afilo_service', false)",
    "SELECT set_config('role', 'afilo_service', true)",
    "SELECT set_config('ROLE', 'afilo_service', false)",
    "SELECT set_config('session_authorization', 'afilo_service', false)",
    "SELECT pg_catalog.set_config('role', 'afilo_service', true)",
    "UPDATE pg_settings SET setting = 'afilo_service' WHERE name = 'role'",
    "GRANT afilo_service TO afilo_app",
    "GRANT afilo_service TO afilo_app WITH SET TRUE",
    "ALTER ROLE afilo_service PASSWORD 'known'",
    "ALTER ROLE afilo_app SET role = 'afilo_service'",
]


# Accepted by PostgreSQL, and without effect: pg_settings has no row for `role`, and a role
# setting stored on the login is checked, and refused with a warning, at each login.
NO_EFFECT = {
    "UPDATE pg_settings SET setting = 'afilo_service' WHERE name = 'role'",
    "ALTER ROLE afilo_app SET role = 'afilo_service'",
}


@pytest.mark.parametrize("statement", BECOME_THE_SERVICE)
@pytest.mark.parametrize("in_transaction", [False, True], ids=["session", "transaction"])
def test_the_application_role_cannot_become_the_service_role(
    marketplace: Marketplace, statement: str, in_transaction: bool
) -> None:
    try:
        with psycopg.connect(marketplace.app_url, autocommit=not in_transaction) as app:
            skip_before_its_release(app, statement)
            if statement in NO_EFFECT:
                app.execute(statement)
            else:
                with pytest.raises((errors.InsufficientPrivilege, errors.InvalidParameterValue)):
                    app.execute(statement)
                app.rollback()
            row = app.execute("SELECT current_user, session_user").fetchone()
            assert row == (APP_ROLE, APP_ROLE)
            app.commit()
            member = app.execute("SELECT pg_has_role(%s, 'MEMBER')", (SERVICE_ROLE,)).fetchone()
            assert member == (False,)
        # Nor at the next login.
        with psycopg.connect(marketplace.app_url) as app:
            row = app.execute("SELECT current_user, current_setting('role')").fetchone()
            assert row == (APP_ROLE, "none")
    finally:
        with psycopg.connect(marketplace.owner_url, autocommit=True) as owner:
            owner.execute(f"ALTER ROLE {APP_ROLE} RESET ALL")


def test_nor_by_a_startup_option(marketplace: Marketplace) -> None:
    """`options=-c role=...` (PGOPTIONS) is checked like SET ROLE: the login is refused."""
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        psycopg.connect(marketplace.app_url, options=f"-c role={SERVICE_ROLE}").close()


@pytest.mark.parametrize("security", ["SECURITY INVOKER", "SECURITY DEFINER"])
def test_nor_through_a_function_of_its_own(
    app: psycopg.Connection[tuple[object, ...]], security: str
) -> None:
    app.execute(
        "CREATE FUNCTION pg_temp.escalate() RETURNS text LANGUAGE plpgsql"
        f" {security} AS $$ BEGIN SET ROLE afilo_service; RETURN current_user; END $$"
    )
    with pytest.raises(errors.InsufficientPrivilege):
        app.execute("SELECT pg_temp.escalate()")
    assert app.execute("SELECT current_user").fetchone() == (APP_ROLE,)
