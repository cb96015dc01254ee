"""Text a buyer sees held to one rule; a read function's user context ends with its call;
the application role no longer writes a user's email.

- Descriptions (products, collections) and the chat bot's passages refuse what titles and tags
  already refused: control characters (tabs and line breaks aside) and the bidirectional
  embeddings, overrides and isolates that can make text read otherwise than it is stored. Products
  or collections that break it stop the upgrade before anything changes, named; passages are
  derived from documents, so theirs are cleaned as ingestion now cleans them.
- `afilo_user_cart` and `afilo_user_downloads` put the caller's user context back once their
  query has run: code that read one user's cart and then read "as itself" in the same transaction
  read as that user.
- The application role may no longer UPDATE `user_profiles.email`: Clerk owns the address (its
  user.updated event writes it), and the unique index answered the application, for any address,
  whether another user had it.

Revision ID: 0017_buyer_text_and_scoped_reads
Revises: 0016_analytics_from_billing
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0017_buyer_text_and_scoped_reads"
down_revision = "0016_analytics_from_billing"
branch_labels = None
depends_on = None

# Control characters but tab, line feed and carriage return; the bidirectional embeddings,
# overrides and isolates. Written as PostgreSQL's regular expressions read them.
CONTROLS = r"[\u0001-\u0008\u000b-\u000c\u000e-\u001f\u007f-\u009f]"
OVERRIDES = r"[\u202a-\u202e\u2066-\u2069]"
UNPRINTABLE = CONTROLS[:-1] + OVERRIDES[1:]
# (table, constraint, columns, what names a row in an error)
CHECKS = [
    ("products", "ck_products_description_buyer_text", ("description",), "handle"),
    (
        "product_collections",
        "ck_product_collections_description_buyer_text",
        ("description",),
        "handle",
    ),
    ("knowledge_base", "ck_knowledge_base_buyer_text", ("title", "content"), "id"),
]
DERIVED_TABLES = ("knowledge_base",)
SHOWN = 5

FUNCTIONS = [
    """CREATE OR REPLACE FUNCTION afilo_user_cart(_clerk_user_id text) RETURNS TABLE (variant_id uuid, sku text, product_title text, variant_title text, quantity integer, unit_price numeric, line_total numeric, currency text)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  _caller_clerk_user_id text;
BEGIN
  _caller_clerk_user_id := current_setting('afilo.clerk_user_id', true);
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
  PERFORM set_config('afilo.clerk_user_id', _caller_clerk_user_id, true);
END
$$""",
    """CREATE OR REPLACE FUNCTION afilo_user_downloads(_clerk_user_id text, _limit integer) RETURNS TABLE (id uuid, product_id uuid, product_handle text, product_title text, created_at timestamp with time zone, subscription_id uuid, purchase_id uuid)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  _caller_clerk_user_id text;
BEGIN
  _caller_clerk_user_id := current_setting('afilo.clerk_user_id', true);
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
  PERFORM set_config('afilo.clerk_user_id', _caller_clerk_user_id, true);
END
$$""",
]
PREVIOUS = [
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


def _condition(columns: tuple[str, ...]) -> str:
    return " AND ".join(f"{column} !~ '{UNPRINTABLE}'" for column in columns)


def _clean_derived_text() -> None:
    """Passages are cut from documents: a control character becomes a space, an override goes."""
    for table, _name, columns, _key in CHECKS:
        if table not in DERIVED_TABLES:
            continue
        for column in columns:
            op.execute(
                f"UPDATE {table} SET {column} = regexp_replace(regexp_replace({column},"
                f" '{CONTROLS}', ' ', 'g'), '{OVERRIDES}', '', 'g')"
                f" WHERE {column} ~ '{UNPRINTABLE}'"
            )


def _refuse_rows_that_break_it() -> None:
    if op.get_context().as_sql:
        return  # rendered for review: there is no data to look at
    for table, _name, columns, key in CHECKS:
        if table in DERIVED_TABLES:
            continue
        rows = op.get_bind().execute(
            text(
                f"SELECT {key}, count(*) OVER () FROM {table}"
                f" WHERE NOT ({_condition(columns)}) ORDER BY {key}"
            )
        )
        found = rows.fetchmany(SHOWN)
        if not found:
            continue
        names = ", ".join(str(name) for name, _ in found)
        total = int(found[0][1])
        more = f" and {total - len(found)} more" if total > len(found) else ""
        raise RuntimeError(
            f"{total} rows of {table} have a {' or '.join(columns)} with control characters"
            f" or bidirectional overrides: {names}{more}. Nothing was changed. Remove them,"
            f" e.g. UPDATE {table} SET description = regexp_replace(description,"
            f" '{UNPRINTABLE}', '', 'g') WHERE {key} = '...', and upgrade again."
        )


def upgrade() -> None:
    _refuse_rows_that_break_it()
    for function in FUNCTIONS:
        op.execute(function)
    op.execute("REVOKE UPDATE (email) ON user_profiles FROM afilo_app")
    _clean_derived_text()
    with op.get_context().autocommit_block():
        # Validated apart from the ADD, so that writers wait only for the ADD, not for the scan;
        # a run stopped after an ADD left it unvalidated: start again.
        for table, name, columns, _key in CHECKS:
            op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")
            op.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({_condition(columns)}) NOT VALID"
            )
            op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")


def downgrade() -> None:
    for table, name, _columns, _key in CHECKS:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    op.execute("GRANT UPDATE (email) ON user_profiles TO afilo_app")
    for function in PREVIOUS:
        op.execute(function)
