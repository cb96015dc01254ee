"""The application's policy on pricing tiers reads the variant alone: its own policy applies.

A tier is readable when its variant is. The variants' policy (only a published product's
variants) applies inside the tiers' policy, since the same role reads them, so the policy no
longer joins `products` itself. The rows it shows are the same; every statement that reads
tiers as the application (the product page, the cart) has one table less in its plan (each
table in a plan is locked and opened on every call).

Revision ID: 0009_tiers_follow_variants
Revises: 0008_fast_format_checks
"""

from __future__ import annotations

from alembic import op

revision = "0009_tiers_follow_variants"
down_revision = "0008_fast_format_checks"
branch_labels = None
depends_on = None

POLICY = "product_pricing_tiers_app_select"


def upgrade() -> None:
    op.execute(
        f"ALTER POLICY {POLICY} ON product_pricing_tiers USING (EXISTS ("
        "SELECT FROM product_variants v WHERE v.id = product_pricing_tiers.variant_id))"
    )


def downgrade() -> None:
    op.execute(
        f"ALTER POLICY {POLICY} ON product_pricing_tiers USING (EXISTS ("
        "SELECT FROM product_variants v JOIN products p ON p.id = v.product_id"
        " WHERE v.id = product_pricing_tiers.variant_id AND p.status = 'active'))"
    )
