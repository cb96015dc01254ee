"""The user-read functions leave the user's rows to the policies when called as the application.

Behind PgBouncer 1.18 a user's cart and downloads are calls of `afilo_user_cart` and
`afilo_user_downloads` (revision 0012). Their queries filtered by the user with the policies' own
lookup, which the application role's policy then repeated: two lookups of the user and two index
conditions in each. As the application role they now run the query without its own condition,
the policy's being the same; on any other login (the owner, the service role, which see every
row) they keep it. Each branch is planned on its first run in a server connection.

Revision ID: 0013_user_read_functions_as_app
Revises: 0012_user_read_functions
"""

from __future__ import annotations

from alembic import op

revision = "0013_user_read_functions_as_app"
down_revision = "0012_user_read_functions"
branch_labels = None
depends_on = None

FUNCTIONS = [
    """CREATE OR REPLACE FUNCTION afilo_user_cart(_clerk_user_id text) RETURNS TABLE (variant_id uuid, sku text, product_title text, variant_title text, quantity integer, unit_price numeric, line_total numeric, currency text)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
  PERFORM set_config('afilo.clerk_user_id', _clerk_user_id, true);
  IF current_user = 'afilo_app' THEN
  RETURN QUERY
SELECT c.variant_id, v.sku, p.title, v.title, c.quantity,
       coalesce(t.unit_price, v.price) AS unit_price,
       coalesce(t.unit_price, v.price) * c.quantity AS line_total,
       v.currency
FROM cart_items c
JOIN product_variants v ON v.id = c.variant_id
JOIN products p ON p.id = v.product_id
LEFT JOIN product_pricing_tiers t ON t.variant_id = v.id AND t.quantity_range @> (c.quantity)::integer
WHERE true
ORDER BY c.created_at, c.id;
  ELSE
  RETURN QUERY
SELECT c.variant_id, v.sku, p.title, v.title, c.quantity,
       coalesce(t.unit_price, v.price) AS unit_price,
       coalesce(t.unit_price, v.price) * c.quantity AS line_total,
       v.currency
FROM cart_items c
JOIN product_variants v ON v.id = c.variant_id
JOIN products p ON p.id = v.product_id
LEFT JOIN product_pricing_tiers t ON t.variant_id = v.id AND t.quantity_range @> (c.quantity)::integer
WHERE c.user_id = (SELECT id FROM public.user_profiles WHERE clerk_user_id = (SELECT current_clerk_user_id()))
ORDER BY c.created_at, c.id;
  END IF;
END
$$""",
    """CREATE OR REPLACE FUNCTION afilo_user_downloads(_clerk_user_id text, _limit integer) RETURNS TABLE (id uuid, product_id uuid, product_handle text, product_title text, created_at timestamp with time zone, subscription_id uuid, purchase_id uuid)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
  PERFORM set_config('afilo.clerk_user_id', _clerk_user_id, true);
  IF current_user = 'afilo_app' THEN
  RETURN QUERY
SELECT d.id, d.product_id, p.handle, p.title, d.created_at, d.subscription_id, d.purchase_id
FROM downloads d JOIN products p ON p.id = d.product_id
WHERE true
ORDER BY d.created_at DESC, d.id DESC
LIMIT _limit;
  ELSE
  RETURN QUERY
SELECT d.id, d.product_id, p.handle, p.title, d.created_at, d.subscription_id, d.purchase_id
FROM downloads d JOIN products p ON p.id = d.product_id
WHERE d.user_id = (SELECT id FROM public.user_profiles WHERE clerk_user_id = (SELECT current_clerk_user_id()))
ORDER BY d.created_at DESC, d.id DESC
LIMIT _limit;
  END IF;
END
$$""",
]
PREVIOUS = [
    """CREATE OR REPLACE FUNCTION afilo_user_cart(_clerk_user_id text) RETURNS TABLE (variant_id uuid, sku text, product_title text, variant_title text, quantity integer, unit_price numeric, line_total numeric, currency text)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
  PERFORM set_config('afilo.clerk_user_id', _clerk_user_id, true);
  RETURN QUERY
SELECT c.variant_id, v.sku, p.title, v.title, c.quantity,
       coalesce(t.unit_price, v.price) AS unit_price,
       coalesce(t.unit_price, v.price) * c.quantity AS line_total,
       v.currency
FROM cart_items c
JOIN product_variants v ON v.id = c.variant_id
JOIN products p ON p.id = v.product_id
LEFT JOIN product_pricing_tiers t ON t.variant_id = v.id AND t.quantity_range @> (c.quantity)::integer
WHERE c.user_id = (SELECT id FROM public.user_profiles WHERE clerk_user_id = (SELECT current_clerk_user_id()))
ORDER BY c.created_at, c.id;
END
$$""",
    """CREATE OR REPLACE FUNCTION afilo_user_downloads(_clerk_user_id text, _limit integer) RETURNS TABLE (id uuid, product_id uuid, product_handle text, product_title text, created_at timestamp with time zone, subscription_id uuid, purchase_id uuid)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
  PERFORM set_config('afilo.clerk_user_id', _clerk_user_id, true);
  RETURN QUERY
SELECT d.id, d.product_id, p.handle, p.title, d.created_at, d.subscription_id, d.purchase_id
FROM downloads d JOIN products p ON p.id = d.product_id
WHERE d.user_id = (SELECT id FROM public.user_profiles WHERE clerk_user_id = (SELECT current_clerk_user_id()))
ORDER BY d.created_at DESC, d.id DESC
LIMIT _limit;
END
$$""",
]


def upgrade() -> None:
    for function in FUNCTIONS:
        op.execute(function)


def downgrade() -> None:
    for function in PREVIOUS:
        op.execute(function)
