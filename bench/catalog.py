"""The catalog import against raw COPY.

`catalog import` of a JSON Lines file against raw COPY of the same rows into the same tables,
as a throughput ratio (raw time / import time: 1.0 means as fast as COPY). The product page and
the other hot reads are measured, in every form an application calls them, by bench/hot_paths.py.

Run: `python -m bench.catalog [--products N]`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import psycopg

from afilo_db.data import seed
from afilo_db.data.catalog_import import import_catalog, validate_file
from bench.common import fresh_database, report, scratch_server, timed


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
            "catalog_import": catalog_import(
                lambda name: fresh_database(server, name, template=template), arguments.products
            ),
        }
    report("catalog", figures)


if __name__ == "__main__":
    main()
