"""What the studio reads from the foreign keys and the dashboard's figures, against the seed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from afilo_db.analytics import overview
from afilo_db.data.seed import DEMO_PRODUCTS
from afilo_db.db.engine import create_app_engine
from afilo_db.models import Base
from afilo_db.studio import records
from afilo_db.studio.views import model_views


@pytest.fixture
def session(demo_seeded_url: str) -> Iterator[Session]:
    engine = create_app_engine(demo_seeded_url)
    with Session(engine) as owner:
        yield owner
    engine.dispose()


def test_the_studio_has_a_view_for_every_table() -> None:
    assert {view.table.name for view in model_views(read_only=False)} == set(Base.metadata.tables)
    assert len(Base.metadata.tables) == 26


def test_deleting_a_user_counts_what_goes_and_what_refuses(session: Session) -> None:
    user_id = session.execute(
        text("SELECT user_id FROM purchases GROUP BY user_id ORDER BY count(*) DESC LIMIT 1")
    ).scalar_one()

    def count(sql: str) -> int:
        return int(session.execute(text(sql), {"user": user_id}).scalar_one())

    effects = records.deletion_effects(session, "user_profiles", {"id": user_id})
    assert effects.blocking["purchases"] == count(
        "SELECT count(*) FROM purchases WHERE user_id = :user"
    )
    assert effects.deleted.get("downloads", 0) == count(
        "SELECT count(*) FROM downloads WHERE user_id = :user"
    )
    assert effects.deleted.get("chat_messages", 0) == count(
        "SELECT count(*) FROM chat_messages m JOIN chat_conversations c ON c.id = m.conversation_id"
        " WHERE c.user_id = :user"
    )
    assert effects.describe()[0].startswith("Refused while these point at it:")


def test_a_product_is_linked_to_its_variants_and_through_memberships_to_its_collections(
    session: Session,
) -> None:
    product_id = session.execute(
        text("SELECT product_id FROM product_collection_products LIMIT 1")
    ).scalar_one()
    groups = {
        group.table: group
        for group in records.related_groups(session, "products", {"id": product_id})
    }
    collections = session.execute(
        text(
            "SELECT c.title FROM product_collections c JOIN product_collection_products m"
            " ON m.collection_id = c.id WHERE m.product_id = :id ORDER BY c.title"
        ),
        {"id": product_id},
    ).scalars()
    assert sorted(row.label for row in groups["product_collections"].rows) == list(collections)
    assert groups["product_collections"].via == "product_collection_products"
    variants = session.execute(
        text("SELECT count(*) FROM product_variants WHERE product_id = :id"), {"id": product_id}
    ).scalar_one()
    assert groups["product_variants"].count == variants
    variant_id = groups["product_variants"].rows[0].key["id"]
    (reference,) = records.references(session, "product_variants", {"id": variant_id})
    assert (reference.table, reference.key) == ("products", {"id": str(product_id)})


def test_the_tables_holding_users_data_are_the_ones_row_level_security_separates(
    session: Session,
) -> None:
    assert set(records.user_data_tables(session)) == {
        "user_profiles", "user_subscriptions", "purchases", "user_activity_log", "cart_items",
        "downloads", "chat_conversations", "chat_messages", "bot_analytics", "events",
        "webhook_events",
    }  # fmt: skip


def test_the_overview_adds_up_to_what_the_tables_hold(session: Session) -> None:
    figures = overview.overview(session)
    assert figures.counts["products"] == DEMO_PRODUCTS
    assert set(figures.counts) == set(Base.metadata.tables)
    newest = [entry.created_at for entry in figures.newest_activity]
    logged = session.execute(text("SELECT count(*) FROM user_activity_log")).scalar_one()
    assert len(newest) == min(logged, overview.NEWEST_ACTIVITY) > 0
    assert newest == sorted(newest, reverse=True)
