"""The database itself refuses what must never be stored, whatever SQL is sent."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from psycopg import errors

Connection = psycopg.Connection[tuple[object, ...]]


@pytest.fixture
def product_id(connection: Connection) -> object:
    row = connection.execute(
        "INSERT INTO products (handle, title, status) VALUES ('probe-kit', 'Probe kit', 'draft')"
        " RETURNING id"
    ).fetchone()
    assert row is not None
    return row[0]


def insert_variant(connection: Connection, product_id: object, **overrides: object) -> object:
    values: dict[str, object] = {
        "product_id": product_id,
        "sku": "PROBE-BUS",
        "title": "Business licence",
        "license_type": "business",
        "price": "49.00",
        "seats": 1,
    }
    values.update(overrides)
    columns = ", ".join(values)
    placeholders = ", ".join(["%s"] * len(values))
    row = connection.execute(
        f"INSERT INTO product_variants ({columns}) VALUES ({placeholders}) RETURNING id",
        list(values.values()),
    ).fetchone()
    assert row is not None
    return row[0]


def insert_tier(connection: Connection, variant_id: object, low: int, high: int | None) -> None:
    connection.execute(
        "INSERT INTO product_pricing_tiers (variant_id, license_type, min_quantity, max_quantity,"
        " unit_price) VALUES (%s, 'business', %s, %s, '10.00')",
        (variant_id, low, high),
    )


def rejected(
    connection: Connection, action: Callable[[], object], error: type[Exception]
) -> Exception:
    """Run `action` in a savepoint and return the error it must raise."""
    with pytest.raises(error) as caught, connection.transaction():
        action()
    return caught.value


@pytest.mark.parametrize(
    ("overrides", "constraint"),
    [
        ({"price": "-1.00"}, "ck_product_variants_price_range"),
        ({"price": "0"}, "ck_product_variants_price_range"),
        ({"price": "10.001"}, "ck_product_variants_price_scale"),
        ({"currency": "XYZ"}, "ck_product_variants_currency_valid"),
        ({"stripe_price_id": "prod_abcdefgh"}, "ck_product_variants_stripe_price_id_format"),
        ({"stripe_price_id": "price_"}, "ck_product_variants_stripe_price_id_format"),
        ({"sku": "lower-case"}, "ck_product_variants_sku_format"),
        ({"license_type": "personal", "seats": 5}, "ck_product_variants_seats_match_license"),
        ({"license_type": "team", "seats": 1}, "ck_product_variants_seats_match_license"),
        ({"license_type": "enterprise", "seats": 10}, "ck_product_variants_seats_match_license"),
        ({"redistribution": True}, "ck_product_variants_seats_match_license"),
        ({"license_type": "gift"}, "ck_product_variants_license_type_valid"),
    ],
)
def test_variant_constraints(
    connection: Connection, product_id: object, overrides: dict[str, object], constraint: str
) -> None:
    error = rejected(
        connection,
        lambda: insert_variant(connection, product_id, **overrides),
        errors.CheckViolation,
    )
    assert isinstance(error, errors.CheckViolation)
    assert error.diag.constraint_name == constraint


@pytest.mark.parametrize(
    ("sql", "constraint"),
    [
        (
            "INSERT INTO products (handle, title, stripe_product_id) VALUES ('a-b', 'A', 'prod_x-y')",
            "ck_products_stripe_product_id_format",
        ),
        (
            "INSERT INTO products (handle, title) VALUES ('Not A Slug', 'A')",
            "ck_products_handle_format",
        ),
        (
            "INSERT INTO user_profiles (clerk_user_id, email) VALUES ('usr_abcdefgh', 'a@b.co')",
            "ck_user_profiles_clerk_user_id_format",
        ),
        (
            "INSERT INTO user_profiles (clerk_user_id, email, stripe_customer_id)"
            " VALUES ('user_abcdefgh', 'a@b.co', 'cus-abcdefgh')",
            "ck_user_profiles_stripe_customer_id_format",
        ),
        (
            "INSERT INTO user_profiles (clerk_user_id, email) VALUES ('user_abcdefgh', 'A@B.co')",
            "ck_user_profiles_email_format",
        ),
    ],
)
def test_identifier_formats(connection: Connection, sql: str, constraint: str) -> None:
    error = rejected(connection, lambda: connection.execute(sql), errors.CheckViolation)
    assert isinstance(error, errors.CheckViolation)
    assert error.diag.constraint_name == constraint


def test_email_is_unique_case_insensitively(connection: Connection) -> None:
    connection.execute(
        "INSERT INTO user_profiles (clerk_user_id, email) VALUES ('user_aaaaaaaa', 'ada@example.com')"
    )
    # The check refuses an upper-case email; the unique index would catch one stored raw anyway.
    error = rejected(
        connection,
        lambda: connection.execute(
            "INSERT INTO user_profiles (clerk_user_id, email)"
            " VALUES ('user_bbbbbbbb', 'ada@example.com')"
        ),
        errors.UniqueViolation,
    )
    assert isinstance(error, errors.UniqueViolation)
    assert error.diag.constraint_name == "uq_user_profiles_email"


def test_overlapping_tiers_are_refused(connection: Connection, product_id: object) -> None:
    variant = insert_variant(connection, product_id)
    insert_tier(connection, variant, 1, 9)
    error = rejected(
        connection, lambda: insert_tier(connection, variant, 5, 20), errors.ExclusionViolation
    )
    assert isinstance(error, errors.ExclusionViolation)
    assert error.diag.constraint_name == "ex_product_pricing_tiers_no_overlap"


def test_contiguous_tiers_commit(connection: Connection, product_id: object) -> None:
    variant = insert_variant(connection, product_id)
    insert_tier(connection, variant, 10, None)  # any order inside the transaction
    insert_tier(connection, variant, 1, 9)
    connection.commit()
    count = connection.execute(
        "SELECT count(*) FROM product_pricing_tiers WHERE variant_id = %s", (variant,)
    ).fetchone()
    assert count == (2,)


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        (((1, 9), (20, None)), "expected a tier starting at 10, found one starting at 20"),
        (((2, None),), "expected a tier starting at 1, found one starting at 2"),
    ],
)
def test_gaps_between_tiers_are_refused_at_commit(
    connection: Connection,
    product_id: object,
    tiers: tuple[tuple[int, int | None], ...],
    message: str,
) -> None:
    variant = insert_variant(connection, product_id)
    for low, high in tiers:
        insert_tier(connection, variant, low, high)
    with pytest.raises(errors.CheckViolation, match=message) as caught:
        connection.commit()
    assert caught.value.diag.constraint_name == "ck_product_pricing_tiers_contiguous"


def test_deleting_a_middle_tier_is_refused(connection: Connection, product_id: object) -> None:
    variant = insert_variant(connection, product_id)
    for low, high in ((1, 9), (10, 49), (50, None)):
        insert_tier(connection, variant, low, high)
    connection.commit()
    connection.execute("DELETE FROM product_pricing_tiers WHERE min_quantity = 10")
    with pytest.raises(errors.CheckViolation, match="expected a tier starting at 10"):
        connection.commit()


def test_tiers_only_for_licence_types_sold_by_quantity(
    connection: Connection, product_id: object
) -> None:
    personal = insert_variant(
        connection, product_id, sku="PROBE-PER", license_type="personal", seats=1
    )
    error = rejected(
        connection,
        lambda: connection.execute(
            "INSERT INTO product_pricing_tiers (variant_id, license_type, min_quantity,"
            " unit_price) VALUES (%s, 'personal', 1, '5.00')",
            (personal,),
        ),
        errors.CheckViolation,
    )
    assert isinstance(error, errors.CheckViolation)
    assert error.diag.constraint_name == "ck_product_pricing_tiers_license_type_tiered"
    # A tier cannot claim a licence type its variant does not have.
    mismatch = rejected(
        connection,
        lambda: connection.execute(
            "INSERT INTO product_pricing_tiers (variant_id, license_type, min_quantity,"
            " unit_price) VALUES (%s, 'business', 1, '5.00')",
            (personal,),
        ),
        errors.ForeignKeyViolation,
    )
    assert isinstance(mismatch, errors.ForeignKeyViolation)


def test_variant_with_tiers_cannot_become_personal(
    connection: Connection, product_id: object
) -> None:
    variant = insert_variant(connection, product_id)
    insert_tier(connection, variant, 1, None)
    error = rejected(
        connection,
        lambda: connection.execute(
            "UPDATE product_variants SET license_type = 'personal' WHERE id = %s", (variant,)
        ),
        errors.CheckViolation,
    )
    assert isinstance(error, errors.CheckViolation)


def test_cart_quantity_must_be_positive(connection: Connection, product_id: object) -> None:
    variant = insert_variant(connection, product_id)
    user = connection.execute(
        "INSERT INTO user_profiles (clerk_user_id, email) VALUES ('user_cccccccc', 'c@example.com')"
        " RETURNING id"
    ).fetchone()
    assert user is not None
    error = rejected(
        connection,
        lambda: connection.execute(
            "INSERT INTO cart_items (user_id, variant_id, quantity) VALUES (%s, %s, 0)",
            (user[0], variant),
        ),
        errors.CheckViolation,
    )
    assert isinstance(error, errors.CheckViolation)
    assert error.diag.constraint_name == "ck_cart_items_quantity_range"


def variant_status(connection: Connection, variant: object) -> object:
    row = connection.execute(
        "SELECT product_status FROM product_variants WHERE id = %s", (variant,)
    ).fetchone()
    assert row is not None
    return row[0]


def test_a_variant_carries_its_products_status(connection: Connection, product_id: object) -> None:
    """What the application's policy on variants reads (0011_variant_product_status): filled in
    when a write leaves it out, and changed with the product's."""
    variant = insert_variant(connection, product_id)
    assert variant_status(connection, variant) == "draft"
    connection.execute("UPDATE products SET status = 'active' WHERE id = %s", (product_id,))
    assert variant_status(connection, variant) == "active"
    other = connection.execute(
        "INSERT INTO products (handle, title, status) VALUES ('other-kit', 'Other kit', 'archived')"
        " RETURNING id"
    ).fetchone()
    assert other is not None
    connection.execute(
        "UPDATE product_variants SET product_id = %s WHERE id = %s", (other[0], variant)
    )
    assert variant_status(connection, variant) == "archived"
    connection.execute("DELETE FROM products WHERE id = %s", (other[0],))
    assert connection.execute(
        "SELECT count(*) FROM product_variants WHERE id = %s", (variant,)
    ).fetchone() == (0,)
    connection.rollback()  # the first product, active, is left with no variant for sale


@pytest.mark.parametrize(
    "write",
    [
        "INSERT INTO product_variants (product_id, product_status, sku, title, license_type,"
        " price, seats) VALUES (%(product)s, 'active', 'PROBE-PER', 'P', 'personal', '9.00', 1)",
        "INSERT INTO product_variants (product_id, sku, title, license_type, price, seats)"
        " VALUES (gen_random_uuid(), 'PROBE-PER', 'P', 'personal', '9.00', 1)",
        "UPDATE product_variants SET product_status = 'active' WHERE id = %(variant)s",
        "UPDATE product_variants SET product_id = gen_random_uuid() WHERE id = %(variant)s",
    ],
    ids=["another-status", "no-product", "status-changed-alone", "moved-to-no-product"],
)
def test_a_variant_cannot_claim_a_status_its_product_does_not_have(
    connection: Connection, product_id: object, write: str
) -> None:
    variant = insert_variant(connection, product_id)
    error = rejected(
        connection,
        lambda: connection.execute(write, {"product": product_id, "variant": variant}),
        errors.ForeignKeyViolation,
    )
    assert isinstance(error, errors.ForeignKeyViolation)
    assert error.diag.constraint_name == "fk_product_variants_product_id_product_status"
    assert variant_status(connection, variant) == "draft"


@pytest.mark.parametrize(
    "lists",
    [
        "tags = ARRAY['ui', NULL]",
        "tech_stack = ARRAY[NULL]::text[]",
        "tags = ARRAY[ARRAY['ui'], ARRAY['kit']]",
    ],
    ids=["null-tag", "null-tech", "list-of-lists"],
)
def test_tags_and_tech_stack_are_lists_of_text(
    connection: Connection, product_id: object, lists: str
) -> None:
    """The pages type them `list[str]`: an element that is not text made the product unreadable."""
    update = f"UPDATE products SET {lists} WHERE id = %s"
    error = rejected(connection, lambda: connection.execute(update, (product_id,)), errors.Error)
    assert isinstance(error, errors.CheckViolation), error
    assert error.diag.constraint_name == "ck_products_tags_flat_without_nulls"
    connection.execute(
        "UPDATE products SET tags = '{}', tech_stack = ARRAY['python', 'ui'] WHERE id = %s",
        (product_id,),
    )
