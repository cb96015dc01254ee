"""The application role cannot get around the policies: not by turning row level security off,
becoming the owner, reading through a view, a function or COPY, nor by granting itself more."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors

from afilo_db.security.policies import CLERK_USER_ID_SETTING
from afilo_db.security.roles import APP_ROLE
from tests.security.conftest import Marketplace

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
