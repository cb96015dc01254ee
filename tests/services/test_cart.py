"""The cart: merge on add, change, remove, totals priced by volume tier."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from afilo_db.errors import ConflictError, NotFoundError, ValidationError
from afilo_db.models import UserProfile
from afilo_db.services import cart, catalog
from afilo_db.services.transaction import unit_of_work
from tests.services.test_catalog import product_data


@pytest.fixture
def shop(engine: Engine) -> dict[str, uuid.UUID]:
    with unit_of_work(engine) as session:
        product = catalog.create_product(session, product_data())
        user = UserProfile(clerk_user_id="user_cartowner1", email="owner@example.com")
        session.add(user)
        session.flush()
        return {
            "user": user.id,
            "personal": product.variants[0].id,
            "team": product.variants[1].id,
            "business": product.variants[2].id,
        }


def test_add_merges_quantities_and_totals(engine: Engine, shop: dict[str, uuid.UUID]) -> None:
    with unit_of_work(engine) as session:
        assert cart.add_to_cart(session, shop["user"], shop["business"], 4) == 4
        assert cart.add_to_cart(session, shop["user"], shop["business"], 8) == 12
        cart.add_to_cart(session, shop["user"], shop["personal"])
    with unit_of_work(engine) as session:
        contents = cart.cart_contents(session, shop["user"])
    lines = {line.sku: line for line in contents.lines}
    assert lines["NOVA-KIT-BIZ"].quantity == 12
    assert lines["NOVA-KIT-BIZ"].unit_price == Decimal("9.00")  # the 10-49 tier
    assert lines["NOVA-KIT-BIZ"].line_total == Decimal("108.00")
    assert contents.totals == {"USD": Decimal("137.00")}


def test_change_and_remove(engine: Engine, shop: dict[str, uuid.UUID]) -> None:
    with unit_of_work(engine) as session:
        cart.add_to_cart(session, shop["user"], shop["team"])
        cart.set_cart_quantity(session, shop["user"], shop["team"], 3)
    with unit_of_work(engine) as session:
        assert cart.cart_contents(session, shop["user"]).totals == {"USD": Decimal("237.00")}
        cart.remove_from_cart(session, shop["user"], shop["team"])
        assert cart.cart_contents(session, shop["user"]).lines == []
        with pytest.raises(NotFoundError):
            cart.remove_from_cart(session, shop["user"], shop["team"])
        with pytest.raises(NotFoundError):
            cart.set_cart_quantity(session, shop["user"], shop["team"], 2)


def test_bad_cart_input(engine: Engine, shop: dict[str, uuid.UUID]) -> None:
    with unit_of_work(engine) as session:
        with pytest.raises(ValidationError) as caught:
            cart.add_to_cart(session, shop["user"], "nope", 0)
        assert set(caught.value.problems) == {"variant_id", "quantity"}
        with pytest.raises(NotFoundError):
            cart.add_to_cart(session, shop["user"], uuid.uuid4())
        catalog.update_variant(session, shop["team"], {"available_for_sale": False})
        with pytest.raises(ConflictError, match="not for sale"):
            cart.add_to_cart(session, shop["user"], shop["team"])


def test_merging_past_the_limit_is_refused_by_the_database(
    engine: Engine, shop: dict[str, uuid.UUID]
) -> None:
    with unit_of_work(engine) as session:
        cart.add_to_cart(session, shop["user"], shop["business"], 900)
    with pytest.raises(ValidationError) as caught, unit_of_work(engine) as session:
        cart.add_to_cart(session, shop["user"], shop["business"], 200)
    assert "from 1 to 1000" in caught.value.problems["quantity"]
