"""The volume-tier price rule, once: a quantity of a variant costs the unit price of the tier whose
range covers the quantity, else the variant's own price. Quotes and the cart both price with it."""

from __future__ import annotations


def priced(quantity: str) -> tuple[str, str]:
    """(the unit price expression, the join that finds the tier) for a query over `product_variants
    v`, where `quantity` is the SQL expression of the quantity (a column or a bound parameter)."""
    return (
        "coalesce(t.unit_price, v.price)",
        "LEFT JOIN product_pricing_tiers t"
        f" ON t.variant_id = v.id AND t.quantity_range @> ({quantity})::integer",
    )
