"""The product page and the catalog import, against their raw baselines.

1. The seed's product query (product by handle with available variants by price) through
   `afilo_db.services.catalog.product_by_handle` in a `unit_of_work`, against the same statement
   with raw psycopg (prepared, same connection settings), on a catalog of 100,000 products:
   median and p99 per request (one transaction each), and their ratio; then the query alone
   inside an already open transaction on both sides. For context, the same page through the ORM with
   selectinload (the way DESIGN.md's figures were measured).
2. `catalog import` of a JSON Lines file against raw COPY of the same rows into the same tables,
   as a throughput ratio (raw time / import time: 1.0 means as fast as COPY).

Run: `python -m bench.catalog [--products N]`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import tempfile
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from afilo_db.data import seed
from afilo_db.data.catalog_import import import_catalog, validate_file
from afilo_db.db.engine import PREPARE_THRESHOLD, create_app_engine
from afilo_db.models import Product
from afilo_db.services.catalog import PRODUCT_BY_HANDLE_SQL, product_by_handle
from afilo_db.services.transaction import unit_of_work
from bench.common import fresh_database, latencies, report, scratch_server, summary, timed


def product_page(url: str, products: int, repeat: int) -> dict[str, Any]:
    handles = [seed.product_plan(seed.DEMO_SEED, i).row[1] for i in range(products)]
    picks = random.Random(1).choices(handles, k=1000)
    engine = create_app_engine(url)
    timeout = engine.dialect.create_connect_args(engine.url)[1].get("options")
    raw = psycopg.connect(url, prepare_threshold=PREPARE_THRESHOLD, options=timeout or "")

    raw_handles = itertools.cycle(picks)

    def raw_call() -> None:
        raw.execute(PRODUCT_BY_HANDLE_SQL, (next(raw_handles),), prepare=True).fetchone()
        raw.commit()

    service_handles = itertools.cycle(picks)

    def service_call() -> None:
        with unit_of_work(engine) as session:
            product_by_handle(session, next(service_handles))

    orm_handles = itertools.cycle(picks)

    def orm_call() -> None:
        with Session(engine) as session:
            product = session.execute(
                select(Product)
                .options(selectinload(Product.variants))
                .where(Product.handle == next(orm_handles))
            ).scalar_one()
            sorted((v for v in product.variants if v.available_for_sale), key=lambda v: v.price)

    # Interleave rounds so that drift on a shared machine hits both sides alike.
    raw_samples: list[float] = []
    service_samples: list[float] = []
    rounds = 5
    for _ in range(rounds):
        raw_samples += latencies(raw_call, repeat // rounds)
        service_samples += latencies(service_call, repeat // rounds)
    orm_samples = latencies(orm_call, repeat // 5)

    # The query alone, inside a transaction that is already open on both sides (a request that
    # reads several things): what the service function adds to the statement itself.
    open_session = Session(engine)
    in_transaction_raw = latencies(
        lambda: raw.execute(PRODUCT_BY_HANDLE_SQL, (next(raw_handles),), prepare=True).fetchone(),
        repeat,
    )
    in_transaction_service = latencies(
        lambda: product_by_handle(open_session, next(service_handles)), repeat
    )
    open_session.close()
    raw.rollback()
    raw.close()
    engine.dispose()
    raw_stats, service_stats, orm_stats = (
        summary(raw_samples),
        summary(service_samples),
        summary(orm_samples),
    )
    return {
        "calls": repeat,
        "raw_psycopg": raw_stats,
        "service": service_stats,
        "orm_selectinload": orm_stats,
        "service_vs_raw_median": round(service_stats["median_ms"] / raw_stats["median_ms"], 3),
        "service_vs_raw_p99": round(service_stats["p99_ms"] / raw_stats["p99_ms"], 3),
        "orm_selectinload_vs_raw_median": round(orm_stats["median_ms"] / raw_stats["median_ms"], 3),
        "in_open_transaction": {
            "raw_psycopg": summary(in_transaction_raw),
            "service": summary(in_transaction_service),
            "service_vs_raw_median": round(
                summary(in_transaction_service)["median_ms"]
                / summary(in_transaction_raw)["median_ms"],
                3,
            ),
        },
    }


def catalog_import(server_url_for: Any, products: int) -> dict[str, Any]:
    plans = [seed.product_plan(11, index) for index in range(products)]
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "catalog.jsonl"
        with path.open("w") as handle:
            for plan in plans:
                handle.write(json.dumps(seed.product_record(plan)) + "\n")

        raw_url = server_url_for("bench_raw_copy")
        with psycopg.connect(raw_url) as connection:

            def raw_copy() -> None:
                cursor = connection.cursor()
                for table, columns, rows in (
                    ("products", seed.PRODUCT_COLUMNS, (plan.row for plan in plans)),
                    ("product_variants", seed.VARIANT_COLUMNS,
                     (v.row for plan in plans for v in plan.variants)),
                    ("product_pricing_tiers", seed.TIER_COLUMNS,
                     (t for plan in plans for v in plan.variants for t in v.tiers)),
                ):  # fmt: skip
                    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                connection.commit()

            raw_seconds = timed(raw_copy)

        validation_seconds = timed(lambda: validate_file(path))

        import_url = server_url_for("bench_import")
        with psycopg.connect(import_url) as connection:

            def run_import() -> None:
                import_catalog(connection, path)
                connection.commit()

            import_seconds = timed(run_import)
    return {
        "products": products,
        "raw_copy_seconds": round(raw_seconds, 3),
        "import_seconds": round(import_seconds, 3),
        "of_which_validation_seconds": round(validation_seconds, 3),
        "import_throughput_vs_raw_copy": round(raw_seconds / import_seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=5_000)
    arguments = parser.parse_args()
    with scratch_server("catalog") as server:
        template = "bench_template"
        fresh_database(server, template)
        url = fresh_database(server, "bench_catalog", template="bench_template")
        with psycopg.connect(url) as connection:
            seed_seconds = timed(lambda: seed.seed(connection, products=arguments.products))
            connection.commit()
            connection.execute("ANALYZE")
        figures: dict[str, Any] = {
            "seed": {"products": arguments.products, "seconds": round(seed_seconds, 2)},
            "product_page": product_page(url, arguments.products, arguments.calls),
            "catalog_import": catalog_import(
                lambda name: fresh_database(server, name, template=template), arguments.products
            ),
        }
    report("catalog", figures)


if __name__ == "__main__":
    main()
