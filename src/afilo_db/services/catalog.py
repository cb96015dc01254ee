"""Catalog: the product page (one statement), listings with keyset pagination, collections,
price quotes, and validated create/update of products with their variants and tiers."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import Select, exists, func, select, text, tuple_
from sqlalchemy.orm import Session

from afilo_db import rules
from afilo_db.errors import NotFoundError, ValidationError
from afilo_db.models import (
    Product,
    ProductCollection,
    ProductCollectionProduct,
    ProductPricingTier,
    ProductVariant,
)
from afilo_db.services.pagination import decode_cursor, encode_cursor
from afilo_db.services.pricing import priced
from afilo_db.services.transaction import flush
from afilo_db.validation import checks, validate
from afilo_db.validation.schemas import (
    PriceQuoteInput,
    ProductChanges,
    ProductFilters,
    ProductInput,
    TieredLicenseInput,
    VariantChanges,
)

# The seed's `findUnique({ where: { handle }, include: { variants: { where: { availableForSale:
# true }, orderBy: { price: 'asc' } } } })`, as one statement: the handle's unique index finds the
# product, (product_id, price) gives its variants already ordered. Written for psycopg (%s) and
# sent as it is, so that psycopg prepares it on the server after a couple of runs.
PRODUCT_BY_HANDLE_SQL = """
SELECT json_build_object(
  'id', p.id, 'handle', p.handle, 'title', p.title, 'description', p.description,
  'tags', p.tags, 'tech_stack', p.tech_stack, 'status', p.status,
  'stripe_product_id', p.stripe_product_id, 'included_in_tier', p.included_in_tier,
  'created_at', p.created_at, 'updated_at', p.updated_at,
  'variants', coalesce((
    SELECT json_agg(json_build_object(
      'id', v.id, 'sku', v.sku, 'title', v.title, 'license_type', v.license_type,
      'price', v.price, 'currency', v.currency, 'stripe_price_id', v.stripe_price_id,
      'available_for_sale', v.available_for_sale, 'seats', v.seats,
      'duration_days', v.duration_days, 'redistribution', v.redistribution
    ) ORDER BY v.price, v.id)
    FROM product_variants v
    WHERE v.product_id = p.id AND v.available_for_sale
  ), '[]'::json)
)
FROM products p
WHERE p.handle = %s
"""


def product_by_handle(session: Session, handle: str) -> dict[str, Any] | None:
    """The product with its variants available for sale, cheapest first; None if no such handle.

    One statement, one round trip: the product and its variants come back as one JSON document.
    It goes straight to the session's psycopg connection, in the session's transaction: on the
    hottest path SQLAlchemy's execution machinery costs more than the query (see bench/catalog.py).
    """
    connection = session.connection()
    driver = connection.connection.driver_connection
    if isinstance(driver, psycopg.Connection):
        row = driver.execute(PRODUCT_BY_HANDLE_SQL, (handle,)).fetchone()
    else:  # inside AsyncSession.run_sync the driver is async: SQLAlchemy adapts the call
        row = connection.exec_driver_sql(PRODUCT_BY_HANDLE_SQL, (handle,)).first()
    return None if row is None else dict(row[0])


# -- listings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductSummary:
    id: uuid.UUID
    handle: str
    title: str
    status: str
    tags: list[str]
    tech_stack: list[str]
    from_price: Decimal | None
    created_at: datetime


@dataclass(frozen=True)
class Page:
    items: list[ProductSummary]
    next_cursor: str | None
    """Pass as `after` for the next page; None on the last page."""


def _variant_filter(filters: ProductFilters) -> Any | None:
    conditions = []
    if filters.license_type is not None:
        conditions.append(ProductVariant.license_type == filters.license_type)
    if filters.min_price is not None:
        conditions.append(ProductVariant.price >= filters.min_price)
    if filters.max_price is not None:
        conditions.append(ProductVariant.price <= filters.max_price)
    if not conditions:
        return None
    return exists().where(
        ProductVariant.product_id == Product.id, ProductVariant.available_for_sale, *conditions
    )


def list_products(
    session: Session,
    filters: ProductFilters | Mapping[str, Any] | None = None,
    *,
    limit: int = 24,
    after: str | None = None,
) -> Page:
    """Products newest first, filtered, a page at a time.

    Keyset pagination on (created_at, id): a page costs the same at page 1 and page 1,000, and
    one extra row tells whether a next page exists (COUNT(*) would scan every match).
    """
    if not 1 <= limit <= 200:
        raise ValidationError({"limit": "must be from 1 to 200"})
    chosen = validate(ProductFilters, filters or {})
    from_price = (
        select(func.min(ProductVariant.price))
        .where(ProductVariant.product_id == Product.id, ProductVariant.available_for_sale)
        .scalar_subquery()
    )
    query: Select[Any] = select(
        Product.id,
        Product.handle,
        Product.title,
        Product.status,
        Product.tags,
        Product.tech_stack,
        from_price.label("from_price"),
        Product.created_at,
    )
    if chosen.status is not None:
        query = query.where(Product.status == chosen.status)
    if chosen.tags:
        query = query.where(Product.tags.contains(list(chosen.tags)))
    if chosen.tech_stack:
        query = query.where(Product.tech_stack.contains(list(chosen.tech_stack)))
    if chosen.collection is not None:
        query = query.where(
            exists()
            .where(ProductCollectionProduct.product_id == Product.id)
            .where(ProductCollectionProduct.collection_id == ProductCollection.id)
            .where(ProductCollection.handle == chosen.collection)
        )
    variant_condition = _variant_filter(chosen)
    if variant_condition is not None:
        query = query.where(variant_condition)
    if after is not None:
        created_at, product_id = decode_cursor(after, "after")
        query = query.where(tuple_(Product.created_at, Product.id) < (created_at, product_id))
    query = query.order_by(Product.created_at.desc(), Product.id.desc()).limit(limit + 1)
    rows = session.execute(query).all()
    items = [ProductSummary(*row) for row in rows[:limit]]
    next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None
    return Page(items=items, next_cursor=next_cursor)


COLLECTION_SQL = """
SELECT json_build_object(
  'id', c.id, 'handle', c.handle, 'title', c.title, 'description', c.description,
  'products', coalesce((
    SELECT json_agg(json_build_object(
      'id', p.id, 'handle', p.handle, 'title', p.title, 'position', m.position
    ) ORDER BY m.position)
    FROM product_collection_products m JOIN products p ON p.id = m.product_id
    WHERE m.collection_id = c.id AND p.status = 'active'
  ), '[]'::json)
)
FROM product_collections c
WHERE c.handle = :handle
"""


def collection_by_handle(session: Session, handle: str) -> dict[str, Any]:
    """A collection with its active products in their order, in one statement."""
    row = session.execute(text(COLLECTION_SQL), {"handle": handle}).first()
    if row is None:
        raise NotFoundError(f"no collection with handle {handle!r}")
    return dict(row[0])


# -- prices --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceQuote:
    variant_id: uuid.UUID
    quantity: int
    unit_price: Decimal
    total: Decimal
    currency: str
    tier: tuple[int, int | None] | None
    """The volume tier that priced it, as (min, max); None when the variant has no tiers."""


def quote_price(session: Session, variant_id: uuid.UUID | str, quantity: int) -> PriceQuote:
    """What `quantity` of a variant costs: the unit price of the tier that covers the quantity."""
    request = validate(PriceQuoteInput, {"variant_id": variant_id, "quantity": quantity})
    variant = session.get(ProductVariant, request.variant_id)
    if variant is None:
        raise NotFoundError(f"no variant with id {request.variant_id}")
    if variant.license_type not in rules.TIERED_LICENSE_TYPES and request.quantity != 1:
        raise ValidationError(
            {"quantity": f"a {variant.license_type} licence is sold one at a time: quantity is 1"}
        )
    unit_price_sql, tier_join = priced(":quantity")
    unit_price, low, high = session.execute(
        text(
            f"SELECT {unit_price_sql}, lower(t.quantity_range), upper(t.quantity_range) - 1"
            f" FROM product_variants v {tier_join} WHERE v.id = :variant_id"
        ),
        {"variant_id": variant.id, "quantity": request.quantity},
    ).one()
    return PriceQuote(
        variant_id=variant.id,
        quantity=request.quantity,
        unit_price=unit_price,
        total=unit_price * request.quantity,
        currency=variant.currency,
        tier=None if low is None else (low, high),
    )


# -- writes --------------------------------------------------------------------------------


def create_product(session: Session, data: ProductInput | Mapping[str, Any]) -> Product:
    """A product with its variants and their tiers, validated first, flushed together; the
    caller's transaction makes it all or nothing."""
    product_input = validate(ProductInput, data)
    product = Product(
        **product_input.model_dump(exclude={"variants", "tags", "tech_stack"}),
        tags=list(product_input.tags),
        tech_stack=list(product_input.tech_stack),
    )
    for variant_input in product_input.variants:
        variant = ProductVariant(**variant_input.model_dump(exclude={"tiers"}))
        variant.pricing_tiers = [
            ProductPricingTier(license_type=variant_input.license_type, **tier.model_dump())
            for tier in variant_input.tiers
        ]
        product.variants.append(variant)
    session.add(product)
    flush(session)
    return product


def _get(session: Session, model: type[Any], entity_id: uuid.UUID | str, noun: str) -> Any:
    try:
        key = entity_id if isinstance(entity_id, uuid.UUID) else uuid.UUID(str(entity_id))
    except ValueError:
        raise ValidationError({"id": "must be a UUID"}) from None
    found = session.get(model, key)
    if found is None:
        raise NotFoundError(f"no {noun} with id {key}")
    return found


def update_product(
    session: Session, product_id: uuid.UUID | str, changes: ProductChanges | Mapping[str, Any]
) -> Product:
    """Change a product's own fields; fields not given stay as they are."""
    update = validate(ProductChanges, changes)
    product: Product = _get(session, Product, product_id, "product")
    for field in update.model_fields_set:
        value = getattr(update, field)
        setattr(product, field, list(value) if isinstance(value, tuple) else value)
    flush(session)
    return product


def update_variant(
    session: Session, variant_id: uuid.UUID | str, changes: VariantChanges | Mapping[str, Any]
) -> ProductVariant:
    """Change a variant; the licence rules are checked on the variant as it would be after."""
    update = validate(VariantChanges, changes)
    variant: ProductVariant = _get(session, ProductVariant, variant_id, "variant")
    merged = {field: getattr(variant, field) for field in ("seats", "redistribution")}
    merged.update({field: getattr(update, field) for field in update.model_fields_set})
    problem = checks.license_terms_problem(
        variant.license_type, merged["seats"], bool(merged["redistribution"])
    )
    if problem is not None:
        raise ValidationError({"seats": problem})
    for field in update.model_fields_set:
        setattr(variant, field, getattr(update, field))
    flush(session)
    return variant


def replace_tiers(
    session: Session, variant_id: uuid.UUID | str, tiers: list[Mapping[str, Any]]
) -> list[ProductPricingTier]:
    """Replace a variant's volume tiers with a new contiguous set (checked now and at commit)."""
    variant: ProductVariant = _get(session, ProductVariant, variant_id, "variant")
    checked = validate(TieredLicenseInput, {"license_type": variant.license_type, "tiers": tiers})
    # The old tiers go first: the unit of work would insert the new ones before deleting, and
    # the EXCLUDE constraint refuses overlaps at once.
    for tier in list(variant.pricing_tiers):
        session.delete(tier)
    flush(session)
    variant.pricing_tiers = [
        ProductPricingTier(license_type=variant.license_type, **tier.model_dump())
        for tier in checked.tiers
    ]
    flush(session)
    return variant.pricing_tiers
