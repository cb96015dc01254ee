"""Catalog reads. The hot path is one statement that returns the product and its variants as JSON."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

# The seed's `findUnique({ where: { handle }, include: { variants: { where: { availableForSale:
# true }, orderBy: { price: 'asc' } } } })`, as one statement: the handle's unique index finds the
# product, (product_id, price) gives its variants already ordered.
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
WHERE p.handle = :handle
"""


def product_by_handle(session: Session, handle: str) -> dict[str, Any] | None:
    """The product with its variants available for sale, cheapest first; None if no such handle."""
    row = session.execute(text(PRODUCT_BY_HANDLE_SQL), {"handle": handle}).first()
    return None if row is None else dict(row[0])
