"""Revision 0014_product_lists_without_nulls on a database that already holds products whose
lists it refuses: it stops before changing anything and names them; fixed, it applies."""

from __future__ import annotations

import psycopg
import pytest

from afilo_db.migrate.revisions import current_revision, deploy, downgrade

BEFORE = "0013_user_read_functions_as_app"
CHECK = "ck_products_tags_flat_without_nulls"


def test_products_the_check_would_refuse_stop_the_upgrade_by_name(database_url: str) -> None:
    downgrade(database_url, BEFORE)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO products (handle, title, tags) VALUES"
            " ('holed-kit', 'Holed kit', ARRAY['ui', NULL]), ('fine-kit', 'Fine kit', '{ui}')"
        )
        with pytest.raises(RuntimeError, match=r"1 products .*holed-kit\. Nothing was changed"):
            deploy(database_url)
        assert current_revision(database_url) == BEFORE
        constraints = "SELECT count(*) FROM pg_constraint WHERE conname = %s"
        assert connection.execute(constraints, (CHECK,)).fetchone() == (0,)
        connection.execute("UPDATE products SET tags = array_remove(tags, NULL)")
        deploy(database_url)
        assert connection.execute(constraints, (CHECK,)).fetchone() == (1,)
