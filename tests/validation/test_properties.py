"""Property tests: the Python rule and the database constraint accept exactly the same values."""

from __future__ import annotations

import re
import string
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from afilo_db import rules
from afilo_db.validation import checks
from tests.validation.examples import PROPERTY_EXAMPLES

Connection = psycopg.Connection[tuple[object, ...]]
PROPERTY_SETTINGS = settings(
    max_examples=PROPERTY_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def probe(connection: Connection) -> dict[str, Any]:
    """A product, a business variant and a user to hang probe rows on; committed."""
    product = connection.execute(
        "INSERT INTO products (handle, title) VALUES ('probe', 'Probe') RETURNING id"
    ).fetchone()
    assert product is not None
    variant = connection.execute(
        "INSERT INTO product_variants (product_id, sku, title, license_type, price, seats)"
        " VALUES (%s, 'PROBE', 'Probe', 'business', 10, 1) RETURNING id",
        (product[0],),
    ).fetchone()
    assert variant is not None
    connection.commit()
    return {"product_id": product[0], "variant_id": variant[0]}


def database_accepts(connection: Connection, sql: str, params: tuple[Any, ...]) -> bool:
    """Run `sql` in a savepoint, with deferred constraints checked at once, and roll it back."""
    try:
        with connection.transaction(force_rollback=True):
            connection.execute(sql, params)
            connection.execute("SET CONSTRAINTS ALL IMMEDIATE")
    except (psycopg.errors.IntegrityError, psycopg.errors.DataError):
        return False
    return True


def messy_text(pattern_examples: st.SearchStrategy[str], alphabet: str) -> st.SearchStrategy[str]:
    """Mostly-near-misses: valid values, random strings over a telling alphabet, and mutations."""
    return st.one_of(
        pattern_examples,
        st.text(alphabet=alphabet, max_size=80),
        st.builds(lambda a, b: a + b, pattern_examples, st.text(alphabet=alphabet, max_size=3)),
        st.builds(lambda a, b: b + a, pattern_examples, st.text(alphabet=alphabet, max_size=3)),
    )


SLUG_ALPHABET = string.ascii_letters + string.digits + "-_ .\n"


@PROPERTY_SETTINGS
@given(value=messy_text(st.from_regex(rules.HANDLE_PATTERN, fullmatch=True), SLUG_ALPHABET))
def test_handle(connection: Connection, value: str) -> None:
    accepted = database_accepts(
        connection,
        "INSERT INTO products (handle, title) VALUES (%s, 'x')",
        (value.replace("\x00", ""),),
    )
    assert accepted == (checks.handle_problem(value.replace("\x00", "")) is None)


@PROPERTY_SETTINGS
@given(value=messy_text(st.from_regex(rules.SKU_PATTERN, fullmatch=True), SLUG_ALPHABET))
def test_sku(connection: Connection, probe: dict[str, Any], value: str) -> None:
    accepted = database_accepts(
        connection,
        "INSERT INTO product_variants (product_id, sku, title, license_type, price, seats)"
        " VALUES (%s, %s, 'x', 'personal', 1, 1)",
        (probe["product_id"], value),
    )
    assert accepted == (checks.sku_problem(value) is None)


@PROPERTY_SETTINGS
@given(
    kind=st.sampled_from(["product", "customer"]),
    value=messy_text(
        st.sampled_from(["prod_", "cus_", "price_", "user_", "prod", "cus-"]).flatmap(
            lambda prefix: st.from_regex(r"[A-Za-z0-9]{0,70}", fullmatch=True).map(
                lambda body: prefix + body
            )
        ),
        string.ascii_letters + string.digits + "_- ",
    ),
)
def test_stripe_ids(connection: Connection, kind: str, value: str) -> None:
    if kind == "product":
        sql = "INSERT INTO products (handle, title, stripe_product_id) VALUES ('h', 'x', %s)"
    else:
        sql = (
            "INSERT INTO user_profiles (clerk_user_id, email, stripe_customer_id)"
            " VALUES ('user_abcdefgh', 'a@example.com', %s)"
        )
    assert database_accepts(connection, sql, (value,)) == (
        checks.stripe_id_problem(kind, value) is None
    )


def check_holds(connection: Connection, check: str, value: str) -> bool:
    """Whether a CHECK expression written for column `v` holds for `value`."""
    row = connection.execute(f"SELECT {check} FROM (SELECT %s::text AS v) AS probe", (value,))
    return bool(row.fetchone() == (True,))


@PROPERTY_SETTINGS
@given(
    kind=st.sampled_from(sorted(rules.STRIPE_ID_PREFIXES)),
    value=messy_text(
        st.sampled_from([f"{prefix}_" for prefix in rules.STRIPE_ID_PREFIXES.values()]).flatmap(
            lambda prefix: st.from_regex(r"[A-Za-z0-9]{0,70}", fullmatch=True).map(
                lambda body: prefix + body
            )
        ),
        string.ascii_letters + string.digits + "_- \n",
    ),
)
def test_every_stripe_id_check_is_its_pattern(
    connection: Connection, kind: str, value: str
) -> None:
    # The CHECK is written without the pattern's bounded repetition (it is 10x faster so).
    in_database = check_holds(connection, rules.sql_stripe_id_check("v", kind), value)
    assert in_database == (re.fullmatch(rules.stripe_id_pattern(kind), value) is not None)


@PROPERTY_SETTINGS
@given(
    value=messy_text(
        st.from_regex(r"[a-z][a-z0-9_.]{0,70}", fullmatch=True),
        string.ascii_lowercase + string.digits + "_.-A \n",
    )
)
def test_the_event_type_check_is_its_pattern(connection: Connection, value: str) -> None:
    in_database = check_holds(connection, rules.sql_event_type_check("v"), value)
    assert in_database == (re.fullmatch(rules.EVENT_TYPE_PATTERN, value) is not None)


@PROPERTY_SETTINGS
@given(
    value=messy_text(
        st.from_regex(r"user_[A-Za-z0-9]{4,70}", fullmatch=True),
        string.ascii_letters + string.digits + "_",
    )
)
def test_clerk_user_id(connection: Connection, value: str) -> None:
    accepted = database_accepts(
        connection,
        "INSERT INTO user_profiles (clerk_user_id, email) VALUES (%s, 'a@example.com')",
        (value,),
    )
    assert accepted == (checks.clerk_user_id_problem(value) is None)


@PROPERTY_SETTINGS
@given(
    value=messy_text(
        st.emails(), string.ascii_letters + string.digits + "@.-_+'!#`~ \t\"(),:;<>[]\\"
    )
)
def test_stored_email(connection: Connection, value: str) -> None:
    accepted = database_accepts(
        connection,
        "INSERT INTO user_profiles (clerk_user_id, email) VALUES ('user_abcdefgh', %s)",
        (value,),
    )
    assert accepted == (checks.stored_email_problem(value) is None)


decimals = st.decimals(allow_nan=True, allow_infinity=True).filter(lambda d: not d.is_snan())
near_prices = st.one_of(
    decimals,
    st.decimals(min_value=Decimal("-1"), max_value=Decimal("1000001"), places=3),
    st.decimals(min_value=Decimal("999999"), max_value=Decimal("1000001"), places=2),
    st.sampled_from(
        [
            Decimal("0"),
            Decimal("-0.00"),
            Decimal("0.01"),
            Decimal("1E+2"),
            Decimal("1000000.00"),
            Decimal("1000000.001"),
            Decimal("1.100"),
        ]
    ),
)


@PROPERTY_SETTINGS
@given(value=near_prices)
def test_price(connection: Connection, probe: dict[str, Any], value: Decimal) -> None:
    accepted = database_accepts(
        connection,
        "INSERT INTO product_variants (product_id, sku, title, license_type, price, seats)"
        " VALUES (%s, 'P-1', 'x', 'personal', %s, 1)",
        (probe["product_id"], value),
    )
    assert accepted == (checks.price_problem(value) is None)


@PROPERTY_SETTINGS
@given(value=st.one_of(st.sampled_from(rules.CURRENCIES), st.text(max_size=4)))
def test_currency(connection: Connection, probe: dict[str, Any], value: str) -> None:
    accepted = database_accepts(
        connection,
        "INSERT INTO product_variants (product_id, sku, title, license_type, price, seats,"
        " currency) VALUES (%s, 'P-1', 'x', 'personal', 1, 1, %s)",
        (probe["product_id"], value.replace("\x00", "")),
    )
    assert accepted == (checks.currency_problem(value.replace("\x00", "")) is None)


@PROPERTY_SETTINGS
@given(
    license_type=st.sampled_from([*rules.LICENSE_TYPES, "gift"]),
    seats=st.one_of(st.none(), st.integers(-2, 1100)),
    redistribution=st.booleans(),
    duration=st.one_of(st.none(), st.integers(-2, 4000)),
)
def test_license_terms(
    connection: Connection,
    probe: dict[str, Any],
    license_type: str,
    seats: int | None,
    redistribution: bool,
    duration: int | None,
) -> None:
    accepted = database_accepts(
        connection,
        "INSERT INTO product_variants (product_id, sku, title, license_type, price, seats,"
        " redistribution, duration_days) VALUES (%s, 'P-1', 'x', %s, 1, %s, %s, %s)",
        (probe["product_id"], license_type, seats, redistribution, duration),
    )
    python_accepts = (
        checks.choice_problem(license_type, rules.LICENSE_TYPES) is None
        and checks.license_terms_problem(license_type, seats, redistribution) is None
        and checks.duration_problem(duration) is None
    )
    assert accepted == python_accepts


tier_bounds = st.lists(
    st.tuples(st.integers(-1, 30), st.one_of(st.none(), st.integers(-1, 40))), max_size=4
)


@PROPERTY_SETTINGS
@given(ranges=tier_bounds, license_type=st.sampled_from(rules.LICENSE_TYPES))
def test_volume_tiers(
    connection: Connection,
    probe: dict[str, Any],
    ranges: list[tuple[int, int | None]],
    license_type: str,
) -> None:
    seats = {"personal": 1, "team": 5, "business": 1, "enterprise": None}[license_type]
    try:
        with connection.transaction(force_rollback=True):
            variant = connection.execute(
                "INSERT INTO product_variants (product_id, sku, title, license_type, price, seats)"
                " VALUES (%s, 'T-1', 'x', %s, 1, %s) RETURNING id",
                (probe["product_id"], license_type, seats),
            ).fetchone()
            assert variant is not None
            for low, high in ranges:
                connection.execute(
                    "INSERT INTO product_pricing_tiers (variant_id, license_type, min_quantity,"
                    " max_quantity, unit_price) VALUES (%s, %s, %s, %s, 1)",
                    (variant[0], license_type, low, high),
                )
            connection.execute("SET CONSTRAINTS ALL IMMEDIATE")
        accepted = True
    except psycopg.errors.IntegrityError:
        accepted = False
    assert accepted == (checks.tiers_problem(license_type, ranges) is None)
