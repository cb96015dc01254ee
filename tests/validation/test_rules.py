"""Each rule rejects bad input with a message naming the field, and the database rejects the same
value sent with raw SQL; everything wrong is reported at once."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import errors
from sqlalchemy import CheckConstraint
from sqlalchemy.dialects.postgresql import ExcludeConstraint

from afilo_db.errors import ValidationError
from afilo_db.models import Base
from afilo_db.validation import validate
from afilo_db.validation.database_errors import CONSTRAINT_RULES
from afilo_db.validation.schemas import ProductInput, UserProfileInput

VALID_VARIANT = {
    "sku": "KIT-PER",
    "title": "Personal",
    "license_type": "personal",
    "price": "19.00",
}
VALID_PRODUCT = {"handle": "kit", "title": "Kit", "variants": [VALID_VARIANT]}
VALID_USER = {"clerk_user_id": "user_abcdefgh", "email": "ada@example.com"}

# (input overrides on a variant, the field path in the error, the raw SQL column and value,
#  the constraint the database names)
VARIANT_CASES = [
    ({"price": "-5.00"}, "variants[0].price", ("price", "-5.00"), "ck_product_variants_price_range"),
    ({"price": "5.001"}, "variants[0].price", ("price", "5.001"), "ck_product_variants_price_scale"),
    ({"currency": "XBT"}, "variants[0].currency", ("currency", "XBT"), "ck_product_variants_currency_valid"),
    ({"stripe_price_id": "price_1-2"}, "variants[0].stripe_price_id", ("stripe_price_id", "price_1-2"), "ck_product_variants_stripe_price_id_format"),
    ({"sku": "kit per"}, "variants[0].sku", ("sku", "kit per"), "ck_product_variants_sku_format"),
    ({"seats": 3}, "variants[0].seats", ("seats", 3), "ck_product_variants_seats_match_license"),
    ({"duration_days": 0}, "variants[0].duration_days", ("duration_days", 0), "ck_product_variants_duration_days_range"),
    ({"license_type": "lifetime"}, "variants[0].license_type", ("license_type", "lifetime"), "ck_product_variants_license_type_valid"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "path", "column_value", "constraint"), VARIANT_CASES)
def test_variant_rule_in_python_and_in_the_database(
    connection: psycopg.Connection[tuple[object, ...]],
    overrides: dict[str, Any],
    path: str,
    column_value: tuple[str, Any],
    constraint: str,
) -> None:
    with pytest.raises(ValidationError) as caught:
        validate(ProductInput, {**VALID_PRODUCT, "variants": [{**VALID_VARIANT, **overrides}]})
    assert path in caught.value.problems
    field = path.rsplit(".", 1)[1]
    # The database's error translates to the same field.
    assert CONSTRAINT_RULES[constraint][0] == field

    product = connection.execute(
        "INSERT INTO products (handle, title) VALUES ('kit', 'Kit') RETURNING id"
    ).fetchone()
    assert product is not None
    row = {"product_id": product[0], "sku": "KIT-PER", "title": "P", "license_type": "personal",
           "price": "19.00", "seats": 1}  # fmt: skip
    column, value = column_value
    row[column] = value
    with pytest.raises(errors.CheckViolation) as raw:
        connection.execute(
            f"INSERT INTO product_variants ({', '.join(row)}) VALUES"
            f" ({', '.join(['%s'] * len(row))})",
            list(row.values()),
        )
    assert raw.value.diag.constraint_name == constraint


@pytest.mark.parametrize(
    ("overrides", "path", "constraint"),
    [
        ({"clerk_user_id": "usr_123"}, "clerk_user_id", "ck_user_profiles_clerk_user_id_format"),
        ({"email": "not-an-email"}, "email", "ck_user_profiles_email_format"),
        ({"subscription_tier": "gold"}, "subscription_tier", "ck_user_profiles_tier_valid"),
        ({"stripe_customer_id": "cus_1-2"}, "stripe_customer_id", "ck_user_profiles_stripe_customer_id_format"),
    ],
)  # fmt: skip
def test_user_rule_in_python_and_in_the_database(
    connection: psycopg.Connection[tuple[object, ...]],
    overrides: dict[str, str],
    path: str,
    constraint: str,
) -> None:
    with pytest.raises(ValidationError) as caught:
        validate(UserProfileInput, {**VALID_USER, **overrides})
    assert list(caught.value.problems) == [path]
    row = {**VALID_USER, **overrides}
    with pytest.raises(errors.CheckViolation) as raw:
        connection.execute(
            f"INSERT INTO user_profiles ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})",
            list(row.values()),
        )
    assert raw.value.diag.constraint_name == constraint


def test_every_problem_is_reported_at_once() -> None:
    bad = {
        "handle": "Not A Slug",
        "title": "",
        "status": "live",
        "variants": [
            VALID_VARIANT,
            {**VALID_VARIANT, "sku": "KIT-TEAM", "license_type": "team", "price": 1.5, "seats": 1},
            {**VALID_VARIANT, "sku": "KIT-BIZ", "license_type": "business", "seats": 10,
             "tiers": [{"min_quantity": 1, "max_quantity": 5, "unit_price": "9.00"},
                       {"min_quantity": 8, "unit_price": "8.00"}]},
        ],
        "colour": "blue",
    }  # fmt: skip
    with pytest.raises(ValidationError) as caught:
        validate(ProductInput, bad)
    problems = caught.value.problems
    assert set(problems) == {
        "handle",
        "title",
        "status",
        "variants[1].price",
        "variants[1].seats",
        "variants[2].tiers",
        "colour",
    }
    assert "never a float" in problems["variants[1].price"]
    assert "from 2 to 25 seats" in problems["variants[1].seats"]
    assert "nothing covers 6-7" in problems["variants[2].tiers"]
    assert problems["colour"] == "is not a known field"


def test_emails_are_normalized() -> None:
    user = validate(UserProfileInput, {**VALID_USER, "email": "  Ada.Lovelace@Bücher.Example "})
    assert user.email == "ada.lovelace@xn--bcher-kva.example"


@pytest.mark.parametrize("value", ["12", "zzzz-not-a-uuid", "0194f0b2-7c1e-7d3a-9f00"])
def test_malformed_uuid_is_a_validation_error(value: str) -> None:
    from afilo_db.validation.schemas import CartLineInput

    with pytest.raises(ValidationError) as caught:
        validate(CartLineInput, {"variant_id": value})
    assert "must be a UUID" in caught.value.problems["variant_id"]


def test_every_constraint_has_words() -> None:
    named = {
        constraint.name
        for table in Base.metadata.tables.values()
        for constraint in table.constraints
        if isinstance(constraint, CheckConstraint | ExcludeConstraint)
    }
    # the deferred constraint triggers
    named |= {"ck_product_pricing_tiers_contiguous", "ck_products_active_has_variant_for_sale"}
    assert named == set(CONSTRAINT_RULES)
