"""Catalog: the product page, listings with keyset pagination and collections (hot reads: one
prepared statement, one round trip, sync and asyncio), price quotes, and validated create/update
of products with their variants and tiers."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, TypedDict

import msgspec
from sqlalchemy import text
from sqlalchemy.orm import Session

from afilo_db import rules
from afilo_db.db import hot
from afilo_db.db.hot import Row
from afilo_db.errors import NotFoundError, ValidationError
from afilo_db.models import Product, ProductPricingTier, ProductVariant
from afilo_db.services.pagination import (
    decode_cursor,
    decode_position_cursor,
    encode_cursor,
    encode_position_cursor,
)
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
# product, (product_id, price) gives its variants already ordered. Prices travel as JSON strings,
# so that no float ever holds them; the document comes back as text, parsed and typed in one go
# (msgspec, against the declared TypedDict).
PRODUCT_BY_HANDLE_SQL = """
SELECT json_build_object(
  'id', p.id, 'handle', p.handle, 'title', p.title, 'description', p.description,
  'tags', p.tags, 'tech_stack', p.tech_stack, 'status', p.status,
  'stripe_product_id', p.stripe_product_id, 'included_in_tier', p.included_in_tier,
  'created_at', p.created_at, 'updated_at', p.updated_at,
  'variants', coalesce((
    SELECT json_agg(json_build_object(
      'id', v.id, 'sku', v.sku, 'title', v.title, 'license_type', v.license_type,
      'price', v.price::text, 'currency', v.currency, 'stripe_price_id', v.stripe_price_id,
      'available_for_sale', v.available_for_sale, 'seats', v.seats,
      'duration_days', v.duration_days, 'redistribution', v.redistribution
    ) ORDER BY v.price, v.id)
    FROM product_variants v
    WHERE v.product_id = p.id AND v.available_for_sale
  ), '[]'::json)
)::text
FROM products p
WHERE p.handle = %s
"""


class VariantOffer(TypedDict):
    """A variant on the product page."""

    id: uuid.UUID
    sku: str
    title: str
    license_type: str
    price: Decimal
    currency: str
    stripe_price_id: str | None
    available_for_sale: bool
    seats: int | None
    duration_days: int | None
    redistribution: bool


class ProductPage(TypedDict):
    """The product page: the product and its variants for sale, cheapest first."""

    id: uuid.UUID
    handle: str
    title: str
    description: str
    tags: list[str]
    tech_stack: list[str]
    status: str
    stripe_product_id: str | None
    included_in_tier: str | None
    created_at: datetime
    updated_at: datetime
    variants: list[VariantOffer]


_PRODUCT_PAGE = msgspec.json.Decoder(ProductPage)


def _product_page(rows: list[Row]) -> ProductPage | None:
    """The document the database built, parsed and made the declared types in one pass (a few
    microseconds: json.loads alone costs more). A value not of its declared type raises
    msgspec.ValidationError naming its path, say `$.variants[0].price`."""
    return _PRODUCT_PAGE.decode(rows[0][0]) if rows else None


def product_by_handle(source: hot.ReadSource, handle: str) -> ProductPage | None:
    """The product with its variants available for sale, cheapest first; None if no such handle.

    One prepared statement, one round trip (`afilo_db.db.hot`): given an Engine, or a Session
    with nothing begun, it runs on its own and leaves no transaction behind; in a Session's open
    transaction it runs there. Prices are `Decimal`, ids `UUID`, times `datetime`.
    """
    return _product_page(hot.fetch(source, hot.Read(PRODUCT_BY_HANDLE_SQL, (handle,))))


async def product_by_handle_async(source: hot.AsyncReadSource, handle: str) -> ProductPage | None:
    """`product_by_handle` for asyncio, on psycopg's AsyncConnection."""
    return _product_page(await hot.fetch_async(source, hot.Read(PRODUCT_BY_HANDLE_SQL, (handle,))))


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


# The most rows one page of a listing or a collection holds.
MAX_LISTING_LIMIT = 200


@dataclass(frozen=True)
class Page:
    items: list[ProductSummary]
    next_cursor: str | None
    """Pass as `after` for the next page; None on the last page."""


# Each filter adds its condition; the listing's SQL is assembled once per combination of filters
# (a few dozen at most), so each combination is its own prepared statement with a plan that fits.
_LISTING_CONDITIONS = {
    "status": "p.status = %(status)s",
    "tags": "p.tags @> %(tags)s::text[]",
    "tech_stack": "p.tech_stack @> %(tech_stack)s::text[]",
    "collection": "EXISTS (SELECT FROM product_collection_products m"
    " JOIN product_collections c ON c.id = m.collection_id"
    " WHERE m.product_id = p.id AND c.handle = %(collection)s)",
    "after": "(p.created_at, p.id) < (%(after_created_at)s, %(after_id)s)",
}
_VARIANT_CONDITIONS = {
    "license_type": "v.license_type = %(license_type)s",
    "min_price": "v.price >= %(min_price)s",
    "max_price": "v.price <= %(max_price)s",
}


@lru_cache(maxsize=256)
def _listing_sql(filters: frozenset[str]) -> str:
    conditions = [sql for name, sql in _LISTING_CONDITIONS.items() if name in filters]
    variant = [sql for name, sql in _VARIANT_CONDITIONS.items() if name in filters]
    if variant:
        conditions.append(
            "EXISTS (SELECT FROM product_variants v WHERE v.product_id = p.id"
            " AND v.available_for_sale AND " + " AND ".join(variant) + ")"
        )
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"""
SELECT p.id, p.handle, p.title, p.status, p.tags, p.tech_stack,
       (SELECT min(v.price) FROM product_variants v
        WHERE v.product_id = p.id AND v.available_for_sale) AS from_price,
       p.created_at
FROM products p
{where}
ORDER BY p.created_at DESC, p.id DESC
LIMIT %(limit)s
"""


def listing_statement(
    filters: ProductFilters | Mapping[str, Any] | None, limit: int, after: str | None
) -> tuple[str, dict[str, Any]]:
    """The SQL (psycopg placeholders) and parameters `list_products` sends, validated."""
    if not 1 <= limit <= MAX_LISTING_LIMIT:
        raise ValidationError({"limit": f"must be from 1 to {MAX_LISTING_LIMIT}"})
    chosen = validate(ProductFilters, filters or {})
    values: dict[str, Any] = {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in chosen.model_dump().items()
        if value is not None and value != ()
    }
    if after is not None:
        values["after_created_at"], values["after_id"] = decode_cursor(after, "after")
        values["after"] = True
    names = frozenset(values)
    values["limit"] = limit + 1
    return _listing_sql(names), values


def _page(rows: list[Row], limit: int) -> Page:
    items = [ProductSummary(*row) for row in rows[:limit]]
    next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None
    return Page(items=items, next_cursor=next_cursor)


def list_products(
    source: hot.ReadSource,
    filters: ProductFilters | Mapping[str, Any] | None = None,
    *,
    limit: int = 24,
    after: str | None = None,
) -> Page:
    """Products newest first, filtered, a page at a time; one prepared statement, one round trip.

    Keyset pagination on (created_at, id): a page costs the same at page 1 and page 1,000, and
    one extra row tells whether a next page exists (COUNT(*) would scan every match).
    """
    query, values = listing_statement(filters, limit, after)
    return _page(hot.fetch(source, hot.Read(query, values)), limit)


async def list_products_async(
    source: hot.AsyncReadSource,
    filters: ProductFilters | Mapping[str, Any] | None = None,
    *,
    limit: int = 24,
    after: str | None = None,
) -> Page:
    """`list_products` for asyncio."""
    query, values = listing_statement(filters, limit, after)
    return _page(await hot.fetch_async(source, hot.Read(query, values)), limit)


# One page of the collection's active products, by position: an index range scan on
# (collection_id, position) that reads the page's rows, not the whole collection. One row more
# than the page, to know whether another follows.
COLLECTION_SQL = """
SELECT json_build_object(
  'id', c.id, 'handle', c.handle, 'title', c.title, 'description', c.description,
  'products', coalesce((
    SELECT json_agg(json_build_object(
      'id', page.id, 'handle', page.handle, 'title', page.title, 'position', page.position
    ) ORDER BY page.position)
    FROM (
      SELECT p.id, p.handle, p.title, m.position
      FROM product_collection_products m JOIN products p ON p.id = m.product_id
      WHERE m.collection_id = c.id AND p.status = 'active' AND m.position > %(after)s
      ORDER BY m.position
      LIMIT %(limit)s
    ) AS page
  ), '[]'::json)
)::text
FROM product_collections c
WHERE c.handle = %(handle)s
"""
COLLECTION_PAGE_LIMIT = 48


class CollectionEntry(TypedDict):
    id: uuid.UUID
    handle: str
    title: str
    position: int


class CollectionDocument(TypedDict):
    """What COLLECTION_SQL builds: the page without its cursor."""

    id: uuid.UUID
    handle: str
    title: str
    description: str
    products: list[CollectionEntry]


class CollectionPage(CollectionDocument):
    """A collection with a page of its active products, in their order."""

    next_cursor: str | None
    """Pass as `after` for the next page; None on the last one."""


_COLLECTION_DOCUMENT = msgspec.json.Decoder(CollectionDocument)


def _collection_values(handle: str, limit: int, after: str | None) -> dict[str, Any]:
    if not 1 <= limit <= MAX_LISTING_LIMIT:
        raise ValidationError({"limit": f"must be from 1 to {MAX_LISTING_LIMIT}"})
    position = -1 if after is None else decode_position_cursor(after, "after")
    return {"handle": handle, "after": position, "limit": limit + 1}


def _collection_page(rows: list[Row], handle: str, limit: int) -> CollectionPage:
    if not rows:
        raise NotFoundError(f"no collection with handle {handle!r}")
    document = _COLLECTION_DOCUMENT.decode(rows[0][0])
    products = document["products"]
    more = len(products) > limit
    del products[limit:]
    cursor = encode_position_cursor(products[-1]["position"]) if more else None
    return CollectionPage(**document, next_cursor=cursor)


def collection_by_handle(
    source: hot.ReadSource,
    handle: str,
    *,
    limit: int = COLLECTION_PAGE_LIMIT,
    after: str | None = None,
) -> CollectionPage:
    """A collection with `limit` of its active products (1 to 200), in their order, after the
    cursor `after` (a previous page's `next_cursor`): one prepared statement, one round trip.
    Raises NotFoundError for an unknown handle, ValidationError for a bad limit or cursor."""
    values = _collection_values(handle, limit, after)
    return _collection_page(hot.fetch(source, hot.Read(COLLECTION_SQL, values)), handle, limit)


async def collection_by_handle_async(
    source: hot.AsyncReadSource,
    handle: str,
    *,
    limit: int = COLLECTION_PAGE_LIMIT,
    after: str | None = None,
) -> CollectionPage:
    """`collection_by_handle` for asyncio."""
    values = _collection_values(handle, limit, after)
    rows = await hot.fetch_async(source, hot.Read(COLLECTION_SQL, values))
    return _collection_page(rows, handle, limit)


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
    unit_price_sql, tier_join = rules.priced(":quantity")
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
