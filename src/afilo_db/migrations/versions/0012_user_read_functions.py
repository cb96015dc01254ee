"""The user-scoped hot reads as server-side functions, for poolers that keep no prepared statement.

Behind PgBouncer before 1.21 (transaction mode, no `max_prepared_statements`) nothing can stay
prepared, so a user's cart and downloads were parsed and planned, with their policies, on every
call: as the application 1.3-1.4x the owner's same reads (1.9 against 1.5 ms for the pair).
A PL/pgSQL function keeps the plans of its statements for the server connection's life, and a
plan is no client's state: so there the services call these instead. Each runs the same statement as the
service (`afilo_db.security.reads`), as its caller (SECURITY INVOKER): the caller's rights and
policies apply. The `afilo_user_*` ones set the user's context first, for the transaction, as the
one-statement read does.

Revision ID: 0012_user_read_functions
Revises: 0011_variant_product_status
"""

from __future__ import annotations

from alembic import op

revision = "0012_user_read_functions"
down_revision = "0011_variant_product_status"
branch_labels = None
depends_on = None

FUNCTIONS = [
    """CREATE FUNCTION afilo_cart(_user_id uuid) RETURNS TABLE (variant_id uuid, sku text, product_title text, variant_title text, quantity integer, unit_price numeric, line_total numeric, currency text)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
SELECT c.variant_id, v.sku, p.title, v.title, c.quantity,
       coalesce(t.unit_price, v.price) AS unit_price,
       coalesce(t.unit_price, v.price) * c.quantity AS line_total,
       v.currency
FROM cart_items c
JOIN product_variants v ON v.id = c.variant_id
JOIN products p ON p.id = v.product_id
LEFT JOIN product_pricing_tiers t ON t.variant_id = v.id AND t.quantity_range @> (c.quantity)::integer
WHERE c.user_id = _user_id
ORDER BY c.created_at, c.id;
END
$$""",
    """CREATE FUNCTION afilo_user_cart(_clerk_user_id text) RETURNS TABLE (variant_id uuid, sku text, product_title text, variant_title text, quantity integer, unit_price numeric, line_total numeric, currency text)
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
    """CREATE FUNCTION afilo_downloads(_user_id uuid, _limit integer) RETURNS TABLE (id uuid, product_id uuid, product_handle text, product_title text, created_at timestamp with time zone, subscription_id uuid, purchase_id uuid)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
SELECT d.id, d.product_id, p.handle, p.title, d.created_at, d.subscription_id, d.purchase_id
FROM downloads d JOIN products p ON p.id = d.product_id
WHERE d.user_id = _user_id
ORDER BY d.created_at DESC, d.id DESC
LIMIT _limit;
END
$$""",
    """CREATE FUNCTION afilo_user_downloads(_clerk_user_id text, _limit integer) RETURNS TABLE (id uuid, product_id uuid, product_handle text, product_title text, created_at timestamp with time zone, subscription_id uuid, purchase_id uuid)
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
SIGNATURES = [
    "afilo_cart(uuid)",
    "afilo_user_cart(text)",
    "afilo_downloads(uuid, integer)",
    "afilo_user_downloads(text, integer)",
]


def upgrade() -> None:
    for function in FUNCTIONS:
        op.execute(function)


def downgrade() -> None:
    for signature in SIGNATURES:
        op.execute(f"DROP FUNCTION {signature}")
