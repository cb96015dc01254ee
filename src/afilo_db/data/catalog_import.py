"""`afilo-db catalog import`: upsert products (by handle) and variants (by sku) from a file.

Every row is validated before anything is written; with any bad row nothing is written, unless
`skip_invalid`, which writes the good rows and reports the others. Rows are written with COPY
into temporary staging tables and then upserted set-wise, three statements in all, so a large
file costs about what COPY costs.

Formats, by extension:
- `.jsonl` / `.ndjson`: one product per line, shaped like ProductInput (variants nested, tiers
  nested in variants). JSON numbers are read as exact decimals, never floats.
- `.csv`: one variant per row, product columns repeated on each of its rows; `tags` and
  `tech_stack` separated by `|`; `tiers` as `1-9:10.00|10-49:9.00|50-:8.00`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pydantic

from afilo_db.errors import AfiloError, ValidationError
from afilo_db.validation import problems_of
from afilo_db.validation.database_errors import translate
from afilo_db.validation.schemas import ProductInput

ProgressCallback = Callable[[int], None]

PRODUCT_FIELDS = ("handle", "title", "description", "tags", "tech_stack", "status",
                  "stripe_product_id", "included_in_tier")  # fmt: skip
VARIANT_FIELDS = ("sku", "title", "license_type", "price", "currency", "stripe_price_id",
                  "available_for_sale", "seats", "duration_days", "redistribution")  # fmt: skip
CSV_VARIANT_COLUMNS = {"variant_title": "title"}


@dataclass(frozen=True)
class LineProblem:
    line: int
    problems: dict[str, str]

    def describe(self) -> str:
        return "; ".join(f"{path}: {rule}" for path, rule in self.problems.items())


@dataclass
class ImportReport:
    lines: int = 0
    products: int = 0
    variants: int = 0
    tiers: int = 0
    skipped: list[LineProblem] = field(default_factory=list)


# -- reading -------------------------------------------------------------------------------


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | LineProblem]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line, parse_float=Decimal)
            except json.JSONDecodeError as error:
                yield number, LineProblem(number, {"json": f"is not valid JSON: {error.msg}"})
                continue
            if not isinstance(record, dict):
                yield number, LineProblem(number, {"json": "must be an object (one product)"})
                continue
            yield number, record


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split("|") if part.strip()]


def _csv_tiers(value: str) -> list[dict[str, str | None]]:
    tiers: list[dict[str, str | None]] = []
    for part in _split(value):
        bounds, _, price = part.partition(":")
        low, _, high = bounds.partition("-")
        tiers.append({"min_quantity": low, "max_quantity": high or None, "unit_price": price})
    return tiers


def _csv_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | LineProblem]]:
    """Rows grouped into products by handle; a product's line is its first row's line."""
    products: dict[str, tuple[int, dict[str, Any]]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            number = reader.line_num
            handle_value = (row.get("handle") or "").strip()
            product = {key: row[key] for key in PRODUCT_FIELDS if row.get(key) not in (None, "")}
            for key in ("tags", "tech_stack"):
                if key in product:
                    product[key] = _split(product[key])
            variant = {
                CSV_VARIANT_COLUMNS.get(key, key): row[key]
                for key in (*VARIANT_FIELDS, "variant_title")
                if key != "title" and row.get(key) not in (None, "")
            }
            if row.get("tiers"):
                variant["tiers"] = _csv_tiers(row["tiers"])
            if handle_value not in products:
                products[handle_value] = (number, {**product, "variants": []})
            first_line, existing = products[handle_value]
            for key, value in product.items():
                if existing.get(key) != value:
                    yield (
                        number,
                        LineProblem(
                            number, {key: f"differs from line {first_line} for the same handle"}
                        ),
                    )
                    break
            else:
                existing["variants"].append(variant)
    yield from products.values()


def read_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | LineProblem]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _jsonl_records(path)
    if suffix == ".csv":
        return _csv_records(path)
    raise ValidationError({"file": "must end in .jsonl, .ndjson or .csv"})


def validate_file(
    path: Path, progress: ProgressCallback = lambda _lines: None
) -> tuple[list[tuple[int, ProductInput]], list[LineProblem]]:
    """Every record checked; products in file order, and every problem with its line."""
    good: list[tuple[int, ProductInput]] = []
    bad: list[LineProblem] = []
    handles: dict[str, int] = {}
    skus: dict[str, int] = {}
    for number, record in read_records(path):
        progress(1)
        if isinstance(record, LineProblem):
            bad.append(record)
            continue
        try:
            product = ProductInput.model_validate(record)
        except pydantic.ValidationError as error:
            bad.append(LineProblem(number, problems_of(error)))
            continue
        clashes = {}
        if product.handle in handles:
            clashes["handle"] = f"{product.handle} is also on line {handles[product.handle]}"
        for index, variant in enumerate(product.variants):
            if variant.sku in skus:
                clashes[f"variants[{index}].sku"] = (
                    f"{variant.sku} is also on line {skus[variant.sku]}"
                )
        if clashes:
            bad.append(LineProblem(number, clashes))
            continue
        handles[product.handle] = number
        skus.update({variant.sku: number for variant in product.variants})
        good.append((number, product))
    bad.sort(key=lambda item: item.line)
    return good, bad


# -- writing -------------------------------------------------------------------------------

STAGING = """
CREATE TEMP TABLE import_products (
  handle text, title text, description text, tags text[], tech_stack text[], status text,
  stripe_product_id text, included_in_tier text
) ON COMMIT DROP;
CREATE TEMP TABLE import_variants (
  handle text, sku text, title text, license_type text, price numeric, currency text,
  stripe_price_id text, available_for_sale boolean, seats integer, duration_days integer,
  redistribution boolean
) ON COMMIT DROP;
CREATE TEMP TABLE import_tiers (
  sku text, license_type text, min_quantity integer, max_quantity integer, unit_price numeric
) ON COMMIT DROP;
"""

UPSERT_PRODUCTS = """
INSERT INTO products (handle, title, description, tags, tech_stack, status, stripe_product_id,
                      included_in_tier)
SELECT handle, title, description, tags, tech_stack, status, stripe_product_id, included_in_tier
FROM import_products
ON CONFLICT (handle) DO UPDATE SET
  title = excluded.title, description = excluded.description, tags = excluded.tags,
  tech_stack = excluded.tech_stack, status = excluded.status,
  stripe_product_id = excluded.stripe_product_id, included_in_tier = excluded.included_in_tier,
  updated_at = now()
"""

# Tiers of the imported variants are replaced wholesale; they go first so that a variant may
# change licence type in the same import.
DELETE_REPLACED_TIERS = """
DELETE FROM product_pricing_tiers t
USING product_variants v, import_variants s
WHERE t.variant_id = v.id AND v.sku = s.sku
"""

UPSERT_VARIANTS = """
INSERT INTO product_variants (product_id, sku, title, license_type, price, currency,
                              stripe_price_id, available_for_sale, seats, duration_days,
                              redistribution)
SELECT p.id, s.sku, s.title, s.license_type, s.price, s.currency, s.stripe_price_id,
       s.available_for_sale, s.seats, s.duration_days, s.redistribution
FROM import_variants s JOIN products p ON p.handle = s.handle
ON CONFLICT (sku) DO UPDATE SET
  product_id = excluded.product_id, title = excluded.title,
  license_type = excluded.license_type, price = excluded.price, currency = excluded.currency,
  stripe_price_id = excluded.stripe_price_id, available_for_sale = excluded.available_for_sale,
  seats = excluded.seats, duration_days = excluded.duration_days,
  redistribution = excluded.redistribution, updated_at = now()
"""

INSERT_TIERS = """
INSERT INTO product_pricing_tiers (variant_id, license_type, min_quantity, max_quantity,
                                   unit_price)
SELECT v.id, s.license_type, s.min_quantity, s.max_quantity, s.unit_price
FROM import_tiers s JOIN product_variants v ON v.sku = s.sku
"""


def _stage(
    connection: psycopg.Connection[Any],
    products: list[tuple[int, ProductInput]],
    progress: ProgressCallback,
) -> None:
    cursor = connection.cursor()
    cursor.execute(STAGING)
    with cursor.copy("COPY import_products FROM STDIN") as copy:
        for _number, product in products:
            copy.write_row((product.handle, product.title, product.description,
                            list(product.tags), list(product.tech_stack), product.status,
                            product.stripe_product_id, product.included_in_tier))  # fmt: skip
    with cursor.copy("COPY import_variants FROM STDIN") as copy:
        for _number, product in products:
            for variant in product.variants:
                copy.write_row((product.handle, variant.sku, variant.title, variant.license_type,
                                variant.price, variant.currency, variant.stripe_price_id,
                                variant.available_for_sale, variant.seats, variant.duration_days,
                                variant.redistribution))  # fmt: skip
            progress(1)
    with cursor.copy("COPY import_tiers FROM STDIN") as copy:
        for _number, product in products:
            for variant in product.variants:
                for tier in variant.tiers:
                    copy.write_row((variant.sku, variant.license_type, tier.min_quantity,
                                    tier.max_quantity, tier.unit_price))  # fmt: skip


def import_catalog(
    connection: psycopg.Connection[Any],
    path: Path,
    *,
    skip_invalid: bool = False,
    progress: ProgressCallback = lambda _records: None,
) -> ImportReport:
    """Validate `path`, then upsert it in the caller's transaction (the caller commits).

    Any bad record: ValidationError with a problem per line ("line 17": "variants[0].price: ..."),
    and nothing written; with `skip_invalid` the bad lines are in the report instead.

    `progress` is called once per product read and once per product written.
    """
    good, bad = validate_file(path, progress)
    if bad and not skip_invalid:
        raise ValidationError({f"line {item.line}": item.describe() for item in bad})
    report = ImportReport(lines=len(good) + len(bad), skipped=bad)
    if not good:
        return report
    try:
        _stage(connection, good, progress)
        cursor = connection.cursor()
        report.products = cursor.execute(UPSERT_PRODUCTS).rowcount
        cursor.execute(DELETE_REPLACED_TIERS)
        report.variants = cursor.execute(UPSERT_VARIANTS).rowcount
        report.tiers = cursor.execute(INSERT_TIERS).rowcount
        # The tiers' no-gap rule is checked at commit; check it now, while we can still say so.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    except psycopg.errors.IntegrityError as error:
        translated: AfiloError | None = translate(error)
        if translated is None:
            raise
        raise translated from error
    return report
