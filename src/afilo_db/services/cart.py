"""The cart: add (merging quantities), change, remove, and the contents priced in one statement
(a hot read: one prepared statement, one round trip, with the user context when asked)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from afilo_db.db import hot
from afilo_db.db.hot import Row
from afilo_db.errors import ConflictError, NotFoundError
from afilo_db.models import CartItem, ProductVariant
from afilo_db.security import read_as_user, reads
from afilo_db.services.transaction import translated_errors
from afilo_db.validation import validate
from afilo_db.validation.schemas import CartLineInput


@dataclass(frozen=True)
class CartLine:
    variant_id: uuid.UUID
    sku: str
    product_title: str
    variant_title: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal
    currency: str


@dataclass(frozen=True)
class Cart:
    lines: list[CartLine]

    @property
    def totals(self) -> dict[str, Decimal]:
        """What the cart costs, per currency, in the order the currencies first appear: lines in
        different currencies never add up to one figure. Empty for an empty cart."""
        totals: dict[str, Decimal] = {}
        for line in self.lines:
            totals[line.currency] = totals.get(line.currency, Decimal("0.00")) + line.line_total
        return totals


def add_to_cart(
    session: Session, user_id: uuid.UUID, variant_id: uuid.UUID | str, quantity: int = 1
) -> int:
    """Add a variant to the user's cart; if it is there already, add to its quantity.
    Returns the quantity now in the cart."""
    line = validate(CartLineInput, {"variant_id": variant_id, "quantity": quantity})
    available = session.execute(
        select(ProductVariant.available_for_sale).where(ProductVariant.id == line.variant_id)
    ).scalar_one_or_none()
    if available is None:
        raise NotFoundError(f"no variant with id {line.variant_id}")
    if not available:
        raise ConflictError(f"variant {line.variant_id} is not for sale")
    statement = (
        insert(CartItem)
        .values(user_id=user_id, variant_id=line.variant_id, quantity=line.quantity)
        .on_conflict_do_update(
            index_elements=[CartItem.user_id, CartItem.variant_id],
            set_={"quantity": CartItem.quantity + line.quantity, "updated_at": func.now()},
        )
        .returning(CartItem.quantity)
    )
    with translated_errors():
        return int(session.execute(statement).scalar_one())


def set_cart_quantity(
    session: Session, user_id: uuid.UUID, variant_id: uuid.UUID | str, quantity: int
) -> None:
    line = validate(CartLineInput, {"variant_id": variant_id, "quantity": quantity})
    changed = session.execute(
        update(CartItem)
        .where(CartItem.user_id == user_id, CartItem.variant_id == line.variant_id)
        .values(quantity=line.quantity, updated_at=func.now())
        .returning(CartItem.id)
    ).first()
    if changed is None:
        raise NotFoundError(f"variant {line.variant_id} is not in the cart")


def remove_from_cart(session: Session, user_id: uuid.UUID, variant_id: uuid.UUID | str) -> None:
    line = validate(CartLineInput, {"variant_id": variant_id})
    removed = session.execute(
        delete(CartItem)
        .where(CartItem.user_id == user_id, CartItem.variant_id == line.variant_id)
        .returning(CartItem.id)
    ).first()
    if removed is None:
        raise NotFoundError(f"variant {line.variant_id} is not in the cart")


CART_SQL = reads.CART.query


def _cart(rows: list[Row]) -> Cart:
    return Cart(lines=[CartLine(*row) for row in rows])


def cart_contents(source: hot.ReadSource, user_id: uuid.UUID) -> Cart:
    """The user's cart, each line priced by volume tier, in the context the caller set (under
    row-level security, the user's own: see `user_cart`). One prepared statement, one round
    trip (`afilo_db.db.hot`)."""
    parameters = {"user_id": user_id}
    return _cart(
        hot.fetch(source, hot.Read(CART_SQL, parameters, planned=reads.CART.call(parameters)))
    )


async def cart_contents_async(source: hot.AsyncReadSource, user_id: uuid.UUID) -> Cart:
    """`cart_contents` for asyncio."""
    parameters = {"user_id": user_id}
    return _cart(
        await hot.fetch_async(
            source, hot.Read(CART_SQL, parameters, planned=reads.CART.call(parameters))
        )
    )


def user_cart(source: hot.ReadSource, clerk_user_id: str) -> Cart:
    """The cart of the user with this Clerk id, read as that user (`as_user`'s context and the
    query in one round trip). In a Session's open transaction the context stays set for the rest
    of it, as `as_user` does; otherwise it ends with the read. Raises ValidationError for a
    malformed id; an unknown id has an empty cart."""
    read = read_as_user(reads.CART_TEMPLATE, reads.CART_ROWS, clerk_user_id)
    planned = reads.USER_CART.call(read.alone_parameters)
    return _cart(hot.fetch(source, read.with_planned(planned)))


async def user_cart_async(source: hot.AsyncReadSource, clerk_user_id: str) -> Cart:
    """`user_cart` for asyncio."""
    read = read_as_user(reads.CART_TEMPLATE, reads.CART_ROWS, clerk_user_id)
    planned = reads.USER_CART.call(read.alone_parameters)
    return _cart(await hot.fetch_async(source, read.with_planned(planned)))
