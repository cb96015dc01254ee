"""Hot reads as applications call them: one round trip, statements prepared once per connection
and kept whatever the caller does with the transaction, and the same paths on asyncio."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from afilo_db.config import Settings
from afilo_db.db import hot
from afilo_db.db.engine import create_app_engine, create_async_app_engine
from afilo_db.errors import NotFoundError, ValidationError
from afilo_db.models import ProductCollection, ProductCollectionProduct, UserProfile
from afilo_db.security import as_user
from afilo_db.services import cart, catalog, downloads
from afilo_db.services.transaction import unit_of_work
from tests.conftest import run_coroutine
from tests.services.test_catalog import product_data, sent_messages

T = TypeVar("T")
PREPARED_SQL = "SELECT statement FROM pg_prepared_statements"


@pytest.fixture
def one_connection(database_url: str) -> Iterator[Engine]:
    """The application's engine with a pool of one connection: every call reuses it."""
    engine = create_app_engine(database_url, Settings(db_pool_size=1, db_max_overflow=0))
    yield engine
    engine.dispose()


@pytest.fixture
def shop(one_connection: Engine) -> dict[str, Any]:
    with unit_of_work(one_connection) as session:
        product = catalog.create_product(session, product_data())
        data = product_data("euro-kit")
        for variant in data["variants"]:
            variant["currency"] = "EUR"
        euro = catalog.create_product(session, data)
        user = UserProfile(clerk_user_id="user_hotbuyer01", email="hot@example.com")
        session.add(user)
        session.flush()
        cart.add_to_cart(session, user.id, product.variants[2].id, 10)  # 10 x 9.00 USD
        cart.add_to_cart(session, user.id, euro.variants[0].id)  # 29.00 EUR
        cart.add_to_cart(session, user.id, product.variants[0].id)  # 29.00 USD
        return {"user": user.id, "clerk_user_id": user.clerk_user_id}


def prepared(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.exec_driver_sql(PREPARED_SQL).scalars())


def sent_on(driver: psycopg.Connection[Any], call: Callable[[], T]) -> tuple[T, list[str]]:
    """What `call` returned and the protocol messages it sent on `driver`."""
    with sent_messages(driver.pgconn) as sent:
        result = call()
    return result, sent


def sent_during(engine: Engine, call: Callable[[], T]) -> tuple[T, list[str]]:
    """What `call` returned and the protocol messages it sent on the pool's one connection."""
    borrowed = engine.raw_connection()
    driver = borrowed.driver_connection
    borrowed.close()
    assert isinstance(driver, psycopg.Connection)
    return sent_on(driver, call)


def page_in_session(engine: Engine) -> catalog.ProductPage | None:
    with Session(engine) as session:  # closed without commit, as most request handlers do
        return catalog.product_by_handle(session, "nova-kit")


def test_session_closed_without_commit_keeps_its_statement_prepared(
    one_connection: Engine, shop: dict[str, Any]
) -> None:
    for _ in range(50):
        assert page_in_session(one_connection) is not None
    product_statements = [sql for sql in prepared(one_connection) if "FROM products p" in sql]
    assert len(product_statements) == 1

    # Warm: one Bind/Execute of the prepared statement, one Sync; no Parse, no BEGIN/ROLLBACK.
    page, sent = sent_during(one_connection, lambda: page_in_session(one_connection))
    assert page is not None and page["handle"] == "nova-kit"
    assert sent == ["Bind", "Describe", "Execute", "Sync"], sent


def test_a_rolled_back_transaction_keeps_prepared_statements(
    one_connection: Engine, shop: dict[str, Any]
) -> None:
    def cart_as_user() -> cart.Cart:
        with Session(one_connection) as session:
            as_user(session, shop["clerk_user_id"])
            return cart.cart_contents(session, shop["user"])  # then ROLLBACK at close

    for _ in range(50):
        cart_as_user()
    assert [sql for sql in prepared(one_connection) if "FROM cart_items c" in sql]
    contents, sent = sent_during(one_connection, cart_as_user)
    assert len(contents.lines) == 3
    assert "Parse" not in sent[sent.index("Query") :], sent  # the cart's statement is reused


def test_unit_of_work_reads_in_one_round_trip(one_connection: Engine, shop: dict[str, Any]) -> None:
    def page() -> catalog.ProductPage | None:
        with unit_of_work(one_connection) as session:
            return catalog.product_by_handle(session, "nova-kit")

    page()
    found, sent = sent_during(one_connection, page)
    assert found is not None
    assert sent.count("Sync") == 1 and "Query" not in sent, sent


def test_a_read_in_an_open_transaction_sees_its_writes(one_connection: Engine) -> None:
    with Session(one_connection) as session:
        catalog.create_product(session, product_data("pending-kit"))
        found = catalog.product_by_handle(session, "pending-kit")
        assert found is not None and len(found["variants"]) == 3
        session.rollback()
        assert catalog.product_by_handle(session, "pending-kit") is None


def test_product_page_is_typed_with_exact_prices(
    one_connection: Engine, shop: dict[str, Any]
) -> None:
    with unit_of_work(one_connection) as session:
        variant_id = catalog.create_product(session, product_data("exact-kit")).variants[0].id
        catalog.update_variant(session, variant_id, {"price": "0.10"})
    page = catalog.product_by_handle(one_connection, "exact-kit")
    assert page is not None
    assert isinstance(page["id"], uuid.UUID)
    prices = {variant["sku"]: variant["price"] for variant in page["variants"]}
    assert prices["EXACT-KIT-PER"] == Decimal("0.10")
    assert all(type(price) is Decimal for price in prices.values())
    assert str(prices["EXACT-KIT-TEAM"]) == "79.00"


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kathmandu", "America/St_Johns"])
def test_pages_are_typed_in_any_session_time_zone(
    database_url: str, one_connection: Engine, zone: str
) -> None:
    """The documents carry times in the session's zone (+05:45, -03:30): the same instants."""
    with unit_of_work(one_connection) as session:
        product = catalog.create_product(session, product_data("zoned-kit"))
        collection = ProductCollection(handle="zoned", title="Zoned")
        session.add(collection)
        session.flush()
        session.add(ProductCollectionProduct(collection=collection, product=product, position=7))
        created_at, collection_id = product.created_at, collection.id
    with psycopg.connect(database_url, options=f"-c TimeZone={zone}") as connection:
        page = catalog.product_by_handle(connection, "zoned-kit")
        listed = catalog.collection_by_handle(connection, "zoned", limit=1)
    assert page is not None and page["created_at"] == created_at
    assert page["created_at"].utcoffset() is not None
    assert listed["id"] == collection_id
    assert listed["products"] == [
        {"id": product.id, "handle": "zoned-kit", "title": product.title, "position": 7}
    ]
    assert listed["next_cursor"] is None


def test_cart_totals_are_per_currency(one_connection: Engine, shop: dict[str, Any]) -> None:
    contents = cart.cart_contents(one_connection, shop["user"])
    assert contents.totals == {"USD": Decimal("119.00"), "EUR": Decimal("29.00")}
    assert cart.cart_contents(one_connection, uuid.uuid4()).totals == {}


def test_listing_and_collection_through_the_engine(
    one_connection: Engine, shop: dict[str, Any]
) -> None:
    page = catalog.list_products(one_connection, {"max_price": "20.00", "tags": ["saas"]})
    assert [item.handle for item in page.items] == ["euro-kit", "nova-kit"]  # newest first
    assert page.items[1].from_price == Decimal("10.00")
    with pytest.raises(ValidationError) as caught:
        catalog.list_products(one_connection, limit=0)
    assert set(caught.value.problems) == {"limit"}
    with pytest.raises(NotFoundError):
        catalog.collection_by_handle(one_connection, "no-such-collection")


def test_a_pooled_engine_sends_the_statement_timeout_with_the_read(database_url: str) -> None:
    engine = create_app_engine(database_url + "?pgbouncer=true", Settings(db_pool_size=1))
    try:
        rows = hot.fetch(engine, hot.Read("SELECT current_setting('statement_timeout')", ()))
        assert rows == [("15s",)]

        # Nothing is prepared behind such a pooler: the timeout and the read go in one pipeline,
        # unnamed statements with their values apart, ended by one Sync and nothing after it
        # (afilo_db.db.pipeline), also when the read fails.
        def read() -> list[hot.Row]:
            return hot.fetch(engine, hot.Read("SELECT %s::text || %s::text", ("it's", 1)))

        rows, sent = sent_during(engine, read)
        assert rows == [("it's1",)], rows
        assert sent.count("Parse") == 2 and sent.count("Sync") == 1 and "Query" not in sent, sent
        assert sent[-1] == "Sync", sent

        def failing_read() -> None:
            with pytest.raises(psycopg.errors.DivisionByZero):
                hot.fetch(engine, hot.Read("SELECT 1 / %s", (0,)))

        _, sent = sent_during(engine, failing_read)
        assert sent.count("Sync") == 1 and sent[-1] == "Sync", sent
        with engine.connect() as connection:  # it ended with the read's implicit transaction
            connection.commit()
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "15s"
        direct = hot.fetch(engine, hot.Read("SELECT count(*) FROM pg_prepared_statements", ()))
        assert direct == [(0,)]
    finally:
        engine.dispose()


@pytest.mark.parametrize("pooled", [False, True])
def test_a_reads_values_never_show_in_pg_stat_activity(database_url: str, pooled: bool) -> None:
    """Issue 33: a user's id or search term bound into the SQL's text would show to anyone who
    reads pg_stat_activity or the server's log; behind a pooler too, values travel apart."""
    url = database_url + ("?pgbouncer=true" if pooled else "")
    engine = create_app_engine(url, Settings(db_pool_size=1))
    seen = "SELECT query, %s::text FROM pg_stat_activity WHERE pid = pg_backend_pid()"
    try:
        for read in (
            hot.Read(seen, ("user_secret_term",)),
            hot.Read(seen, ("user_secret_term",), before=[("SELECT %s::text", ("user_before",))]),
        ):
            ((query, value),) = hot.fetch(engine, read)
            assert value == "user_secret_term"
            assert "user_secret_term" not in query and "user_before" not in query, query
            assert "$1" in query, query
    finally:
        engine.dispose()


def test_behind_a_pooler_every_hot_read_reads_what_it_reads_directly(
    database_url: str, one_connection: Engine, shop: dict[str, Any]
) -> None:
    """Values bound on the client (one query of the simple protocol) and on the server (prepared)
    give the same rows: ids, prices, arrays, cursors, NULLs."""
    pooled = create_app_engine(database_url + "?pgbouncer=true", Settings(db_pool_size=1))
    user, clerk_user_id = shop["user"], shop["clerk_user_id"]
    try:
        for source in (one_connection, pooled):
            first = catalog.list_products(source, {"tags": ["saas"], "max_price": "50"}, limit=1)
            assert first.next_cursor is not None
        reads: list[Callable[[Engine], object]] = [
            lambda source: catalog.product_by_handle(source, "nova-kit"),
            lambda source: catalog.product_by_handle(source, "no-such-kit"),
            lambda source: catalog.list_products(source, {"tags": ["saas"], "max_price": "50"}),
            lambda source: catalog.list_products(source, {"tags": []}, limit=1),
            lambda source: catalog.list_products(source, after=first.next_cursor),
            lambda source: cart.cart_contents(source, user),
            lambda source: downloads.downloads(source, user),
        ]
        for read in reads:
            assert read(pooled) == read(one_connection)
        # As the owner both see every row; the user's own reads filter by the user themselves.
        assert cart.user_cart(pooled, clerk_user_id) == cart.user_cart(
            one_connection, clerk_user_id
        )
    finally:
        pooled.dispose()


def test_async_forms_on_psycopgs_async_connection(database_url: str, shop: dict[str, Any]) -> None:
    async def scenario() -> tuple[Any, ...]:
        engine: AsyncEngine = create_async_app_engine(
            database_url, Settings(db_pool_size=1, db_max_overflow=0)
        )
        try:
            from_engine = await catalog.product_by_handle_async(engine, "nova-kit")
            for _ in range(20):
                async with AsyncSession(engine) as session:  # closed without commit
                    await catalog.product_by_handle_async(session, "nova-kit")
                    contents = await cart.cart_contents_async(session, shop["user"])
            listing = await catalog.list_products_async(engine, {"tags": ["saas"]}, limit=1)
            async with engine.connect() as connection:
                driver = (await connection.get_raw_connection()).driver_connection
                statements = (await connection.exec_driver_sql(PREPARED_SQL)).scalars().all()
            return from_engine, contents, listing, driver, statements
        finally:
            await engine.dispose()

    page, contents, listing, driver, statements = run_coroutine(scenario())
    assert page is not None and page["variants"][0]["price"] == Decimal("10.00")
    assert contents.totals == {"USD": Decimal("119.00"), "EUR": Decimal("29.00")}
    assert len(listing.items) == 1 and listing.next_cursor is not None
    assert isinstance(driver, psycopg.AsyncConnection)
    assert any("FROM products p" in sql for sql in statements), statements
    assert any("FROM cart_items c" in sql for sql in statements), statements


def test_a_pooler_that_keeps_prepared_statements_gets_them(database_url: str) -> None:
    settings = Settings(db_pool_size=1, db_pooler_prepared_statements=True)
    engine = create_app_engine(database_url + "?pgbouncer=true", settings)
    try:
        hot.fetch(engine, hot.Read("SELECT 1", ()))
        rows = hot.fetch(engine, hot.Read("SELECT count(*) FROM pg_prepared_statements", ()))
        assert rows[0][0] >= 1
    finally:
        engine.dispose()


def test_a_connection_lost_during_a_read_is_not_handed_out_again(
    one_connection: Engine, database_url: str
) -> None:
    (pid,) = hot.fetch(one_connection, hot.Read("SELECT pg_backend_pid()", ()))[0]
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(psycopg.OperationalError):
        hot.fetch(one_connection, hot.Read("SELECT pg_backend_pid()", ()))
    (new_pid,) = hot.fetch(one_connection, hot.Read("SELECT pg_backend_pid()", ()))[0]
    assert new_pid != pid
    assert catalog.product_by_handle(one_connection, "no-such-handle") is None


def test_a_read_stopped_by_the_statement_timeout_keeps_its_connection(database_url: str) -> None:
    """A query cancelled by the server leaves the connection usable: it is not discarded (a
    reconnect for every timed-out read, under load)."""
    settings = Settings(db_pool_size=1, db_max_overflow=0, db_statement_timeout_ms=50)
    engine = create_app_engine(database_url, settings)
    async_engine = create_async_app_engine(database_url, settings)

    async def on_asyncio() -> tuple[int, int]:
        try:
            (before,) = (
                await hot.fetch_async(async_engine, hot.Read("SELECT pg_backend_pid()", ()))
            )[0]
            with pytest.raises(psycopg.errors.QueryCanceled):
                await hot.fetch_async(async_engine, hot.Read("SELECT pg_sleep(1)", ()))
            (after,) = (
                await hot.fetch_async(async_engine, hot.Read("SELECT pg_backend_pid()", ()))
            )[0]
            return before, after
        finally:
            await async_engine.dispose()

    try:
        (before,) = hot.fetch(engine, hot.Read("SELECT pg_backend_pid()", ()))[0]
        with pytest.raises(psycopg.errors.QueryCanceled):
            hot.fetch(engine, hot.Read("SELECT pg_sleep(1)", ()))
        (after,) = hot.fetch(engine, hot.Read("SELECT pg_backend_pid()", ()))[0]
    finally:
        engine.dispose()
    assert after == before
    async_before, async_after = run_coroutine(on_asyncio())
    assert async_after == async_before


def test_on_a_psycopg_connection_a_read_is_one_round_trip_and_leaves_nothing_open(
    database_url: str, shop: dict[str, Any]
) -> None:
    with psycopg.connect(database_url) as connection:  # not autocommit, as psycopg opens them
        for _ in range(3):
            page = catalog.product_by_handle(connection, "nova-kit")
        assert page is not None and isinstance(page["id"], uuid.UUID)
        assert connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert not connection.autocommit
        with sent_messages(connection.pgconn) as sent:
            catalog.product_by_handle(connection, "nova-kit")
        assert sent == ["Bind", "Describe", "Execute", "Sync"]

        contents = cart.user_cart(connection, shop["clerk_user_id"])
        assert contents.totals == {"USD": Decimal("119.00"), "EUR": Decimal("29.00")}
        context = connection.execute("SELECT current_setting('afilo.clerk_user_id', true)")
        assert context.fetchone() in {(None,), ("",)}  # the user's context ended with the read
        connection.rollback()

        # In the connection's open transaction, the read runs there and sees its writes.
        connection.execute("UPDATE products SET title = 'Renamed' WHERE handle = 'nova-kit'")
        renamed = catalog.product_by_handle(connection, "nova-kit")
        assert renamed is not None and renamed["title"] == "Renamed"
        connection.rollback()
        page = catalog.product_by_handle(connection, "nova-kit")
        assert page is not None and page["title"] != "Renamed"


def test_on_psycopg_pools_sync_and_async(database_url: str, shop: dict[str, Any]) -> None:
    with ConnectionPool(database_url, min_size=1, max_size=1) as pool:
        for _ in range(3):
            page = catalog.product_by_handle(pool, "nova-kit")
        assert page is not None and page["variants"][0]["price"] == Decimal("10.00")
        assert cart.user_cart(pool, shop["clerk_user_id"]).totals["USD"] == Decimal("119.00")
        with pool.connection() as connection:
            statements = [row[0] for row in connection.execute(PREPARED_SQL)]
        assert any("FROM products p" in sql for sql in statements), statements

    async def scenario() -> tuple[Any, ...]:
        async with AsyncConnectionPool(database_url, min_size=1, max_size=1) as pool:
            page = await catalog.product_by_handle_async(pool, "nova-kit")
            contents = await cart.user_cart_async(pool, shop["clerk_user_id"])
            async with pool.connection() as connection:
                listing = await catalog.list_products_async(connection, {"tags": ["saas"]})
                status = connection.info.transaction_status
            return page, contents, listing, status

    page, contents, listing, status = run_coroutine(scenario())
    assert page is not None and page["handle"] == "nova-kit"
    assert contents.totals == {"USD": Decimal("119.00"), "EUR": Decimal("29.00")}
    assert [item.handle for item in listing.items] == ["euro-kit", "nova-kit"]
    assert status == psycopg.pq.TransactionStatus.IDLE
