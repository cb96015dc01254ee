"""Data rules: titles trimmed of all Unicode whitespace (as the Python rule strips it), no control
characters or bidirectional overrides in titles and tags, and an active product always has a
variant for sale (a constraint trigger, checked at commit).

Rows that break the new rules are repaired first, in words: titles and tags lose their
surrounding whitespace and unprintable characters (a title left empty takes the handle or sku),
and an active product with no variant for sale goes back to draft. Money stays plain numeric
with its CHECKs: numeric(12, 2) would round 19.999 silently where the CHECK refuses it.

Revision ID: 0006_data_rules
Revises: 0005_analytics
"""

from __future__ import annotations

from alembic import op

revision = "0006_data_rules"
down_revision = "0005_analytics"
branch_labels = None
depends_on = None

WHITESPACE = "U&'\\0009\\000a\\000b\\000c\\000d\\0020\\0085\\00a0\\1680\\2000\\2001\\2002\\2003\\2004\\2005\\2006\\2007\\2008\\2009\\200a\\2028\\2029\\202f\\205f\\3000'"
UNPRINTABLE = "'[\\u0001-\\u001f\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069]'"

REPAIRS = [
    f"UPDATE products SET tags = ARRAY(SELECT regexp_replace(tag, {UNPRINTABLE}, '', 'g')"
    f" FROM unnest(tags) AS tag) WHERE array_to_string(tags, '') ~ {UNPRINTABLE}",
    f"UPDATE products SET tech_stack = ARRAY(SELECT regexp_replace(item, {UNPRINTABLE}, '', 'g')"
    f" FROM unnest(tech_stack) AS item) WHERE array_to_string(tech_stack, '') ~ {UNPRINTABLE}",
    *(
        f"UPDATE {table} SET title = coalesce(nullif(left(btrim(regexp_replace(title,"
        f" {UNPRINTABLE}, '', 'g'), {WHITESPACE}), 200), ''), {fallback})"
        f" WHERE title <> btrim(title, {WHITESPACE}) OR title ~ {UNPRINTABLE}"
        f" OR length(title) > 200"
        for table, fallback in (
            ("products", "handle"),
            ("product_collections", "handle"),
            ("product_variants", "sku"),
        )
    ),
    "UPDATE products p SET status = 'draft' WHERE status = 'active' AND NOT EXISTS ("
    "SELECT 1 FROM product_variants v WHERE v.product_id = p.id AND v.available_for_sale)",
]

TITLE_CHECK = "title = btrim(title, U&'\\0009\\000a\\000b\\000c\\000d\\0020\\0085\\00a0\\1680\\2000\\2001\\2002\\2003\\2004\\2005\\2006\\2007\\2008\\2009\\200a\\2028\\2029\\202f\\205f\\3000') AND length(title) BETWEEN 1 AND 200 AND title !~ '[\\u0001-\\u001f\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069]'"
TAGS_CHECK = (
    "array_to_string(tags, '') !~ '[\\u0001-\\u001f\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069]'"
    " AND array_to_string(tech_stack, '') !~ '[\\u0001-\\u001f\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069]'"
)
OLD_TITLE_CHECK = "length(btrim(title)) BETWEEN 1 AND 200"

SELLABLE_FUNCTION = """
CREATE FUNCTION check_active_product_sellable() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  product uuid;
BEGIN
  -- TG_ARGV[0]: the column naming the product (products.id, product_variants.product_id).
  FOREACH product IN ARRAY ARRAY[
    CASE WHEN TG_OP <> 'DELETE' THEN (to_jsonb(NEW) ->> TG_ARGV[0])::uuid END,
    CASE WHEN TG_OP <> 'INSERT' THEN (to_jsonb(OLD) ->> TG_ARGV[0])::uuid END
  ] LOOP
    CONTINUE WHEN product IS NULL;
    IF EXISTS (
      SELECT 1 FROM products p
      WHERE p.id = product AND p.status = 'active'
        AND NOT EXISTS (
          SELECT 1 FROM product_variants v WHERE v.product_id = p.id AND v.available_for_sale
        )
    ) THEN
      RAISE EXCEPTION USING
        ERRCODE = 'check_violation',
        CONSTRAINT = 'ck_products_active_has_variant_for_sale',
        TABLE = 'products',
        MESSAGE = format(
          'product %s is active but has no variant available for sale', product);
    END IF;
  END LOOP;
  RETURN NULL;
END
$$
"""

SELLABLE_TRIGGERS = [
    """CREATE CONSTRAINT TRIGGER ck_products_active_has_variant_for_sale
AFTER INSERT OR UPDATE OF status ON products
DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW EXECUTE FUNCTION check_active_product_sellable('id')""",
    """CREATE CONSTRAINT TRIGGER ck_products_active_has_variant_for_sale
AFTER INSERT OR UPDATE OF available_for_sale, product_id OR DELETE ON product_variants
DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW EXECUTE FUNCTION check_active_product_sellable('product_id')""",
]


def _add_check(table: str, name: str, check: str) -> None:
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({check})")


def _drop_constraint(table: str, name: str) -> None:
    op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")


def upgrade() -> None:
    for statement in REPAIRS:
        op.execute(statement)
    for table in ("products", "product_collections"):
        _drop_constraint(table, f"ck_{table}_title_length")
    for table in ("products", "product_collections", "product_variants"):
        _add_check(table, f"ck_{table}_title_format", TITLE_CHECK)
    _add_check("products", "ck_products_tags_printable", TAGS_CHECK)
    op.execute(SELLABLE_FUNCTION)
    for statement in SELLABLE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    for table in ("products", "product_variants"):
        op.execute(f"DROP TRIGGER ck_products_active_has_variant_for_sale ON {table}")
    op.execute("DROP FUNCTION check_active_product_sellable()")
    _drop_constraint("products", "ck_products_tags_printable")
    for table in ("products", "product_collections", "product_variants"):
        _drop_constraint(table, f"ck_{table}_title_format")
    for table in ("products", "product_collections"):
        _add_check(table, f"ck_{table}_title_length", OLD_TITLE_CHECK)
