"""Item 8 of issue 14: one whitespace rule for titles in Python and in the database (a property
test over every Unicode whitespace character), no control characters or bidirectional overrides
where a person reads text, money refused rather than rounded, and an active product that always
has a variant for sale."""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticError

from afilo_db import rules
from afilo_db.errors import ValidationError
from afilo_db.validation import validate
from afilo_db.validation.database_errors import translate
from afilo_db.validation.schemas import ProductChanges, ProductInput
from afilo_db.validation.types import Title
from tests.validation.examples import PROPERTY_EXAMPLES

Connection = psycopg.Connection[tuple[object, ...]]
EVERY_WHITESPACE = sorted({chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace()})
UNPRINTABLE = [chr(code) for low, high in rules.UNPRINTABLE_RANGES for code in range(low, high + 1)]
TITLE = TypeAdapter(Title)


def python_title(value: str) -> str | None:
    try:
        return TITLE.validate_python(value)
    except PydanticError:
        return None


def database_accepts_title(connection: Connection, value: str) -> bool:
    try:
        with connection.transaction():
            connection.execute("INSERT INTO products (handle, title) VALUES ('t', %s)", (value,))
            raise _RolledBackError
    except _RolledBackError:
        return True
    except psycopg.errors.CheckViolation:
        return False


class _RolledBackError(Exception):
    pass


def test_the_whitespace_rule_is_unicodes() -> None:
    # Python's isspace() adds the ASCII separators \x1c-\x1f, which are control characters.
    assert set(EVERY_WHITESPACE) - set(rules.TEXT_WHITESPACE) == {"\x1c", "\x1d", "\x1e", "\x1f"}
    assert set(rules.TEXT_WHITESPACE) <= set(EVERY_WHITESPACE)


titles = st.text(
    alphabet=st.sampled_from([*EVERY_WHITESPACE, *UNPRINTABLE[:40], "a", "Z", "é", "-", "字"]),
    max_size=12,
) | st.text(max_size=205)


@settings(
    # Titles have the widest alphabet of the rules: twice the examples.
    max_examples=2 * PROPERTY_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=titles)
def test_title_python_and_database_agree(connection: Connection, value: str) -> None:
    stored = python_title(value)
    if "\x00" in value:  # text cannot hold NUL at all: Python refuses it before the database
        assert stored is None
        return
    stripped = value.strip(rules.TEXT_WHITESPACE)
    # What Python keeps is what the database accepts; what Python refuses it refuses too.
    assert database_accepts_title(connection, stripped) == (stored is not None)
    if stored is not None:
        assert stored == stripped
    # Raw SQL with surrounding whitespace of any kind is refused.
    if value != stripped:
        assert not database_accepts_title(connection, value)


@pytest.mark.parametrize("character", ["\u202e", "\u2066", "\x07", "\x9b", "\n"])
def test_unprintable_titles_and_tags_are_refused_by_both(
    connection: Connection, character: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        validate(
            ProductInput, {"handle": "x", "title": f"a{character}b", "tags": [f"t{character}x"]}
        )
    assert set(caught.value.problems) == {"title", "tags[0]"}
    with pytest.raises(ValidationError):
        validate(ProductChanges, {"title": f"a{character}b"})
    for title, tags in ((f"a{character}b", []), ("ok", [f"t{character}"])):
        with (
            pytest.raises(psycopg.errors.CheckViolation) as refused,
            connection.transaction(),
        ):
            connection.execute(
                "INSERT INTO products (handle, title, tags) VALUES ('u', %s, %s)", (title, tags)
            )
        translated = translate(refused.value)
        assert translated is not None and "control characters" in str(translated)


def test_money_is_refused_not_rounded(connection: Connection) -> None:
    product = connection.execute(
        "INSERT INTO products (handle, title) VALUES ('m', 'M') RETURNING id"
    ).fetchone()
    assert product is not None
    with pytest.raises(psycopg.errors.CheckViolation):
        connection.execute(
            "INSERT INTO product_variants (product_id, sku, title, license_type, price, seats)"
            " VALUES (%s, 'M-1', 'M', 'personal', 19.999, 1)",
            (product[0],),
        )
    connection.rollback()
    # Every money column is plain numeric (what rules.py says), so nothing rounds silently.
    typmods = connection.execute(
        "SELECT table_name, column_name, numeric_precision, numeric_scale"
        " FROM information_schema.columns WHERE table_schema = 'public'"
        " AND column_name IN ('price', 'unit_price', 'amount')"
    ).fetchall()
    assert typmods and all(row[2] is None and row[3] is None for row in typmods), typmods


def _product(connection: Connection, status: str, **variant: Any) -> Any:
    row = connection.execute(
        "INSERT INTO products (handle, title, status) VALUES ('s', 'S', %s) RETURNING id", (status,)
    ).fetchone()
    assert row is not None
    if variant:
        connection.execute(
            "INSERT INTO product_variants (product_id, sku, title, license_type, price, seats,"
            " available_for_sale) VALUES (%s, 'S-1', 'S', 'personal', 5, 1, %s)",
            (row[0], variant["available_for_sale"]),
        )
    return row[0]


@pytest.mark.parametrize(
    "make",
    [
        lambda c: _product(c, "active"),
        lambda c: _product(c, "active", available_for_sale=False),
        lambda c: c.execute(
            "UPDATE product_variants SET available_for_sale = false WHERE product_id = %s",
            (_product(c, "active", available_for_sale=True),),
        ),
        lambda c: c.execute(
            "DELETE FROM product_variants WHERE product_id = %s",
            (_product(c, "active", available_for_sale=True),),
        ),
        lambda c: c.execute(
            "UPDATE products SET status = 'active' WHERE id = %s", (_product(c, "draft"),)
        ),
    ],
    ids=["no variant", "none for sale", "last taken off sale", "last deleted", "activated empty"],
)
def test_an_active_product_always_has_a_variant_for_sale(connection: Connection, make: Any) -> None:
    make(connection)
    with pytest.raises(psycopg.errors.CheckViolation) as refused:
        connection.commit()
    translated = translate(refused.value)
    assert translated is not None and "variants" in str(translated)


def test_a_sellable_or_draft_product_commits(connection: Connection) -> None:
    _product(connection, "active", available_for_sale=True)
    connection.commit()
    connection.execute("DELETE FROM products")  # the whole product goes: nothing left to sell
    connection.commit()


def test_python_refuses_an_active_product_without_a_variant_for_sale() -> None:
    with pytest.raises(ValidationError) as caught:
        validate(ProductInput, {"handle": "x", "title": "X", "status": "active"})
    assert "variant available for sale" in caught.value.problems["variants"]
    variant = {"sku": "X-1", "title": "X", "license_type": "personal", "price": Decimal("5")}
    validate(ProductInput, {"handle": "x", "title": "X", "status": "active", "variants": [variant]})
