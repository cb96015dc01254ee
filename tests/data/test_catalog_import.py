"""`catalog import`: validate everything first, name every bad line, write all or nothing."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from afilo_db.data import seed
from afilo_db.data.catalog_import import import_catalog
from afilo_db.data.up import table_counts
from afilo_db.errors import ConflictError, ValidationError


def records(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        seed.product_record(seed.product_plan(7, index)) for index in range(start, start + count)
    ]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def catalog_counts(url: str) -> tuple[int, int, int]:
    with psycopg.connect(url) as connection:
        counts = table_counts(connection)
    return counts["products"], counts["product_variants"], counts["product_pricing_tiers"]


@pytest.fixture(scope="module")
def ten_thousand() -> list[dict[str, Any]]:
    return records(10_000)


def test_one_bad_line_in_ten_thousand_writes_nothing(
    database_url: str, tmp_path: Path, ten_thousand: list[dict[str, Any]]
) -> None:
    rows = [dict(row) for row in ten_thousand]
    rows[4999] = {**rows[4999], "variants": [{**rows[4999]["variants"][0], "price": "-1"}]}
    path = write_jsonl(tmp_path / "catalog.jsonl", rows)
    with psycopg.connect(database_url) as connection, pytest.raises(ValidationError) as caught:
        import_catalog(connection, path)
    assert list(caught.value.problems) == ["line 5000"]
    assert "variants[0].price" in caught.value.problems["line 5000"]
    assert catalog_counts(database_url) == (0, 0, 0)


def test_the_command_names_the_line_and_exits_non_zero(
    database_url: str, tmp_path: Path, ten_thousand: list[dict[str, Any]]
) -> None:
    rows = list(ten_thousand)
    rows[1233] = {**rows[1233], "handle": "Bad Handle"}
    path = write_jsonl(tmp_path / "catalog.jsonl", rows)
    result = subprocess.run(
        [sys.executable, "-m", "afilo_db", "catalog", "import", str(path)],
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "line 1234: handle: must be a lowercase URL-safe slug" in result.stderr
    assert "nothing was written" in result.stderr
    assert catalog_counts(database_url) == (0, 0, 0)


def test_skip_invalid_writes_the_good_rows(database_url: str, tmp_path: Path) -> None:
    rows = records(50)
    rows[9] = {**rows[9], "title": ""}
    rows.insert(20, {"not": "a product"})
    path = write_jsonl(tmp_path / "catalog.jsonl", rows)
    path.write_text(path.read_text() + "{broken json\n")
    with psycopg.connect(database_url) as connection:
        report = import_catalog(connection, path, skip_invalid=True)
    assert [item.line for item in report.skipped] == [10, 21, 52]
    assert "json" in report.skipped[2].problems
    assert catalog_counts(database_url)[0] == 49


def test_import_upserts_by_handle_and_sku(database_url: str, tmp_path: Path) -> None:
    rows = records(30)
    path = write_jsonl(tmp_path / "catalog.jsonl", rows)
    with psycopg.connect(database_url) as connection:
        import_catalog(connection, path)
    first = catalog_counts(database_url)

    rows[0] = {**rows[0], "title": "Renamed"}
    rows[0]["variants"][0] = {**rows[0]["variants"][0], "price": "1.50"}
    write_jsonl(path, rows)
    with psycopg.connect(database_url) as connection:
        report = import_catalog(connection, path)
        title, price = connection.execute(
            "SELECT p.title, v.price FROM products p JOIN product_variants v ON v.product_id = p.id"
            " WHERE v.sku = %s",
            (rows[0]["variants"][0]["sku"],),
        ).fetchone() or (None, None)
    assert (report.products, report.variants) == (30, first[1])
    assert catalog_counts(database_url) == first
    assert (title, str(price)) == ("Renamed", "1.50")


def test_duplicates_inside_the_file_are_named(database_url: str, tmp_path: Path) -> None:
    rows = records(5)
    rows.append({**rows[1], "title": "Again"})
    path = write_jsonl(tmp_path / "catalog.jsonl", rows)
    with psycopg.connect(database_url) as connection, pytest.raises(ValidationError) as caught:
        import_catalog(connection, path)
    assert "is also on line 2" in caught.value.problems["line 6"]


def test_a_database_conflict_writes_nothing(database_url: str, tmp_path: Path) -> None:
    existing = records(1, start=100)
    with psycopg.connect(database_url) as connection:
        import_catalog(connection, write_jsonl(tmp_path / "a.jsonl", existing))
    before = catalog_counts(database_url)
    rows = records(20)
    # Valid on its own, but the Stripe price id belongs to a variant already in the database.
    rows[19]["variants"][0]["stripe_price_id"] = existing[0]["variants"][0]["stripe_price_id"]
    with psycopg.connect(database_url) as connection, pytest.raises(ConflictError) as caught:
        import_catalog(connection, write_jsonl(tmp_path / "b.jsonl", rows))
    assert "uq_product_variants_stripe_price_id" in str(caught.value)
    assert catalog_counts(database_url) == before


def test_csv(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    columns = ["handle", "title", "tags", "status", "sku", "variant_title", "license_type",
               "price", "seats", "tiers"]  # fmt: skip
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerow(["orbit-kit", "Orbit kit", "saas|starter", "active", "ORBIT-PER",
                         "Personal", "personal", "19.00", "", ""])  # fmt: skip
        writer.writerow(["orbit-kit", "Orbit kit", "saas|starter", "active", "ORBIT-BIZ",
                         "Business", "business", "9.00", "1", "1-9:9.00|10-:8.00"])  # fmt: skip
        writer.writerow(["orbit-kit", "Orbit kit v2", "saas", "active", "ORBIT-TEAM",
                         "Team", "team", "40.00", "5", ""])  # fmt: skip
    with psycopg.connect(database_url) as connection, pytest.raises(ValidationError) as caught:
        import_catalog(connection, path)
    assert "title" in caught.value.problems["line 4"]

    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3]) + "\n")
    with psycopg.connect(database_url) as connection:
        report = import_catalog(connection, path)
    assert (report.products, report.variants, report.tiers) == (1, 2, 2)
