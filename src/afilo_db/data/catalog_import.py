"""`afilo-db catalog import`: upsert products (by handle) and variants (by sku) from a file.

The file is streamed, never held whole: lines are read in batches, each batch is validated by
pydantic's compiled core in worker processes (one per core) while the batches before it are
written, so that validating costs no time of its own. A batch's keys are checked against every
key the file held before it (a temporary table, on the server, so memory stays flat); then a
batch whose products and variants are all new is copied (COPY) straight into the catalog, and
any other batch is copied into temporary staging tables, from which set-based upserts write the
rows that differ.
All of it happens inside a savepoint: any bad line and nothing is written (the savepoint is
rolled back, and the rest of the file is still read so that every bad line is named), unless
`skip_invalid`.

Formats, by extension:
- `.jsonl` / `.ndjson`: one product per line, shaped like ProductInput (variants nested, tiers
  nested in variants). Prices are decimal strings or JSON numbers, read exactly (never floats).
- `.csv`: a header row naming the columns, then one variant per row, product columns repeated on
  each of its rows (the rows of a product must be consecutive); `tags` and `tech_stack` separated
  by `|`; `tiers` as `1-9:10.00|10-49:9.00|50-:8.00`; the variant's title is `variant_title`.

A line replaces: it is the whole product, so a field it leaves out (or a CSV cell left empty)
takes its default (description "", no tags, status draft, ...), and each variant it lists gets
exactly the tiers it lists. Variants the line does not list are left as they are: an import
never deletes a variant (purchases and downloads point at them).

Only rows that differ are written: re-importing an unchanged file leaves every row, `updated_at`
and tier id as it was. Imports take a transaction-level advisory lock before their first write,
so two imports run one after the other instead of deadlocking on each other's rows; within a
batch, rows are locked in key order (handles, then skus).
"""

from __future__ import annotations

import csv
import difflib
import ipaddress
import json
import multiprocessing
import os
import random
import re
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pydantic

from afilo_db.data.file_keys import FileKeys, key_digest
from afilo_db.data.ids import uuid7_prefix, uuid7_text
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
CSV_COLUMNS = (*PRODUCT_FIELDS, "sku", "variant_title", *VARIANT_FIELDS[2:], "tiers")
CSV_REQUIRED_COLUMNS = ("handle", "title", "sku", "variant_title", "license_type", "price")

BATCH_LINES = 2_000
# Below this size the worker processes cost more to start than they save.
PARALLEL_FROM_BYTES = 4 << 20
MAX_LINE_BYTES = 4 << 20
NUL_RULE = "must not contain NUL characters (PostgreSQL text cannot hold them)"
SURROGATE_RULE = (
    "must not contain an unpaired UTF-16 surrogate escape (\\ud800-\\udfff without its pair):"
    " it names no character"
)
EMPTY_FILE_RULE = "is empty: it holds no product (a CSV header row alone counts as empty)"


@dataclass(frozen=True)
class LineProblem:
    line: int
    problems: dict[str, str]

    def describe(self) -> str:
        return "; ".join(f"{path}: {rule}" for path, rule in self.problems.items())


@dataclass
class ImportReport:
    lines: int = 0
    """Products read (valid or not)."""
    products: int = 0
    """Rows written (inserted or changed); an unchanged re-import writes none."""
    variants: int = 0
    tiers: int = 0
    skipped: list[LineProblem] = field(default_factory=list)
    workers: int = 0
    """Processes that validated the file (0: the importing process itself)."""


# A record on its way to validation: raw JSON bytes, a CSV product, or a problem already found.
Record = tuple[int, bytes | dict[str, Any] | LineProblem]


@dataclass(frozen=True)
class StagedBatch:
    """One batch, validated and formatted as COPY text: its keys, and its rows for the three
    staging tables. A row's leading fields (PRODUCT_, VARIANT_ and TIER_LEAD) locate it in the
    file; the fields after them are the catalog table's own columns, so that rows that are all new
    can be copied into the catalog as they are."""

    keys: bytes
    key_digests: bytes
    """Each key's `file_keys.key_digest`, in the order of `keys`."""
    key_lines: bytes
    """Each key's line, as native uint32s, in the order of `keys`."""
    products: bytes
    variants: bytes
    tiers: bytes
    valid: int
    problems: list[LineProblem]


# -- reading -------------------------------------------------------------------------------


def _jsonl_records(path: Path) -> Iterator[Record]:
    with path.open("rb") as handle:
        number = 0
        while line := handle.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(line) > MAX_LINE_BYTES:
                while line and not line.endswith(b"\n"):
                    line = handle.readline(MAX_LINE_BYTES)
                limit = f"is longer than {MAX_LINE_BYTES >> 20} MB"
                yield number, LineProblem(number, {"line": limit})
            elif number == 1 and line.startswith(b"\xef\xbb\xbf"):
                yield number, line[3:]
            elif line.strip():
                yield number, line


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split("|") if part.strip()]


def _csv_tiers(value: str) -> list[dict[str, str | None]]:
    tiers: list[dict[str, str | None]] = []
    for part in _split(value):
        bounds, _, price = part.partition(":")
        low, _, high = bounds.partition("-")
        tiers.append({"min_quantity": low, "max_quantity": high or None, "unit_price": price})
    return tiers


def _header_problem(header: list[str]) -> str | None:
    names = [name.strip() for name in header]
    if not any(name in CSV_COLUMNS for name in names):
        return (
            "the file has no header row: its first line must name the columns, "
            "such as handle,title,sku,variant_title,license_type,price"
        )
    problems = []
    for name in dict.fromkeys(names):
        if names.count(name) > 1:
            problems.append(f"column {name!r} appears {names.count(name)} times")
        elif name not in CSV_COLUMNS:
            close = difflib.get_close_matches(name, CSV_COLUMNS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(
                f"column {name!r} is not a known column{hint}; known: {', '.join(CSV_COLUMNS)}"
            )
    problems += [
        f"column {name!r} is missing (every row needs it)"
        for name in CSV_REQUIRED_COLUMNS
        if name not in names
    ]
    return "; ".join(problems) or None


def _cell_problems(row: dict[str, str]) -> dict[str, str]:
    problems = {}
    for column, value in row.items():
        if "\x00" in value:
            problems[column] = NUL_RULE
        elif not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as error:
                problems[column] = f"is not valid UTF-8 (character {error.start + 1})"
    return problems


def _csv_product(row: dict[str, str]) -> dict[str, Any]:
    product: dict[str, Any] = {key: row[key] for key in PRODUCT_FIELDS if row.get(key)}
    for key in ("tags", "tech_stack"):
        if key in product:
            product[key] = _split(product[key])
    return product


def _csv_variant(row: dict[str, str]) -> dict[str, Any]:
    variant: dict[str, Any] = {
        CSV_VARIANT_COLUMNS.get(key, key): row[key]
        for key in (*VARIANT_FIELDS, "variant_title")
        if key != "title" and row.get(key)
    }
    if row.get("tiers"):
        variant["tiers"] = _csv_tiers(row["tiers"])
    return variant


def _csv_records(path: Path) -> Iterator[Record]:
    """Consecutive rows with one handle make one product, reported at its first row's line."""
    # surrogateescape: a byte that is not UTF-8 reaches us as a lone surrogate, so that the
    # problem is named by line and column instead of ending the whole read.
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        problem = _header_problem(header)
        if problem is not None:
            raise ValidationError({"line 1": problem})
        columns = [name.strip() for name in header]
        current: tuple[int, dict[str, Any]] | None = None
        previous_end = reader.line_num
        for cells in reader:
            number, previous_end = previous_end + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(columns):
                yield (
                    number,
                    LineProblem(
                        number, {"row": f"has {len(cells)} cells, the header {len(columns)}"}
                    ),
                )
                continue
            row = {column: cell.strip() for column, cell in zip(columns, cells, strict=True)}
            cell_problems = _cell_problems(row)
            if cell_problems:
                yield number, LineProblem(number, cell_problems)
                continue
            product = _csv_product(row)
            if current is None or current[1].get("handle") != product.get("handle"):
                if current is not None:
                    yield current
                current = (number, {**product, "variants": []})
            first_line, existing = current
            differing = next(
                (key for key in PRODUCT_FIELDS if existing.get(key) != product.get(key)), None
            )
            if differing is not None:
                rule = f"differs from line {first_line} for the same handle"
                yield number, LineProblem(number, {differing: rule})
                continue
            existing["variants"].append(_csv_variant(row))
        if current is not None:
            yield current


def read_records(path: Path) -> Iterator[Record]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _jsonl_records(path)
    if suffix == ".csv":
        return _csv_records(path)
    raise ValidationError({"file": "must end in .jsonl, .ndjson or .csv"})


def _batches(records: Iterable[Record]) -> Iterator[list[Record]]:
    batch: list[Record] = []
    for record in records:
        batch.append(record)
        if len(batch) == BATCH_LINES:
            yield batch
            batch = []
    if batch:
        yield batch


# -- validating (in worker processes) ------------------------------------------------------


def _json_problems(error: pydantic.ValidationError, line: bytes) -> dict[str, str]:
    first = error.errors()[0]
    if first["type"] == "json_invalid":
        detail = str(first.get("ctx", {}).get("error", first["msg"]))
        if "recursion limit" in detail:
            return {"json": "is nested too deeply (at most 200 levels of arrays and objects)"}
        return _surrogate_problems(line) or {"json": f"is not valid JSON: {detail}"}
    if first["type"] == "model_type" and not first["loc"]:
        return {"json": "must be an object (one product)"}
    return problems_of(error)


def _validated_json(line: bytes) -> ProductInput | dict[str, str]:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as error:
        return {"encoding": f"is not valid UTF-8 (byte 0x{line[error.start]:02x} at byte "
                            f"{error.start + 1} of the line)"}  # fmt: skip
    try:
        return ProductInput.model_validate_json(line)
    except pydantic.ValidationError as error:
        if not any(isinstance(item.get("input"), float) for item in error.errors()):
            return _json_problems(error, line)
    # JSON numbers as prices: read again with the numbers as exact decimals, never floats.
    try:
        return ProductInput.model_validate(json.loads(line, parse_float=Decimal))
    except pydantic.ValidationError as error:
        return problems_of(error)


def _surrogate_problems(line: bytes) -> dict[str, str]:
    """The strings that hold a `\\ud800`-style escape of half a UTF-16 pair, by path.

    Such an escape is well-formed JSON (RFC 8259 section 8.2 leaves its meaning open) but names
    no character, and the strict parser stops at it without saying where: Python's parser
    accepts it, so the line is read again to name each field that holds one."""
    try:
        document = json.loads(line, parse_float=Decimal)
    except (ValueError, RecursionError):
        return {}
    return {path: SURROGATE_RULE for path in _text_paths(document, "", _has_surrogate)}


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= character <= "\udfff" for character in text)


def _text_paths(value: object, path: str, matches: Callable[[str], bool]) -> Iterator[str]:
    """Paths (like variants[0].title) of the strings in a parsed JSON document that `matches`;
    an object key that matches is named by its parent's path."""
    if isinstance(value, str):
        if matches(value):
            yield path or "json"
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _text_paths(item, f"{path}[{index}]", matches)
    elif isinstance(value, dict):
        for key, item in value.items():
            if matches(key):
                yield path or "json"
            yield from _text_paths(item, f"{path}.{key}" if path else key, matches)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NEEDS_COPY_ESCAPE = re.compile(r"[\\\t\n\r]")


def _copy_text(text: str) -> str:
    # Most text needs no escape, and a search costs a tenth of a translate.
    return text.translate(_COPY_ESCAPES) if _NEEDS_COPY_ESCAPE.search(text) else text


def _copy_nullable(value: str | int | None) -> str:
    """An optional field in COPY's text format: numbers, and texts whose rule admits no
    character COPY escapes (ids, enumerations)."""
    return "\\N" if value is None else str(value)


def _copy_array(items: tuple[str, ...]) -> str:
    quoted = ('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items)
    return _copy_text("{" + ",".join(quoted) + "}")


def stage_batch(batch: list[Record]) -> StagedBatch:
    """Validate a batch and format its valid products as COPY text; runs in a worker.

    Each row is written field by field with its known type (a generic formatter cost twice the
    validation): free text is escaped for COPY, numbers, booleans, enumerations and ids whose
    rules admit no character COPY escapes are written as they are."""
    keys: list[str] = []
    key_digests = bytearray()
    key_lines = array("I")
    products: list[str] = []
    variants: list[str] = []
    tiers: list[str] = []
    problems: list[LineProblem] = []

    def key(number: int, position: int, kind: str, path: str, value: str) -> None:
        keys.append(f"{number}\t{position}\t{kind}\t{path}\t{value}\n")
        key_digests.extend(key_digest(kind, value))
        key_lines.append(number)

    # Ids made here rather than by the columns' default, a SQL function called once a row that
    # costs the server more than the insert itself; a row that exists already keeps its own.
    # Uniqueness needs unpredictable seeds, not a cryptographic generator for every id.
    prefix, randomness = uuid7_prefix(datetime.now(UTC)), random.Random(os.urandom(32))  # noqa: S311
    for number, record in batch:
        if isinstance(record, LineProblem):
            problems.append(record)
            continue
        if isinstance(record, bytes):
            product = _validated_json(record)
        else:
            try:
                product = ProductInput.model_validate(record)
            except pydantic.ValidationError as error:
                product = problems_of(error)
        # A NUL can only arrive as the JSON escape \u0000; CSV cells were checked when read.
        if isinstance(product, ProductInput) and isinstance(record, bytes) and b"\\u0000" in record:
            document = json.loads(record, parse_float=Decimal)
            nul_paths = _text_paths(document, "", lambda text: "\x00" in text)
            product = dict.fromkeys(nul_paths, NUL_RULE) or product
        if not isinstance(product, ProductInput):
            problems.append(LineProblem(number, product))
            continue
        product_id = uuid7_text(prefix, randomness)
        handle = _copy_text(product.handle)
        products.append(
            f"{number}\t{product_id}\t{handle}\t{_copy_text(product.title)}"
            f"\t{_copy_text(product.description)}\t{_copy_array(product.tags)}"
            f"\t{_copy_array(product.tech_stack)}\t{product.status}"
            f"\t{_copy_nullable(product.stripe_product_id)}"
            f"\t{_copy_nullable(product.included_in_tier)}\n"
        )
        key(number, 0, "handle", "handle", handle)
        if product.stripe_product_id is not None:
            key(number, 0, "stripe_product_id", "stripe_product_id", product.stripe_product_id)
        for position, variant in enumerate(product.variants):
            variant_id = uuid7_text(prefix, randomness)
            sku = _copy_text(variant.sku)
            variants.append(
                f"{number}\t{position}\t{handle}\t{variant_id}\t{product_id}\t{product.status}"
                f"\t{sku}"
                f"\t{_copy_text(variant.title)}\t{variant.license_type}\t{variant.price}"
                f"\t{variant.currency}\t{_copy_nullable(variant.stripe_price_id)}"
                f"\t{'t' if variant.available_for_sale else 'f'}\t{_copy_nullable(variant.seats)}"
                f"\t{_copy_nullable(variant.duration_days)}"
                f"\t{'t' if variant.redistribution else 'f'}\n"
            )
            key(number, position, "sku", f"variants[{position}].sku", sku)
            if variant.stripe_price_id is not None:
                path_in_line = f"variants[{position}].stripe_price_id"
                key(number, position, "stripe_price_id", path_in_line, variant.stripe_price_id)
            for tier in variant.tiers:
                tiers.append(
                    f"{number}\t{sku}\t{uuid7_text(prefix, randomness)}\t{variant_id}"
                    f"\t{variant.license_type}\t{tier.min_quantity}"
                    f"\t{_copy_nullable(tier.max_quantity)}\t{tier.unit_price}\n"
                )
    return StagedBatch(
        keys="".join(keys).encode(),
        key_digests=bytes(key_digests),
        key_lines=key_lines.tobytes(),
        products="".join(products).encode(),
        variants="".join(variants).encode(),
        tiers="".join(tiers).encode(),
        valid=len(products),
        problems=problems,
    )


def server_is_local(connection: psycopg.Connection[Any]) -> bool:
    """Whether the server runs on this machine (reached by a Unix socket or a loopback
    address)."""
    host = connection.info.host
    if host.startswith("/") or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(connection.info.hostaddr or host).is_loopback
    except ValueError:  # a host name other than localhost
        return False


def worker_count(path: Path, server_is_local: bool) -> int:
    """Validating processes for `path`: none for a small file; else one per core, but one core
    left to a server on this machine, which writes the batches meanwhile and would otherwise
    share its core with a worker: on two cores one worker beat two (bench/catalog.py; the figures
    in docs/measured-choices.md)."""
    if path.stat().st_size < PARALLEL_FROM_BYTES:
        return 0
    cores = len(os.sched_getaffinity(0))
    return max(1, min(4, cores - 1 if server_is_local else cores))


def staged_batches(path: Path, workers: int) -> Iterator[StagedBatch]:
    """The file's batches, validated in order: by `workers` processes (0: in this one) while the
    caller consumes the batches before."""
    batches = _batches(read_records(path))
    if workers < 1:
        yield from map(stage_batch, batches)
        return
    # fork where there is one: a worker starts at once with the validators already built, and
    # the caller's main module is not imported again (spawn would run an unguarded script twice).
    # The workers only validate and format: they touch no lock another thread may hold.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
    try:
        pending: deque[Future[StagedBatch]] = deque()
        for batch in batches:
            pending.append(pool.submit(stage_batch, batch))
            # Bounded read-ahead: memory stays flat however long the file is.
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(cancel_futures=True)


# -- writing -------------------------------------------------------------------------------

STAGING = """
DROP TABLE IF EXISTS pg_temp.import_products, pg_temp.import_variants, pg_temp.import_tiers,
                     pg_temp.import_batch_keys;
CREATE TEMP TABLE import_products (
  line integer, id uuid, handle text, title text, description text, tags text[], tech_stack text[],
  status text, stripe_product_id text, included_in_tier text
) ON COMMIT DROP;
CREATE TEMP TABLE import_variants (
  line integer, position integer, handle text, id uuid, product_id uuid, product_status text,
  sku text, title text, license_type text, price numeric, currency text, stripe_price_id text,
  available_for_sale boolean, seats integer, duration_days integer, redistribution boolean
) ON COMMIT DROP;
CREATE TEMP TABLE import_tiers (
  line integer, sku text, id uuid, variant_id uuid, license_type text, min_quantity integer,
  max_quantity integer, unit_price numeric
) ON COMMIT DROP;
CREATE TEMP TABLE import_batch_keys (
  line integer, position integer, kind text, path text, value text
) ON COMMIT DROP;
"""
# The staging tables hold one batch at a time.
STAGING_TABLES = ("import_products", "import_variants", "import_tiers")
# The fields before the catalog's own columns in each staging row (see StagedBatch).
PRODUCT_LEAD, VARIANT_LEAD, TIER_LEAD = 1, 3, 2
PRODUCT_COLUMNS = ("id", "handle", "title", "description", "tags", "tech_stack", "status",
                   "stripe_product_id", "included_in_tier")  # fmt: skip
VARIANT_COLUMNS = ("id", "product_id", "product_status", "sku", "title", "license_type", "price",
                   "currency", "stripe_price_id", "available_for_sale", "seats", "duration_days",
                   "redistribution")  # fmt: skip
TIER_COLUMNS = ("id", "variant_id", "license_type", "min_quantity", "max_quantity", "unit_price")

# A 2,000-line batch sorts in memory instead of spilling to disk at the default 4 MB.
IMPORT_WORK_MEM = "64MB"
# 'afilo-ci' (catalog import): two imports run one after the other.
IMPORT_LOCK_KEY = 0x6166696C6F2D6369

# Each statement below is driven by the batch's rows, with one index probe into the catalog per
# row: a lookup by key is a LATERAL ... LIMIT 1 and a correlated EXISTS ends in OFFSET 0, which
# the planner can neither flatten into a join nor hash. Left to choose, it hashed the whole of
# products or product_variants for every batch, and an import's time grew with the square of the
# catalog (bench/catalog.py at a million products).

# ORDER BY: rows are locked in key order. ON CONFLICT DO UPDATE locks the row even when its WHERE
# is false, so an unchanged row is locked but not rewritten (its updated_at stays).
UPSERT_PRODUCTS = """
INSERT INTO products AS p (id, handle, title, description, tags, tech_stack, status,
                           stripe_product_id, included_in_tier)
SELECT id, handle, title, description, tags, tech_stack, status, stripe_product_id, included_in_tier
FROM import_products ORDER BY handle
ON CONFLICT (handle) DO UPDATE SET
  title = excluded.title, description = excluded.description, tags = excluded.tags,
  tech_stack = excluded.tech_stack, status = excluded.status,
  stripe_product_id = excluded.stripe_product_id, included_in_tier = excluded.included_in_tier,
  updated_at = now()
WHERE (p.title, p.description, p.tags, p.tech_stack, p.status, p.stripe_product_id,
       p.included_in_tier)
  IS DISTINCT FROM (excluded.title, excluded.description, excluded.tags, excluded.tech_stack,
                    excluded.status, excluded.stripe_product_id, excluded.included_in_tier)
"""

# Tiers that the file no longer lists go first, so that a variant may change licence type.
DELETE_REPLACED_TIERS = """
DELETE FROM product_pricing_tiers
WHERE id = ANY (ARRAY(
  SELECT t.id
  FROM import_variants s
  CROSS JOIN LATERAL (SELECT v.id FROM product_variants v WHERE v.sku = s.sku LIMIT 1) AS v
  CROSS JOIN LATERAL (
    SELECT t.id, t.license_type, t.min_quantity, t.max_quantity, t.unit_price
    FROM product_pricing_tiers t WHERE t.variant_id = v.id OFFSET 0
  ) AS t
  WHERE NOT EXISTS (
    SELECT FROM import_tiers i
    WHERE i.sku = s.sku AND i.license_type = t.license_type
      AND i.min_quantity = t.min_quantity AND i.max_quantity IS NOT DISTINCT FROM t.max_quantity
      AND i.unit_price = t.unit_price)
))
"""

UPSERT_VARIANTS = """
INSERT INTO product_variants AS v (id, product_id, product_status, sku, title, license_type,
                                   price, currency, stripe_price_id, available_for_sale, seats,
                                   duration_days, redistribution)
SELECT s.id, p.id, p.status, s.sku, s.title, s.license_type, s.price, s.currency,
       s.stripe_price_id, s.available_for_sale, s.seats, s.duration_days, s.redistribution
FROM import_variants s
CROSS JOIN LATERAL (SELECT p.id, p.status FROM products p WHERE p.handle = s.handle LIMIT 1) AS p
ORDER BY s.sku
ON CONFLICT (sku) DO UPDATE SET
  product_id = excluded.product_id, product_status = excluded.product_status,
  title = excluded.title,
  license_type = excluded.license_type, price = excluded.price, currency = excluded.currency,
  stripe_price_id = excluded.stripe_price_id, available_for_sale = excluded.available_for_sale,
  seats = excluded.seats, duration_days = excluded.duration_days,
  redistribution = excluded.redistribution, updated_at = now()
WHERE (v.product_id, v.title, v.license_type, v.price, v.currency, v.stripe_price_id,
       v.available_for_sale, v.seats, v.duration_days, v.redistribution)
  IS DISTINCT FROM (excluded.product_id, excluded.title, excluded.license_type, excluded.price,
                    excluded.currency, excluded.stripe_price_id, excluded.available_for_sale,
                    excluded.seats, excluded.duration_days, excluded.redistribution)
"""

INSERT_NEW_TIERS = """
INSERT INTO product_pricing_tiers (id, variant_id, license_type, min_quantity, max_quantity,
                                   unit_price)
SELECT i.id, v.id, i.license_type, i.min_quantity, i.max_quantity, i.unit_price
FROM import_tiers i
CROSS JOIN LATERAL (SELECT v.id FROM product_variants v WHERE v.sku = i.sku LIMIT 1) AS v
WHERE NOT EXISTS (
  SELECT FROM product_pricing_tiers t
  WHERE t.variant_id = v.id AND t.license_type = i.license_type
    AND t.min_quantity = i.min_quantity AND t.max_quantity IS NOT DISTINCT FROM i.max_quantity
    AND t.unit_price = i.unit_price
  OFFSET 0)
ORDER BY i.sku, i.min_quantity
"""

CATALOG_IS_EMPTY = (
    "SELECT NOT EXISTS (SELECT FROM products) AND NOT EXISTS (SELECT FROM product_variants)"
)

# Whether any product or variant of the batch is in the catalog already: if none is (a first
# import), the batch is copied into the catalog as it is, COPY being the fastest way in.
ANY_IN_THE_CATALOG = """
SELECT EXISTS (
  SELECT FROM import_batch_keys k
  WHERE k.kind = 'handle' AND EXISTS (SELECT FROM products p WHERE p.handle = k.value OFFSET 0)
     OR k.kind = 'sku' AND EXISTS (SELECT FROM product_variants v WHERE v.sku = k.value OFFSET 0)
)
"""

# The catalog's deferred rules (tiers without gaps, an active product sellable) are checked after
# the last batch, when the validating workers are done and the server has the cores to itself
# (checked batch by batch, they ran slower, sharing them: bench/catalog.py), and every
# DEFERRED_CHECK_LINES lines before that, so that the server's queue of pending checks stays
# bounded however long the file is. Inside the import's savepoint, so that a broken rule is
# reported as the import's.
DEFERRED_CHECK_LINES = 100_000
DEFERRED_RULES = "ck_product_pricing_tiers_contiguous, ck_products_active_has_variant_for_sale"
CHECK_DEFERRED_RULES_NOW = f"SET CONSTRAINTS {DEFERRED_RULES} IMMEDIATE"
DEFER_RULES_AGAIN = f"SET CONSTRAINTS {DEFERRED_RULES} DEFERRED"


def _copy(cursor: psycopg.Cursor[Any], target: str, data: bytes) -> None:
    if data:
        with cursor.copy(f"COPY {target} FROM STDIN") as copy:
            copy.write(data)


def _repeated_keys(file_keys: FileKeys, batch: StagedBatch) -> list[LineProblem]:
    """The batch's lines that repeat a key of an earlier line (or an earlier variant of the same
    line), as problems; the batch's keys are now the file's."""
    first_lines = file_keys.add_batch(batch.key_digests, batch.key_lines)
    if not first_lines:
        return []
    rows = batch.keys.splitlines()
    repeated: dict[int, dict[str, str]] = {}
    for index, first_line in sorted(first_lines.items()):
        # A key's value admits no character COPY escapes (handles, skus, Stripe ids).
        line, _position, _kind, path_in_line, value = rows[index].decode().split("\t")
        repeated.setdefault(int(line), {})[path_in_line] = f"{value} is also on line {first_line}"
    return [LineProblem(line, found) for line, found in sorted(repeated.items())]


def _without_lines(rows: bytes, lines: set[int]) -> bytes:
    if not lines:
        return rows
    return b"".join(
        row for row in rows.splitlines(keepends=True) if int(row.split(b"\t", 1)[0]) not in lines
    )


def _catalog_rows(rows: bytes, lead: int) -> bytes:
    """Staging rows as the catalog table's own rows: without their leading fields."""
    return b"".join(row.split(b"\t", lead)[lead] for row in rows.splitlines(keepends=True))


def _all_new(cursor: psycopg.Cursor[Any], batch: StagedBatch, catalog_was_empty: bool) -> bool:
    """Whether no product or variant of the batch is in the catalog yet. Into a catalog that was
    empty when the import began, every batch is new: the file's own repeats are skipped lines,
    and imports run one at a time (a product another writer adds meanwhile under one of the
    file's keys fails the import on the catalog's unique constraint)."""
    if catalog_was_empty:
        return True
    cursor.execute("TRUNCATE import_batch_keys")
    _copy(cursor, "import_batch_keys", batch.keys)
    return cursor.execute(ANY_IN_THE_CATALOG).fetchone() == (False,)


def _write_batch(
    cursor: psycopg.Cursor[Any],
    batch: StagedBatch,
    skipped: set[int],
    report: ImportReport,
    catalog_was_empty: bool,
) -> None:
    """Write the batch but its `skipped` lines; the rows written are added to the report."""
    products = _without_lines(batch.products, skipped)
    variants = _without_lines(batch.variants, skipped)
    tiers = _without_lines(batch.tiers, skipped)
    if _all_new(cursor, batch, catalog_was_empty):
        for table, columns, rows, lead in (
            ("products", PRODUCT_COLUMNS, products, PRODUCT_LEAD),
            ("product_variants", VARIANT_COLUMNS, variants, VARIANT_LEAD),
            ("product_pricing_tiers", TIER_COLUMNS, tiers, TIER_LEAD),
        ):
            _copy(cursor, f"{table} ({', '.join(columns)})", _catalog_rows(rows, lead))
        report.products += products.count(b"\n")
        report.variants += variants.count(b"\n")
        report.tiers += tiers.count(b"\n")
    else:
        cursor.execute("TRUNCATE " + ", ".join(STAGING_TABLES))
        _copy(cursor, "import_products", products)
        _copy(cursor, "import_variants", variants)
        _copy(cursor, "import_tiers", tiers)
        report.products += cursor.execute(UPSERT_PRODUCTS).rowcount
        cursor.execute(DELETE_REPLACED_TIERS)
        report.variants += cursor.execute(UPSERT_VARIANTS).rowcount
        report.tiers += cursor.execute(INSERT_NEW_TIERS).rowcount


def _import_file(
    connection: psycopg.Connection[Any],
    path: Path,
    skip_invalid: bool,
    progress: ProgressCallback,
    workers: int,
) -> ImportReport:
    cursor = connection.cursor()
    report = ImportReport(workers=workers)
    problems: list[LineProblem] = []
    catalog_was_empty: bool | None = None
    unchecked_lines = 0
    file_keys = FileKeys()
    for batch in staged_batches(path, workers):
        repeated = _repeated_keys(file_keys, batch)
        problems += batch.problems + repeated
        report.lines += batch.valid + len(batch.problems)
        # Once a line is bad and bad lines are refused, the rest is only read to name them all.
        if skip_invalid or not problems:
            if catalog_was_empty is None:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (IMPORT_LOCK_KEY,))
                catalog_was_empty = cursor.execute(CATALOG_IS_EMPTY).fetchone() == (True,)
            skipped = {item.line for item in repeated}
            _write_batch(cursor, batch, skipped, report, catalog_was_empty)
            unchecked_lines += batch.valid
            if unchecked_lines >= DEFERRED_CHECK_LINES:
                cursor.execute(CHECK_DEFERRED_RULES_NOW)
                cursor.execute(DEFER_RULES_AGAIN)
                unchecked_lines = 0
        progress(batch.valid + len(batch.problems))
    if unchecked_lines:
        cursor.execute(CHECK_DEFERRED_RULES_NOW)
        cursor.execute(DEFER_RULES_AGAIN)
    if report.lines == 0:
        raise ValidationError({"file": EMPTY_FILE_RULE})
    problems.sort(key=lambda item: item.line)
    described = {f"line {item.line}": item.describe() for item in problems}
    if problems and not skip_invalid:
        raise ValidationError(described)
    if report.lines == len(problems):
        raise ValidationError({**described, "file": "holds no valid product to import"})
    report.skipped = problems
    return report


def import_catalog(
    connection: psycopg.Connection[Any],
    path: Path,
    *,
    skip_invalid: bool = False,
    progress: ProgressCallback = lambda _records: None,
    workers: int | None = None,
) -> ImportReport:
    """Validate and upsert `path` in the caller's transaction (the caller commits).

    Any bad line: ValidationError with a problem per line ("line 17": "variants[0].price: ..."),
    and nothing written; with `skip_invalid` the bad lines are in the report instead, unless no
    valid line remains (ValidationError then too). A CSV header that names an unknown column, or
    a CSV without a header row, is refused whole.

    `progress` is called with the number of products read, batch by batch. `workers`: validating
    processes (default: none for a file under 4 MB, else one per core, less one when the server
    runs on this machine; 0: in this process).
    """
    # Opens the caller's transaction, if none is open yet, so that the block below is a savepoint
    # in it: whatever the caller does with its transaction after an error, none of this import
    # is in it.
    connection.execute(STAGING)
    connection.execute(f"SET LOCAL work_mem = '{IMPORT_WORK_MEM}'")
    try:
        with connection.transaction():
            if workers is None:
                workers = worker_count(path, server_is_local(connection))
            return _import_file(connection, path, skip_invalid, progress, workers)
    except psycopg.errors.IntegrityError as error:
        translated: AfiloError | None = translate(error)
        if translated is None:
            raise
        raise translated from error
