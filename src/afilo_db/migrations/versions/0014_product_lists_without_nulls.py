"""A product's tags and tech stack are lists of text: one dimension, no NULL element.

The product page and the listings declare them `list[str]`, and their typed parsing refused a
NULL element (or an array of arrays) that only the printable-text check let through: the whole
product became unreadable through the API. The check is added without blocking writers for the
scan (NOT VALID, then validated). Products that break it already stop the upgrade before
anything changes, named, with the statement that fixes them.

Revision ID: 0014_product_lists_without_nulls
Revises: 0013_user_read_functions_as_app
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0014_product_lists_without_nulls"
down_revision = "0013_user_read_functions_as_app"
branch_labels = None
depends_on = None

NAME = "ck_products_tags_flat_without_nulls"
CHECK = (
    "CASE WHEN coalesce(array_ndims(tags), 1) = 1"
    " THEN array_position(tags, NULL) IS NULL ELSE false END"
    " AND CASE WHEN coalesce(array_ndims(tech_stack), 1) = 1"
    " THEN array_position(tech_stack, NULL) IS NULL ELSE false END"
)
SHOWN = 5


def _refuse_products_that_break_it() -> None:
    if op.get_context().as_sql:
        return  # rendered for review: there is no data to look at
    rows = op.get_bind().execute(
        text(f"SELECT handle, count(*) OVER () FROM products WHERE NOT ({CHECK}) ORDER BY handle")
    )
    found = rows.fetchmany(SHOWN)
    if not found:
        return
    handles = ", ".join(str(handle) for handle, _ in found)
    total = int(found[0][1])
    more = f" and {total - len(found)} more" if total > len(found) else ""
    raise RuntimeError(
        f"{total} products have tags or tech_stack that are not lists of text with no empty "
        f"(NULL) element: {handles}{more}. Nothing was changed. Remove the empty elements, e.g. "
        "UPDATE products SET tags = array_remove(tags, NULL), "
        "tech_stack = array_remove(tech_stack, NULL) WHERE handle = '...', "
        "flatten any list of lists, and upgrade again."
    )


def upgrade() -> None:
    _refuse_products_that_break_it()
    with op.get_context().autocommit_block():
        # A run stopped after the first statement left the check unvalidated: start again.
        op.execute(f"ALTER TABLE products DROP CONSTRAINT IF EXISTS {NAME}")
        op.execute(f"ALTER TABLE products ADD CONSTRAINT {NAME} CHECK ({CHECK}) NOT VALID")
        op.execute(f"ALTER TABLE products VALIDATE CONSTRAINT {NAME}")


def downgrade() -> None:
    op.execute(f"ALTER TABLE products DROP CONSTRAINT {NAME}")
