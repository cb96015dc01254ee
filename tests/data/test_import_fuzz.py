"""`catalog import` fuzzed over its two grammars: random Unicode (surrogate escapes, control and
format characters), random nesting and sizes. Whatever the file, the import either succeeds or
refuses with every problem named by line (or file) and field, and a refusal writes nothing."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from afilo_db.data.catalog_import import CSV_COLUMNS, import_catalog
from afilo_db.errors import ValidationError

# Characters that break text rules: controls, format characters (bidi, zero-width, BOM),
# surrogates (only reachable through JSON escapes), non-characters, and ordinary text.
NASTY = st.sampled_from(
    ["\x00", "\x01", "\t", "\n", "\r", "\x7f", "\x85", "\u200b", "\u200d", "\u200e", "\u202e",
     "\u2066", "\ufeff", "\ufffe", "\U0010ffff", "é", "ß", "中", "😀", " ", '"', "\\", ",", "|"]
)  # fmt: skip
TEXT = st.text(alphabet=st.one_of(NASTY, st.characters(exclude_categories=["Cs"])), max_size=40)
JSON_SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=False), TEXT
)
JSON_VALUE = st.recursive(
    JSON_SCALAR,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(TEXT, children, max_size=3)
    ),
    max_leaves=12,
)
HANDLE = st.one_of(st.from_regex(r"[a-z][a-z0-9-]{2,20}", fullmatch=True), TEXT)
SKU = st.one_of(st.from_regex(r"[A-Z][A-Z0-9-]{2,20}", fullmatch=True), TEXT)
PRICE = st.one_of(
    st.sampled_from(["19.00", "0.01", "-1", "1e3", "NaN", "9" * 40, "19.999"]),
    st.decimals(allow_nan=False, places=2).map(str),
    st.integers(),
    JSON_SCALAR,
)
VARIANT = st.fixed_dictionaries(
    {"sku": SKU, "title": TEXT, "license_type": st.sampled_from(["personal", "team", "x"]),
     "price": PRICE},
    optional={"seats": st.one_of(st.integers(-2, 30), JSON_SCALAR), "currency": TEXT,
              "tiers": st.lists(st.dictionaries(TEXT, JSON_SCALAR, max_size=3), max_size=2)},
)  # fmt: skip
PRODUCT = st.fixed_dictionaries(
    {"handle": HANDLE, "title": TEXT, "variants": st.lists(VARIANT, max_size=2)},
    optional={"description": TEXT, "tags": st.lists(TEXT, max_size=3), "status": TEXT,
              "tech_stack": st.one_of(st.lists(TEXT, max_size=2), JSON_VALUE), "extra": JSON_VALUE},
)  # fmt: skip


def _json_line(product: dict[str, Any], escape_surrogate: bool) -> bytes:
    line = json.dumps(product, ensure_ascii=escape_surrogate)
    if escape_surrogate:  # half of a UTF-16 pair, as only an escape can hold it
        line = line.replace('"title": "', '"title": "\\udbff', 1)
    return line.encode("utf-8", "surrogatepass") + b"\n"


JSONL_FILE = st.lists(
    st.one_of(
        st.builds(_json_line, PRODUCT, st.booleans()),
        st.binary(max_size=30).map(lambda raw: raw + b"\n"),
        JSON_VALUE.map(lambda value: json.dumps(value).encode() + b"\n"),
    ),
    max_size=5,
).map(b"".join)


def _csv_file(rows: list[dict[str, str]], columns: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(column, "") for column in columns])
    return out.getvalue().encode("utf-8", "surrogatepass")


CSV_FILE = st.builds(
    _csv_file,
    st.lists(st.dictionaries(st.sampled_from(CSV_COLUMNS), TEXT, max_size=8), max_size=4),
    st.sampled_from([list(CSV_COLUMNS), ["handle", "title", "sku", "variant_title",
                     "license_type", "price"], ["handle", "title", "pricee"]]),
)  # fmt: skip


def _refusal(url: str, path: Path) -> dict[str, str] | None:
    """The problems of a refused import (None: imported), after checking nothing was written."""
    with psycopg.connect(url) as connection:
        try:
            import_catalog(connection, path, workers=0)
        except ValidationError as refused:
            written = connection.execute("SELECT count(*) FROM products").fetchone()
            assert written == (0,)
            return refused.problems
        finally:
            connection.rollback()
    return None


def _import_once(url: str, path: Path) -> None:
    problems = _refusal(url, path)
    if problems is None:
        return
    assert problems
    for where, problem in problems.items():
        assert where == "file" or where.startswith("line "), where
        # A line's problems name their field ("field: rule"); a file's is its rule.
        assert problem and (where == "file" or ": " in problem), (where, problem)


FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(content=JSONL_FILE)
def test_json_lines_are_imported_or_refused_by_line_and_field(
    database_url: str, tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(content)
    _import_once(database_url, path)


@FUZZ
@given(content=CSV_FILE)
def test_csv_is_imported_or_refused_by_line_and_field(
    database_url: str, tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes(content)
    _import_once(database_url, path)
