"""`catalog import`: validate everything first, name every bad line, write all or nothing."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from afilo_db.data import catalog_import, seed
from afilo_db.data.catalog_import import ImportReport, import_catalog
from afilo_db.data.up import table_counts
from afilo_db.errors import ConflictError, ValidationError
from tests.cli.invoke import as_a_process, in_process


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


def import_skipping_invalid(url: str, path: Path, handle: str) -> tuple[ImportReport, object]:
    """`import_catalog(skip_invalid=True)`, then the title of the product with `handle`."""
    with psycopg.connect(url) as connection:
        report = import_catalog(connection, path, skip_invalid=True)
        title = connection.execute("SELECT title FROM products WHERE handle = %s", (handle,))
        return report, title.fetchone()


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
    # One run as a process of its own, as an operator starts it; the others in this process.
    result = as_a_process({"DATABASE_URL": database_url}, "catalog", "import", str(path))
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
    # Only the changed rows are written.
    assert (report.products, report.variants) == (1, 1)
    assert catalog_counts(database_url) == first
    assert (title, str(price)) == ("Renamed", "1.50")


def test_duplicates_inside_the_file_are_named(database_url: str, tmp_path: Path) -> None:
    rows = records(5)
    rows.append({**rows[1], "title": "Again"})
    path = write_jsonl(tmp_path / "catalog.jsonl", rows)
    with psycopg.connect(database_url) as connection, pytest.raises(ValidationError) as caught:
        import_catalog(connection, path)
    assert "is also on line 2" in caught.value.problems["line 6"]


def test_keys_repeated_in_a_later_batch_are_named_and_not_written(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_import, "BATCH_LINES", 4)
    rows = records(10)
    rows[6] = {
        **rows[6],
        "variants": [{**rows[6]["variants"][0], "sku": rows[2]["variants"][0]["sku"]}],
    }
    rows[9] = {**rows[1], "title": "Again"}
    path = write_jsonl(tmp_path / "catalog.jsonl", rows)
    report, title = import_skipping_invalid(database_url, path, rows[1]["handle"])
    assert [item.line for item in report.skipped] == [7, 10]
    assert report.skipped[0].problems == {
        "variants[0].sku": f"{rows[2]['variants'][0]['sku']} is also on line 3"
    }
    assert "is also on line 2" in report.skipped[1].problems["handle"]
    assert report.products == 8
    assert title == (records(2)[1]["title"],)


def test_a_first_import_skips_a_repeated_line_and_writes_the_others_whole(
    database_url: str, tmp_path: Path
) -> None:
    rows = records(6)
    rows[4] = {**rows[2], "title": "Again"}
    path = write_jsonl(tmp_path / "catalog.jsonl", rows)
    report, title = import_skipping_invalid(database_url, path, rows[2]["handle"])
    assert [item.line for item in report.skipped] == [5]
    assert title == (records(3)[2]["title"],)
    kept = [row for index, row in enumerate(rows) if index != 4]
    variants = sum(len(row["variants"]) for row in kept)
    tiers = sum(len(variant.get("tiers", ())) for row in kept for variant in row["variants"])
    assert (report.products, report.variants, report.tiers) == (5, variants, tiers)
    assert catalog_counts(database_url) == (5, variants, tiers)


def test_a_refused_import_leaves_nothing_even_when_the_caller_commits(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small batches, so that the batches before the bad line have been written when it is read.
    monkeypatch.setattr(catalog_import, "BATCH_LINES", 5)
    rows = records(20)
    rows[16] = {**rows[16], "title": ""}
    path = write_jsonl(tmp_path / "catalog.jsonl", rows)
    with psycopg.connect(database_url) as connection:
        with pytest.raises(ValidationError) as caught:
            import_catalog(connection, path)
        connection.commit()
    assert list(caught.value.problems) == ["line 17"]
    assert catalog_counts(database_url) == (0, 0, 0)


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


def test_a_rule_the_database_checks_last_refuses_the_import_whole(
    database_url: str, tmp_path: Path
) -> None:
    """Every variant of an active product moved to another one: the product is left with none
    for sale, which only the catalog's deferred rule sees. The import is refused, not the
    caller's commit, and nothing of it is written."""
    rows = [{**row, "status": "active"} for row in records(2)]
    with psycopg.connect(database_url) as connection:
        import_catalog(connection, write_jsonl(tmp_path / "a.jsonl", rows))
    before = catalog_counts(database_url)
    moved = {**rows[1], "variants": rows[1]["variants"] + rows[0]["variants"]}
    with psycopg.connect(database_url) as connection:
        with pytest.raises((ValidationError, ConflictError)) as caught:
            import_catalog(connection, write_jsonl(tmp_path / "b.jsonl", [moved]))
        connection.commit()
    assert "variants" in str(caught.value)
    assert catalog_counts(database_url) == before


def test_the_catalogs_rules_are_deferred_again_after_an_import(
    database_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(database_url) as connection:
        import_catalog(connection, write_jsonl(tmp_path / "a.jsonl", records(3)))
        # An active product and then its variant, in the same transaction: fine while the rule
        # waits for the commit.
        product = connection.execute(
            "INSERT INTO products (handle, title, status) VALUES ('later-kit', 'Later', 'active')"
            " RETURNING id"
        ).fetchone()
        assert product is not None
        connection.execute(
            "INSERT INTO product_variants (product_id, sku, title, license_type, price, seats)"
            " VALUES (%s, 'LATER-PER', 'Personal', 'personal', 10, 1)",
            (product[0],),
        )
        connection.commit()
    assert catalog_counts(database_url)[0] == 4


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


# -- the bad-line corpus: every kind refused by line and field, by the API and by the command --

CSV_HEADER = ["handle", "title", "description", "tags", "sku", "variant_title", "license_type",
              "price", "seats", "stripe_price_id", "tiers"]  # fmt: skip


def csv_row(index: int, **changes: str) -> list[str]:
    row = {"handle": f"kit-{index}", "title": f"Kit {index}", "description": "", "tags": "a|b",
           "sku": f"KIT-{index}", "variant_title": "Personal", "license_type": "personal",
           "price": "19.00", "seats": "", "stripe_price_id": "", "tiers": ""}  # fmt: skip
    return list({**row, **changes}.values())


def csv_bytes(rows: list[list[str]], header: list[str] | None = CSV_HEADER) -> bytes:
    lines = ([header] if header is not None else []) + rows
    return "".join(",".join(cells) + "\n" for cells in lines).encode()


def jsonl_bytes(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def with_variant(row: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**row, "variants": [{**row["variants"][0], **changes}, *row["variants"][1:]]}


def bad_file(kind: str) -> tuple[str, bytes, int, str]:
    """(suffix, content, the bad line, the field named): three good products and one bad one."""
    good = records(3, start=200)
    if kind == "repeated stripe product id":
        bad = {**records(1, start=300)[0], "stripe_product_id": good[0]["stripe_product_id"]}
        return ".jsonl", jsonl_bytes([*good, bad]), 4, "stripe_product_id"
    if kind == "repeated stripe price id":
        price_id = good[1]["variants"][0]["stripe_price_id"]
        bad = with_variant(records(1, start=300)[0], stripe_price_id=price_id)
        return ".jsonl", jsonl_bytes([*good, bad]), 4, "variants[0].stripe_price_id"
    if kind == "repeated stripe price id within a line":
        product = records(1, start=300)[0]
        first = product["variants"][0]
        second = {**first, "sku": first["sku"] + "-2"}
        return (
            ".jsonl",
            jsonl_bytes([*good, {**product, "variants": [first, second]}]),
            4,
            ("variants[1].stripe_price_id"),
        )
    if kind == "repeated sku":
        bad = with_variant(records(1, start=300)[0], sku=good[2]["variants"][0]["sku"])
        return ".jsonl", jsonl_bytes([*good, bad]), 4, "variants[0].sku"
    if kind == "repeated handle":
        bad = {**records(1, start=300)[0], "handle": good[0]["handle"]}
        return ".jsonl", jsonl_bytes([*good, bad]), 4, "handle"
    if kind == "NUL in a JSON text field":
        bad = {**records(1, start=300)[0], "description": "before\u0000after"}
        return ".jsonl", jsonl_bytes([*good, bad]), 4, "description"
    if kind == "NUL in a variant title":
        bad = with_variant(records(1, start=300)[0], title="Per\u0000sonal")
        return ".jsonl", jsonl_bytes([*good, bad]), 4, "variants[0].title"
    if kind == "invalid UTF-8 in JSON Lines":
        line = jsonl_bytes(records(1, start=300)).replace(b'"title": "', b'"title": "\xff\xfe', 1)
        return ".jsonl", jsonl_bytes(good) + line, 4, "encoding"
    if kind == "JSON nested thousands deep":
        line = b'{"handle": ' + b"[" * 5000 + b"]" * 5000 + b"}\n"
        return ".jsonl", jsonl_bytes(good) + line, 4, "nested too deeply"
    if kind == "broken JSON":
        return ".jsonl", jsonl_bytes(good) + b'{"handle": "kit"\n', 4, "json"
    if kind == "JSON that is not an object":
        return ".jsonl", jsonl_bytes(good) + b"[1, 2]\n", 4, "json"
    if kind == "a JSON price as a float with too many decimals":
        text = json.dumps(with_variant(records(1, start=300)[0], price="__price__"))
        line = text.replace('"__price__"', "19.999").encode() + b"\n"
        return ".jsonl", jsonl_bytes(good) + line, 4, "variants[0].price"
    if kind == "an unpaired surrogate escape in a title":
        line = jsonl_bytes(records(1, start=300)).replace(
            b'"title": "', b'"title": "Kit \\ud800 ', 1
        )
        return ".jsonl", jsonl_bytes(good) + line, 4, "title: must not contain an unpaired"
    if kind == "an unpaired low surrogate escape in a variant title":
        bad = with_variant(records(1, start=300)[0], title="__title__")
        line = json.dumps(bad).replace("__title__", "Solo \\udc00").encode() + b"\n"
        return ".jsonl", jsonl_bytes(good) + line, 4, "variants[0].title: must not contain"
    if kind == "a bidirectional override in a JSON description":
        bad = {**records(1, start=300)[0], "description": "Pay \u202etxet desrever\u202c now"}
        return ".jsonl", jsonl_bytes([*good, bad]), 4, "description: must not contain"
    rows = [csv_row(index) for index in range(3)]
    if kind == "a bidirectional isolate in a CSV description":
        isolated = csv_row(3, description="Read \u2067this\u2069 first")
        return ".csv", csv_bytes([*rows, isolated]), 5, "description: must not contain"
    if kind == "NUL in a CSV cell":
        return ".csv", csv_bytes([*rows, csv_row(3, description="a\x00b")]), 5, "description"
    if kind == "invalid UTF-8 in a CSV cell":
        content = csv_bytes([*rows, csv_row(3, title="Kit TITLE")])
        return ".csv", content.replace(b"Kit TITLE", b"Kit \xc3\x28"), 5, "title"
    if kind == "a CSV row with the wrong number of cells":
        return ".csv", csv_bytes([*rows, csv_row(3)[:-2]]), 5, "row"
    if kind == "a repeated handle in CSV, not adjacent":
        return ".csv", csv_bytes([*rows, csv_row(0, sku="KIT-0-B")]), 5, "handle"
    if kind == "a CSV product column that differs within a product":
        return ".csv", csv_bytes([*rows, csv_row(2, sku="KIT-2-B", title="Other")]), 5, "title"
    raise AssertionError(kind)


BAD_LINE_KINDS = [
    "repeated stripe product id",
    "repeated stripe price id",
    "repeated stripe price id within a line",
    "repeated sku",
    "repeated handle",
    "NUL in a JSON text field",
    "NUL in a variant title",
    "invalid UTF-8 in JSON Lines",
    "JSON nested thousands deep",
    "broken JSON",
    "JSON that is not an object",
    "a JSON price as a float with too many decimals",
    "NUL in a CSV cell",
    "invalid UTF-8 in a CSV cell",
    "a CSV row with the wrong number of cells",
    "a repeated handle in CSV, not adjacent",
    "a CSV product column that differs within a product",
    "an unpaired surrogate escape in a title",
    "an unpaired low surrogate escape in a variant title",
    "a bidirectional override in a JSON description",
    "a bidirectional isolate in a CSV description",
]


def run_cli(*arguments: str, database_url: str) -> subprocess.CompletedProcess[str]:
    """`afilo-db catalog import` in this process (tests/cli/invoke.py)."""
    return in_process({"DATABASE_URL": database_url}, "catalog", "import", *arguments)


@pytest.mark.parametrize("kind", BAD_LINE_KINDS)
def test_a_bad_line_is_refused_by_line_and_field(
    kind: str, database_url: str, tmp_path: Path
) -> None:
    suffix, content, line, field_name = bad_file(kind)
    path = tmp_path / f"catalog{suffix}"
    path.write_bytes(content)
    with psycopg.connect(database_url) as connection, pytest.raises(ValidationError) as caught:
        import_catalog(connection, path)
    assert list(caught.value.problems) == [f"line {line}"]
    assert field_name in caught.value.problems[f"line {line}"]
    assert catalog_counts(database_url) == (0, 0, 0)


# The command only words what the import raises: a kind of each format is enough for it.
CLI_KINDS = [
    "repeated sku",
    "invalid UTF-8 in JSON Lines",
    "invalid UTF-8 in a CSV cell",
    "an unpaired surrogate escape in a title",
]


@pytest.mark.parametrize("kind", CLI_KINDS)
def test_the_command_refuses_a_bad_line_by_line_and_field(
    kind: str, database_url: str, tmp_path: Path
) -> None:
    suffix, content, line, field_name = bad_file(kind)
    path = tmp_path / f"catalog{suffix}"
    path.write_bytes(content)
    result = run_cli(str(path), database_url=database_url)
    assert result.returncode == 2, result.stderr
    assert f"line {line}: " in result.stderr and field_name in result.stderr
    assert "nothing was written" in result.stderr
    assert "Traceback" not in result.stderr
    assert catalog_counts(database_url) == (0, 0, 0)


@pytest.mark.parametrize("kind", BAD_LINE_KINDS)
def test_skip_invalid_writes_the_good_lines_whatever_the_bad_one(
    kind: str, database_url: str, tmp_path: Path
) -> None:
    suffix, content, line, _field = bad_file(kind)
    path = tmp_path / f"catalog{suffix}"
    path.write_bytes(content)
    with psycopg.connect(database_url) as connection:
        report = import_catalog(connection, path, skip_invalid=True)
    assert [item.line for item in report.skipped] == [line]
    assert catalog_counts(database_url)[0] == 3


@pytest.mark.parametrize("kind", CLI_KINDS)
def test_the_command_skips_a_bad_line_and_says_which_in_json(
    kind: str, database_url: str, tmp_path: Path
) -> None:
    suffix, content, line, _field = bad_file(kind)
    path = tmp_path / f"catalog{suffix}"
    path.write_bytes(content)
    result = run_cli(str(path), "--skip-invalid", "--json", database_url=database_url)
    assert result.returncode == 0, result.stderr
    assert [item["line"] for item in json.loads(result.stdout)["skipped"]] == [line]


def test_skip_invalid_fails_when_no_valid_line_remains(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "catalog.jsonl"
    path.write_bytes(b'{"handle": "a"}\n[1]\n')
    with psycopg.connect(database_url) as connection, pytest.raises(ValidationError) as caught:
        import_catalog(connection, path, skip_invalid=True)
    assert set(caught.value.problems) == {"line 1", "line 2", "file"}

    result = run_cli(str(path), "--skip-invalid", database_url=database_url)
    assert result.returncode == 2
    assert "holds no valid product" in result.stderr

    path.write_bytes(b"")
    assert run_cli(str(path), "--skip-invalid", database_url=database_url).returncode == 2


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (["handle", "title", "sku", "variant_title", "license_type", "prise"],
         "column 'prise' is not a known column (did you mean 'price'?)"),
        ([*CSV_HEADER, "colour"], "column 'colour' is not a known column"),
        ([*CSV_HEADER, "price"], "column 'price' appears 2 times"),
        (["handle", "title", "sku", "variant_title", "price"], "column 'license_type' is missing"),
        (None, "no header row"),
    ],
)  # fmt: skip
def test_a_csv_header_that_does_not_name_known_columns_is_refused(
    header: list[str] | None, expected: str, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "catalog.csv"
    rows = [csv_row(index) for index in range(2)]
    if header is not None:
        rows = [row[: len(header)] + [""] * (len(header) - len(row)) for row in rows]
    path.write_bytes(csv_bytes(rows, header))
    for skip_invalid in (False, True):
        with psycopg.connect(database_url) as connection, pytest.raises(ValidationError) as caught:
            import_catalog(connection, path, skip_invalid=skip_invalid)
        assert expected in caught.value.problems["line 1"]
    result = run_cli(str(path), "--skip-invalid", database_url=database_url)
    assert result.returncode == 2 and expected in result.stderr
    assert catalog_counts(database_url) == (0, 0, 0)


def test_a_line_too_long_is_refused_without_reading_it_whole(
    database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "catalog.jsonl"
    huge = {**records(1, start=300)[0], "description": "x" * (5 << 20)}
    path.write_bytes(jsonl_bytes([*records(2), huge, *records(1, start=400)]))
    with psycopg.connect(database_url) as connection:
        report = import_catalog(connection, path, skip_invalid=True)
    assert [(item.line, list(item.problems)) for item in report.skipped] == [(3, ["line"])]
    assert catalog_counts(database_url)[0] == 3


def test_json_prices_may_be_numbers_read_exactly(database_url: str, tmp_path: Path) -> None:
    product = with_variant(records(1)[0], price="__price__")
    path = tmp_path / "catalog.jsonl"
    path.write_text(json.dumps(product).replace('"__price__"', "19.90") + "\n")
    with psycopg.connect(database_url) as connection:
        import_catalog(connection, path)
        row = connection.execute("SELECT price FROM product_variants WHERE sku = %s",
                                 (product["variants"][0]["sku"],)).fetchone()  # fmt: skip
    assert row is not None and str(row[0]) == "19.90"


# -- re-imports ------------------------------------------------------------------------------


def catalog_state(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return [
            *connection.execute("SELECT id, handle, updated_at FROM products ORDER BY id"),
            *connection.execute("SELECT id, sku, updated_at FROM product_variants ORDER BY id"),
            *connection.execute(
                "SELECT id, variant_id, created_at FROM product_pricing_tiers ORDER BY id"
            ),
        ]


def test_reimporting_an_unchanged_file_changes_nothing(database_url: str, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "catalog.jsonl", records(40))
    with psycopg.connect(database_url) as connection:
        import_catalog(connection, path)
    before = catalog_state(database_url)
    assert any(row for row in before)
    with psycopg.connect(database_url) as connection:
        report = import_catalog(connection, path)
    assert (report.products, report.variants, report.tiers) == (0, 0, 0)
    assert catalog_state(database_url) == before


def test_a_changed_tier_is_the_only_tier_rewritten(database_url: str, tmp_path: Path) -> None:
    rows = records(40)
    index, tiered = next(
        (index, row) for index, row in enumerate(rows) if row["variants"][-1]["tiers"]
    )
    path = write_jsonl(tmp_path / "catalog.jsonl", rows)
    with psycopg.connect(database_url) as connection:
        import_catalog(connection, path)
    before = set(catalog_state(database_url))
    tiers = [dict(tier) for tier in tiered["variants"][-1]["tiers"]]
    tiers[-1]["unit_price"] = "0.50"
    rows[index] = {**tiered, "variants": [*tiered["variants"][:-1],
                                          {**tiered["variants"][-1], "tiers": tiers}]}  # fmt: skip
    write_jsonl(path, rows)
    with psycopg.connect(database_url) as connection:
        report = import_catalog(connection, path)
    after = set(catalog_state(database_url))
    assert (report.products, report.variants, report.tiers) == (0, 0, 1)
    assert len(before - after) == len(after - before) == 1


def test_a_line_replaces_the_product_missing_fields_take_their_defaults(
    database_url: str, tmp_path: Path
) -> None:
    product = {**records(1)[0], "description": "Long text", "tags": ["a", "b"],
               "status": "active"}  # fmt: skip
    path = write_jsonl(tmp_path / "catalog.jsonl", [product])
    with psycopg.connect(database_url) as connection:
        import_catalog(connection, path)
    shorter = {key: product[key] for key in ("handle", "title", "variants")}
    write_jsonl(path, [shorter])
    with psycopg.connect(database_url) as connection:
        report = import_catalog(connection, path)
        row = connection.execute(
            "SELECT description, tags, status FROM products WHERE handle = %s", (product["handle"],)
        ).fetchone()
    assert report.products == 1
    assert row == ("", [], "draft")


def test_concurrent_imports_in_opposite_orders_both_succeed(
    database_url: str, tmp_path: Path
) -> None:
    rows = records(200)
    with psycopg.connect(database_url) as connection:
        import_catalog(connection, write_jsonl(tmp_path / "first.jsonl", rows))
    changed = [{**row, "title": row["title"] + " v2"} for row in rows]
    forward = write_jsonl(tmp_path / "forward.jsonl", changed)
    backward = write_jsonl(tmp_path / "backward.jsonl", changed[::-1])
    outcomes: dict[str, object] = {}

    def run(path: Path) -> None:
        try:
            with psycopg.connect(database_url) as connection:
                outcomes[path.name] = import_catalog(connection, path, workers=0)
        except Exception as error:  # the outcome is what the test looks at
            outcomes[path.name] = error

    # A third session holds the product in the middle of the file, so that both imports are
    # inside their upserts at once when it lets go: in file order, each would hold half.
    with (
        psycopg.connect(database_url) as blocker,
        psycopg.connect(database_url, autocommit=True) as watcher,
    ):
        blocker.execute("SELECT FROM products WHERE handle = %s FOR UPDATE", (rows[100]["handle"],))
        threads = [threading.Thread(target=run, args=(path,)) for path in (forward, backward)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            ).fetchone()
            if row is not None and row[0] >= 2:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the imports never reached their upserts")
    for thread in threads:
        thread.join(timeout=60)
    assert all(isinstance(outcome, ImportReport) for outcome in outcomes.values()), outcomes
    assert len(outcomes) == 2
    with psycopg.connect(database_url) as connection:
        titles = connection.execute("SELECT count(*) FROM products WHERE title LIKE '%% v2'")
        assert titles.fetchone() == (200,)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_large_file_is_validated_by_worker_processes(
    database_url: str, tmp_path: Path, workers: int, ten_thousand: list[dict[str, Any]]
) -> None:
    rows = ten_thousand[:3000]  # records(3000), built once for the module
    rows[2500] = {**rows[2500], "handle": "Bad Handle"}
    path = write_jsonl(tmp_path / "catalog.jsonl", rows)
    with psycopg.connect(database_url) as connection:
        report = import_catalog(connection, path, skip_invalid=True, workers=workers)
    assert [item.line for item in report.skipped] == [2501]
    assert report.products == 2999
    assert report.workers == workers


def test_workers_leave_a_core_to_a_server_on_this_machine(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = write_jsonl(tmp_path / "small.jsonl", records(3))
    large = tmp_path / "large.jsonl"
    with large.open("wb") as handle:
        handle.truncate(catalog_import.PARALLEL_FROM_BYTES)
    with psycopg.connect(database_url) as connection:
        assert catalog_import.server_is_local(connection)
    assert catalog_import.worker_count(small, server_is_local=True) == 0
    for cores, local, remote in ((1, 1, 1), (2, 1, 2), (4, 3, 4), (16, 4, 4)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid, n=cores: set(range(n)))
        assert catalog_import.worker_count(large, server_is_local=True) == local, cores
        assert catalog_import.worker_count(large, server_is_local=False) == remote, cores


def test_a_bad_line_with_json_output_exits_2_and_lists_it(
    database_url: str, tmp_path: Path
) -> None:
    suffix, content, line, field_name = bad_file("repeated sku")
    path = tmp_path / f"catalog{suffix}"
    path.write_bytes(content)
    result = run_cli(str(path), "--json", database_url=database_url)
    assert result.returncode == 2, result.stderr
    answer = json.loads(result.stdout)
    assert answer["written"] is False
    assert field_name in answer["problems"][f"line {line}"]
    assert catalog_counts(database_url) == (0, 0, 0)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_byte_order_mark_at_the_start_is_ignored(
    suffix: str, database_url: str, tmp_path: Path
) -> None:
    """RFC 8259 lets a parser ignore it, and spreadsheets write one before CSV: it is read as
    nothing, and only at the very start of the file."""
    content = (
        jsonl_bytes(records(2, start=400))
        if suffix == ".jsonl"
        else csv_bytes([csv_row(index) for index in range(2)])
    )
    path = tmp_path / f"catalog{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + content)
    with psycopg.connect(database_url) as connection:
        report = import_catalog(connection, path)
    assert (report.lines, report.products) == (2, 2)


@pytest.mark.parametrize(
    ("suffix", "content"),
    [
        (".jsonl", b""),
        (".jsonl", b"\n  \n"),
        (".csv", b""),
        (".csv", ",".join(CSV_HEADER).encode()),
    ],
    ids=["empty JSON Lines", "blank lines", "empty CSV", "a CSV header alone"],
)
def test_an_empty_file_is_refused_as_empty(
    suffix: str, content: bytes, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / f"catalog{suffix}"
    path.write_bytes(content)
    with psycopg.connect(database_url) as connection, pytest.raises(ValidationError) as caught:
        import_catalog(connection, path)
    assert caught.value.problems == {"file": catalog_import.EMPTY_FILE_RULE}


def test_the_command_refuses_an_empty_file_in_one_line(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "catalog.jsonl"
    path.write_bytes(b"")
    result = run_cli(str(path), database_url=database_url)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: file: {catalog_import.EMPTY_FILE_RULE}"]
