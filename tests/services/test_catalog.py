"""Catalog services against a real database: one-statement reads, all-or-nothing writes."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from afilo_db.data import seed
from afilo_db.errors import ConflictError, NotFoundError, ValidationError
from afilo_db.models import Product, ProductPricingTier, ProductVariant
from afilo_db.services import catalog
from afilo_db.services.transaction import unit_of_work

BUSINESS_TIERS = [
    {"min_quantity": 1, "max_quantity": 9, "unit_price": "10.00"},
    {"min_quantity": 10, "max_quantity": 49, "unit_price": "9.00"},
    {"min_quantity": 50, "unit_price": "8.00"},
]


def product_data(handle: str = "nova-kit", **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "handle": handle,
        "title": "Nova kit",
        "status": "active",
        "tags": ["saas", "billing"],
        "tech_stack": ["python"],
        "variants": [
            {"sku": f"{handle.upper()}-PER", "title": "Personal", "license_type": "personal",
             "price": "29.00"},
            {"sku": f"{handle.upper()}-TEAM", "title": "Team", "license_type": "team",
             "price": "79.00", "seats": 5},
            {"sku": f"{handle.upper()}-BIZ", "title": "Business", "license_type": "business",
             "price": "10.00", "seats": 1, "tiers": BUSINESS_TIERS},
        ],
    }  # fmt: skip
    data.update(overrides)
    return data


def count(engine: Engine, model: type[Any]) -> int:
    with Session(engine) as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def test_create_product_with_variants_and_tiers(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        product = catalog.create_product(session, product_data())
        product_id = product.id
    with unit_of_work(engine) as session:
        found = catalog.product_by_handle(session, "nova-kit")
    assert found is not None
    assert found["id"] == product_id
    assert [v["sku"] for v in found["variants"]] == [
        "NOVA-KIT-BIZ",
        "NOVA-KIT-PER",
        "NOVA-KIT-TEAM",
    ]
    assert count(engine, ProductPricingTier) == 3


def test_a_failed_multi_row_write_leaves_the_database_unchanged(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        catalog.create_product(session, product_data("first-kit"))
    before = (
        count(engine, Product),
        count(engine, ProductVariant),
        count(engine, ProductPricingTier),
    )

    # The third variant reuses a SKU of another product: valid on its own, refused by the
    # database's unique constraint after the product and two variants were sent.
    data = product_data("second-kit")
    data["variants"][2]["sku"] = "FIRST-KIT-BIZ"
    with (
        pytest.raises(ConflictError, match="uq_product_variants_sku"),
        unit_of_work(engine) as session,
    ):
        catalog.create_product(session, data)

    after = (
        count(engine, Product),
        count(engine, ProductVariant),
        count(engine, ProductPricingTier),
    )
    assert after == before


def test_an_invalid_third_variant_writes_nothing(engine: Engine) -> None:
    data = product_data()
    data["variants"][2]["price"] = "-1"
    with pytest.raises(ValidationError) as caught, unit_of_work(engine) as session:
        catalog.create_product(session, data)
    assert list(caught.value.problems) == ["variants[2].price"]
    assert count(engine, Product) == 0


def frontend_messages(trace: str) -> list[str]:
    """The names of the messages the client sent (Parse, Bind, Execute, Sync...), from a libpq
    protocol trace."""
    return [line.split("\t")[2].strip() for line in trace.splitlines() if line.startswith("F\t")]


@contextmanager
def sent_messages(pgconn: psycopg.pq.abc.PGconn) -> Iterator[list[str]]:
    """The names of the messages the client sends in the block, in the list (filled at its
    end), from libpq's trace of the connection `pgconn`."""
    sent: list[str] = []
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            yield sent
        finally:
            pgconn.untrace()
            trace.seek(0)
            sent.extend(frontend_messages(trace.read()))


def test_product_query_is_exactly_one_statement(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        catalog.create_product(session, product_data())
    with unit_of_work(engine) as session:
        session.execute(text("SELECT 1"))  # the transaction is open: BEGIN is behind us
        catalog.product_by_handle(session, "nova-kit")  # prepared on this connection once
        driver = session.connection().connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        with sent_messages(driver.pgconn) as sent:
            product = catalog.product_by_handle(session, "nova-kit")
    assert product is not None and len(product["variants"]) == 3
    # On the wire: the prepared statement (Bind/Describe/Execute), one Sync: one round trip.
    assert sent == ["Bind", "Describe", "Execute", "Sync"], sent


def test_unavailable_variants_are_left_out(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        product = catalog.create_product(session, product_data())
        catalog.update_variant(session, product.variants[0].id, {"available_for_sale": False})
    with unit_of_work(engine) as session:
        found = catalog.product_by_handle(session, "nova-kit")
    assert found is not None
    assert "NOVA-KIT-PER" not in [v["sku"] for v in found["variants"]]


def test_listing_filters_and_keyset_pages(engine: Engine, database_url: str) -> None:
    with psycopg.connect(database_url) as connection:
        seed.seed(connection, products=120)
    with unit_of_work(engine) as session:
        seen: list[uuid.UUID] = []
        page = catalog.list_products(session, {"status": None}, limit=50)
        while True:
            seen.extend(item.id for item in page.items)
            if page.next_cursor is None:
                break
            page = catalog.list_products(
                session, {"status": None}, limit=50, after=page.next_cursor
            )
        assert len(seen) == len(set(seen)) == 120

        saas = catalog.list_products(session, {"tags": ["saas"]}, limit=200).items
        assert saas and all("saas" in item.tags and item.status == "active" for item in saas)

        enterprise = catalog.list_products(session, {"license_type": "enterprise"}, limit=200)
        expected = {
            plan.id for plan in (seed.product_plan(seed.DEMO_SEED, i) for i in range(120))
            if plan.status == "active"
            and any(v.column("license_type") == "enterprise" and v.column("available_for_sale") for v in plan.variants)
        }  # fmt: skip
        assert {item.id for item in enterprise.items} == expected

        cheap = catalog.list_products(session, {"max_price": "20.00"}, limit=200).items
        assert cheap and all(
            item.from_price is not None and item.from_price <= 20 for item in cheap
        )

        in_collection = catalog.list_products(session, {"collection": "staff-picks"}, limit=200)
        # Page by page, three products at a time, to the end.
        pages = [catalog.collection_by_handle(session, "staff-picks", limit=3)]
        while (cursor := pages[-1]["next_cursor"]) is not None:
            pages.append(
                catalog.collection_by_handle(session, "staff-picks", limit=3, after=cursor)
            )
        products = [product for page in pages for product in page["products"]]
        assert len(pages) > 2 and all(len(page["products"]) == 3 for page in pages[:-1])
        assert [item.handle for item in in_collection.items] and {
            item.handle for item in in_collection.items
        } == {product["handle"] for product in products}
        positions = [product["position"] for product in products]
        assert positions == sorted(set(positions))
        whole = catalog.collection_by_handle(session, "staff-picks", limit=200)
        assert whole["products"] == products and whole["next_cursor"] is None

    with pytest.raises(ValidationError, match="after"), unit_of_work(engine) as session:
        catalog.list_products(session, after="garbage")
    with pytest.raises(NotFoundError), unit_of_work(engine) as session:
        catalog.collection_by_handle(session, "nope")
    with pytest.raises(ValidationError, match="after"), unit_of_work(engine) as session:
        catalog.collection_by_handle(session, "staff-picks", after="garbage")
    with pytest.raises(ValidationError, match="limit"), unit_of_work(engine) as session:
        catalog.collection_by_handle(session, "staff-picks", limit=201)


def test_price_quote_uses_the_tier_covering_the_quantity(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        product = catalog.create_product(session, product_data())
        business = product.variants[2].id
        personal = product.variants[0].id
    with unit_of_work(engine) as session:
        assert catalog.quote_price(session, business, 1).total == Decimal("10.00")
        quote = catalog.quote_price(session, business, 10)
        assert (quote.unit_price, quote.total, quote.tier) == (
            Decimal("9.00"),
            Decimal("90.00"),
            (10, 49),
        )
        assert catalog.quote_price(session, business, 500).tier == (50, None)
        assert catalog.quote_price(session, personal, 1).total == Decimal("29.00")
        with pytest.raises(ValidationError, match="one at a time"):
            catalog.quote_price(session, personal, 2)
        with pytest.raises(NotFoundError):
            catalog.quote_price(session, uuid.uuid4(), 1)
        with pytest.raises(ValidationError, match="UUID"):
            catalog.quote_price(session, "not-a-uuid", 1)


def test_update_checks_the_merged_licence(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        product = catalog.create_product(session, product_data())
        team = product.variants[1].id
    with (
        pytest.raises(ValidationError, match="from 2 to 25 seats"),
        unit_of_work(engine) as session,
    ):
        catalog.update_variant(session, team, {"seats": 30})
    with unit_of_work(engine) as session:
        assert catalog.update_variant(session, team, {"seats": 25, "price": "99.00"}).seats == 25
        catalog.update_product(session, product.id, {"title": "Nova kit 2", "tags": ["new"]})
    with unit_of_work(engine) as session:
        found = catalog.product_by_handle(session, "nova-kit")
    assert found is not None and found["title"] == "Nova kit 2" and found["tags"] == ["new"]


def test_replace_tiers(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        product = catalog.create_product(session, product_data())
        business = product.variants[2].id
    with unit_of_work(engine) as session:
        catalog.replace_tiers(
            session,
            business,
            [{"min_quantity": 1, "max_quantity": 4, "unit_price": "12.00"},
             {"min_quantity": 5, "unit_price": "11.00"}],
        )  # fmt: skip
    with unit_of_work(engine) as session:
        assert catalog.quote_price(session, business, 5).unit_price == Decimal("11.00")
    with pytest.raises(ValidationError, match="nothing covers"), unit_of_work(engine) as session:
        catalog.replace_tiers(session, business, [{"min_quantity": 2, "unit_price": "1.00"}])
