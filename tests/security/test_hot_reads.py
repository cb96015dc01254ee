"""User-scoped hot reads as the application role: the user context and the query in one round
trip, only the user's own rows, and nothing left behind on the connection; directly and through
a real PgBouncer (1.18, transaction mode)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from afilo_db.config import Settings
from afilo_db.db.engine import create_app_engine, create_async_app_engine
from afilo_db.db.urls import libpq_url
from afilo_db.errors import ValidationError
from afilo_db.security import read_as_user, reads
from afilo_db.security.policies import CLERK_USER_ID_SETTING
from afilo_db.services import cart, downloads
from tests.security.conftest import Marketplace, pooled_app_url
from tests.security.pgbouncer import PgBouncer
from tests.services.test_hot_paths import sent_during

LEFT_BEHIND_SQL = text(
    f"SELECT current_user::text, coalesce(current_setting('{CLERK_USER_ID_SETTING}', true), '')"
)


@pytest.fixture
def app(marketplace: Marketplace) -> Iterator[Engine]:
    engine = create_app_engine(marketplace.app_url, Settings(db_pool_size=1, db_max_overflow=0))
    yield engine
    engine.dispose()


@pytest.fixture
def pooled_app(
    pgbouncer: PgBouncer, app_password: str, marketplace: Marketplace
) -> Iterator[Engine]:
    url = pooled_app_url(pgbouncer, app_password, marketplace.database) + "?pgbouncer=true"
    engine = create_app_engine(url, Settings(db_pool_size=1, db_max_overflow=0))
    yield engine
    engine.dispose()


def test_user_cart_and_downloads_are_the_users_own(app: Engine, marketplace: Marketplace) -> None:
    alice, bob = marketplace.alice, marketplace.bob
    alices_cart = cart.user_cart(app, alice.clerk_user_id)
    assert [line.variant_id for line in alices_cart.lines] == [marketplace.variant_ids[0]]
    alices = downloads.user_downloads(app, alice.clerk_user_id)
    assert [record.id for record in alices] == alice.rows["downloads"]
    assert alices[0].purchase_id == alice.rows["purchases"][0]
    # Asking for Bob's rows in Alice's context finds nothing: the policies decide, not the query.
    with Session(app) as session, session.begin():
        cart.user_cart(session, alice.clerk_user_id)  # in an open transaction, the context stays
        assert cart.cart_contents(session, bob.id).lines == []
        assert downloads.downloads(session, bob.id) == []
        assert len(downloads.downloads(session, alice.id)) == 1
    assert cart.user_cart(app, "user_nobody000001").lines == []


def test_on_other_logins_the_read_still_filters_by_the_user(marketplace: Marketplace) -> None:
    """The service role's policies show every cart, the owner's login skips them: the read
    filters by the user itself there, where as the application role it leaves that to the
    policy."""
    alice = marketplace.alice
    for url in (marketplace.service_url, marketplace.owner_url):
        engine = create_app_engine(url, Settings(db_pool_size=1, db_max_overflow=0))
        try:
            lines = cart.user_cart(engine, alice.clerk_user_id).lines
            assert [line.variant_id for line in lines] == [marketplace.variant_ids[0]], url
            records = downloads.user_downloads(engine, alice.clerk_user_id)
            assert [record.id for record in records] == alice.rows["downloads"], url
        finally:
            engine.dispose()


def _scans(url: str, sql: str, parameters: Mapping[str, object]) -> list[dict[str, str]]:
    """Each scan of a table in the read's generic plan (the plan a prepared statement settles
    on): its node type, table and index or recheck condition."""
    with psycopg.connect(libpq_url(url)) as connection:
        connection.execute("SET plan_cache_mode = force_generic_plan")
        names = list(parameters)
        numbered = re.sub(r"%\((\w+)\)s", lambda found: f"${names.index(found[1]) + 1}", sql)
        connection.execute(f"PREPARE user_read AS {numbered}")
        values = ", ".join(psycopg.sql.quote(value) for value in parameters.values())
        row = connection.execute(f"EXPLAIN (FORMAT JSON) EXECUTE user_read({values})").fetchone()
    assert row is not None
    found: list[dict[str, str]] = []

    def walk(node: dict[str, Any]) -> None:
        if "Relation Name" in node:
            condition = node.get("Index Cond", "") + node.get("Recheck Cond", "")
            found.append(
                {"kind": node["Node Type"], "table": node["Relation Name"], "by": condition}
            )
        for child in node.get("Plans", []):
            walk(child)

    walk(row[0][0]["Plan"])
    return found


@pytest.mark.parametrize("login", ["app_url", "service_url", "owner_url"])
def test_the_users_rows_are_found_by_index_on_every_login(
    marketplace: Marketplace, login: str
) -> None:
    """The read filters by the user with the policies' own lookup: an index condition as the
    application role and on the logins that see every row (the service role, the owner), where
    a condition that depended on the login made those logins read the whole table."""
    alice = marketplace.alice.clerk_user_id
    for template, rows, parameters in (
        (reads.CART_TEMPLATE, reads.CART_ROWS, {"clerk_user_id": alice}),
        (reads.DOWNLOADS_TEMPLATE, reads.DOWNLOADS_ROWS, {"clerk_user_id": alice, "limit": 50}),
    ):
        alone = read_as_user(template, rows, alice).alone
        # What `hot.fetch` sends on this login (`Alone.on`): the application role's is shorter.
        sql = (alone.on_login if login == "app_url" else alone.statement) or alone.statement
        scans = _scans(getattr(marketplace, login), sql[0], parameters)
        users_rows = [scan for scan in scans if scan["table"] == rows.table]
        assert len(users_rows) == 1 and "(user_id = " in users_rows[0]["by"], scans
        # One lookup of the user: as the application role the policy's, not the policy's and
        # the query's own again.
        assert [scan["table"] for scan in scans].count("user_profiles") == 1, scans
        # products only for the query's own join: the variants' policy reads their copy of the
        # product's status instead of probing products (0011_variant_product_status).
        assert [scan["table"] for scan in scans].count("products") == 1, scans


def test_the_application_logins_read_shows_nothing_as_another_role(
    marketplace: Marketplace,
) -> None:
    """The application role's statement leaves the user's rows to its policies. Run as a role
    that sees every row (a pooler that logs in as another, say) it shows none, never all."""
    alice = marketplace.alice.clerk_user_id
    with psycopg.connect(libpq_url(marketplace.owner_url), autocommit=True) as owner:
        for template, rows, parameters in (
            (reads.CART_TEMPLATE, reads.CART_ROWS, {"clerk_user_id": alice}),
            (reads.DOWNLOADS_TEMPLATE, reads.DOWNLOADS_ROWS, {"clerk_user_id": alice, "limit": 50}),
        ):
            alone = read_as_user(template, rows, alice).alone
            assert alone.on_login is not None and alone.login == "afilo_app"
            assert owner.execute(alone.on_login[0], parameters).fetchall() == []
            assert owner.execute(alone.statement[0], parameters).fetchall() != []
    # It is what the application's login sends (`hot.Alone.on`).
    with psycopg.connect(libpq_url(marketplace.app_url), prepare_threshold=0) as app:
        assert len(cart.user_cart(app, alice).lines) == 1
        sent = app.execute("SELECT statement FROM pg_prepared_statements").fetchall()
    assert any("WHERE current_user = 'afilo_app'" in statement for (statement,) in sent), sent


def test_one_round_trip_and_no_context_left_behind(app: Engine, marketplace: Marketplace) -> None:
    alice = marketplace.alice
    cart.user_cart(app, alice.clerk_user_id)
    contents, sent = sent_during(app, lambda: cart.user_cart(app, alice.clerk_user_id))
    assert len(contents.lines) == 1
    # The context and the query as one prepared statement: one round trip, no BEGIN, no ROLLBACK.
    assert sent == ["Bind", "Describe", "Execute", "Sync"], sent
    with app.connect() as connection:
        assert tuple(connection.execute(LEFT_BEHIND_SQL).one()) == ("afilo_app", "")


def test_a_malformed_clerk_id_is_refused_before_anything_runs(app: Engine) -> None:
    with pytest.raises(ValidationError) as caught:
        cart.user_cart(app, "alice'; DROP TABLE cart_items; --")
    assert set(caught.value.problems) == {"clerk_user_id"}
    with pytest.raises(ValidationError) as limit:
        downloads.user_downloads(app, "user_alice000001", limit=10_000)
    assert set(limit.value.problems) == {"limit"}


def test_through_pgbouncer_in_transaction_mode(
    pooled_app: Engine, marketplace: Marketplace
) -> None:
    alice, bob = marketplace.alice, marketplace.bob
    for _ in range(5):  # alternating users on PgBouncer's one server connection
        assert [line.variant_id for line in cart.user_cart(pooled_app, bob.clerk_user_id).lines]
        alices = downloads.user_downloads(pooled_app, alice.clerk_user_id)
        assert [record.id for record in alices] == alice.rows["downloads"]
    with pooled_app.connect() as connection:
        assert tuple(connection.execute(LEFT_BEHIND_SQL).one()) == ("afilo_app", "")


def test_behind_pgbouncer_the_reads_call_their_server_side_functions(
    app: Engine,
    pooled_app: Engine,
    marketplace: Marketplace,
    pgbouncer: PgBouncer,
    app_password: str,
) -> None:
    """Where nothing can stay prepared (PgBouncer 1.18) a user-scoped read is one call of its
    function (`afilo_db.security.reads`), whose plan the server keeps, for the statement's rows.
    Without EXECUTE on the functions the pooled reads fail; the direct ones, prepared statements,
    do not."""
    alice, bob = marketplace.alice, marketplace.bob

    def users_reads(engine: Engine) -> object:
        return (
            cart.user_cart(engine, alice.clerk_user_id),
            cart.user_cart(engine, bob.clerk_user_id),
            downloads.user_downloads(engine, alice.clerk_user_id, limit=1),
            downloads.user_downloads(engine, bob.clerk_user_id),
        )

    assert users_reads(pooled_app) == users_reads(app)
    pooled_url = pooled_app_url(pgbouncer, app_password, marketplace.database) + "?pgbouncer=true"

    async def users_reads_async() -> object:
        engine = create_async_app_engine(pooled_url, Settings(db_pool_size=1, db_max_overflow=0))
        try:
            return (
                await cart.user_cart_async(engine, alice.clerk_user_id),
                await cart.user_cart_async(engine, bob.clerk_user_id),
                await downloads.user_downloads_async(engine, alice.clerk_user_id, limit=1),
                await downloads.user_downloads_async(engine, bob.clerk_user_id),
            )
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            async_reads = pool.submit(asyncio.run, users_reads_async()).result()
        except OperationalError as error:
            # Once in a full run the first connection waited for PgBouncer's one server
            # connection until query_wait_timeout; what held it is in PgBouncer's log.
            raise AssertionError(f"PgBouncer's log:\n{pgbouncer.log()[-4000:]}") from error
    assert async_reads == users_reads(app)
    functions = ", ".join(
        f"{read.name}({', '.join(sql_type for _, sql_type in read.arguments)})"
        for read in (reads.USER_CART, reads.USER_DOWNLOADS)
    )
    with psycopg.connect(libpq_url(marketplace.owner_url), autocommit=True) as owner:
        owner.execute(f"REVOKE EXECUTE ON FUNCTION {functions} FROM PUBLIC")
        try:
            users_reads(app)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                cart.user_cart(pooled_app, alice.clerk_user_id)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                downloads.user_downloads(pooled_app, alice.clerk_user_id)
            with (
                ThreadPoolExecutor(max_workers=1) as pool,
                pytest.raises(psycopg.errors.InsufficientPrivilege),
            ):
                pool.submit(asyncio.run, users_reads_async()).result()
        finally:
            owner.execute(f"GRANT EXECUTE ON FUNCTION {functions} TO PUBLIC")


def test_the_functions_return_the_statements_rows(marketplace: Marketplace) -> None:
    """As the owner (no policy), for every user: the functions the services call behind a
    pooler, and the statements they send elsewhere."""
    with psycopg.connect(libpq_url(marketplace.owner_url), autocommit=True) as owner:
        for user in (marketplace.alice, marketplace.bob):
            by_id = {"user_id": user.id, "limit": 50}
            by_clerk_id = {"clerk_user_id": user.clerk_user_id, "limit": 50}
            for function, statement in (
                (reads.CART.call(by_id), (cart.CART_SQL, by_id)),
                (reads.DOWNLOADS.call(by_id), (downloads.DOWNLOADS_SQL, by_id)),
                (reads.USER_CART.call(by_clerk_id), (cart.CART_SQL, by_id)),
                (reads.USER_DOWNLOADS.call(by_clerk_id), (downloads.DOWNLOADS_SQL, by_id)),
            ):
                expected = owner.execute(*statement).fetchall()
                assert expected, statement[0]
                assert owner.execute(*function).fetchall() == expected, function[0]


@pytest.mark.parametrize("login", ["app_url", "owner_url"])
def test_the_user_functions_look_the_user_up_once(marketplace: Marketplace, login: str) -> None:
    """As the application role the functions leave the user's rows to its policy (revision
    0013), whose lookup the query repeated; on the owner's login, which no policy limits, the
    query's own lookup finds them. Index scans of user_profiles, counted in the transaction."""
    alice = marketplace.alice
    parameters = {"clerk_user_id": alice.clerk_user_id, "limit": 50}
    scans_sql = "SELECT idx_scan FROM pg_stat_xact_user_tables WHERE relname = 'user_profiles'"
    for function, expected in (
        (reads.USER_CART, [marketplace.variant_ids[0]]),
        (reads.USER_DOWNLOADS, alice.rows["downloads"]),
    ):
        with psycopg.connect(libpq_url(getattr(marketplace, login))) as connection:
            rows = connection.execute(*function.call(parameters)).fetchall()
            scans = connection.execute(scans_sql).fetchone()
        assert [row[0] for row in rows] == expected, function.name
        assert scans == (1,), (function.name, scans)


def test_async_user_reads(marketplace: Marketplace) -> None:
    async def scenario() -> tuple[cart.Cart, list[downloads.DownloadRecord], cart.Cart]:
        engine = create_async_app_engine(marketplace.app_url, Settings(db_pool_size=1))
        try:
            own_cart = await cart.user_cart_async(engine, marketplace.alice.clerk_user_id)
            async with AsyncSession(engine) as session, session.begin():
                records = await downloads.user_downloads_async(
                    session, marketplace.alice.clerk_user_id
                )
                others = await cart.cart_contents_async(session, marketplace.bob.id)
            return own_cart, records, others
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(max_workers=1) as pool:
        own_cart, records, others = pool.submit(asyncio.run, scenario()).result()
    assert [line.variant_id for line in own_cart.lines] == [marketplace.variant_ids[0]]
    assert [record.id for record in records] == marketplace.alice.rows["downloads"]
    assert others.lines == []  # Alice's context, still set in the transaction, hides Bob's cart
