"""The seed's product query on a 2,000-product catalog: found through the handle index. The
same query on catalogs of every size the project promises is `bench/hot_paths.py`'s."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from afilo_db.data import seed
from afilo_db.db.urls import sqlalchemy_url
from afilo_db.knowledge.embedders import get_embedder
from afilo_db.services.catalog import PRODUCT_BY_HANDLE_SQL, product_by_handle
from tests.conftest import vectors_shared_by_the_run

# Large enough that a sequential scan of any of the query's tables would cost the planner more
# than its index; the product read is one in the catalog's second half.
CATALOG_SIZE = 2_000
PRODUCT_INDEX = 1_321


@pytest.fixture(scope="module")
def catalog_url(server: object, template_database: str) -> Iterator[str]:
    from tests.conftest import create_database, drop_database

    name = "catalog_product_query"
    drop_database(server, name)  # type: ignore[arg-type]
    url = create_database(server, name, template=template_database)  # type: ignore[arg-type]
    with vectors_shared_by_the_run(get_embedder()), psycopg.connect(url) as connection:
        seed.seed(connection, products=CATALOG_SIZE)
        connection.commit()
        connection.execute("ANALYZE")
    yield url
    drop_database(server, name)  # type: ignore[arg-type]


def test_product_query_uses_the_handle_index(catalog_url: str) -> None:
    handle = seed.product_plan(seed.DEMO_SEED, PRODUCT_INDEX).row[1]
    with psycopg.connect(catalog_url) as connection:
        row = connection.execute(
            "EXPLAIN (FORMAT JSON) " + PRODUCT_BY_HANDLE_SQL, (handle,)
        ).fetchone()
    assert row is not None
    plan = json.dumps(row[0])
    assert '"Index Name": "uq_products_handle"' in plan
    assert '"Index Name": "ix_product_variants_product_id_price"' in plan
    assert '"Seq Scan"' not in plan


def test_product_query_returns_available_variants_cheapest_first(catalog_url: str) -> None:
    plan = seed.product_plan(seed.DEMO_SEED, PRODUCT_INDEX)
    engine = create_engine(sqlalchemy_url(catalog_url), poolclass=NullPool)
    with Session(engine) as session:
        product = product_by_handle(session, plan.row[1])
        missing = product_by_handle(session, "no-such-handle")
    engine.dispose()
    assert missing is None
    assert product is not None
    assert product["id"] == plan.id
    expected = sorted(
        (variant.price, str(variant.column("id")))
        for variant in plan.variants
        if variant.column("available_for_sale")
    )
    prices = [(variant["price"], str(variant["id"])) for variant in product["variants"]]
    assert prices == expected
    # Exact decimals, digits as stored: never a float on the way.
    assert all(type(price) is Decimal and price.as_tuple().exponent == -2 for price, _ in prices)
