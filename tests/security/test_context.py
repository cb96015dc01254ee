"""`as_user` and `service_context` on a SQLAlchemy Session, as the services use them; what each
role may write; the activity log stays append-only and its actor unforgeable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session

from afilo_db.errors import ForbiddenError, ValidationError
from afilo_db.models import CartItem, UserProfile
from afilo_db.security import as_user, service_context
from afilo_db.security.policies import CLERK_USER_ID_SETTING
from tests.security.conftest import Marketplace, app_engine

CONTEXT_SQL = text(
    f"SELECT current_user::text, coalesce(current_setting('{CLERK_USER_ID_SETTING}', true), '')"
)


@pytest.fixture
def engine(marketplace: Marketplace) -> Iterator[Engine]:
    engine = app_engine(marketplace.app_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as session:
        yield session
        session.rollback()


@pytest.fixture
def service(marketplace: Marketplace) -> Iterator[Session]:
    """The service role's own login (SERVICE_DATABASE_URL)."""
    engine = app_engine(marketplace.service_url)
    with Session(engine) as session:
        yield session
        session.rollback()
    engine.dispose()


def refused(session: Session, sql: str, **parameters: Any) -> bool:
    try:
        with session.begin_nested():
            session.execute(text(sql), parameters)
    except ProgrammingError as error:
        if not isinstance(error.orig, psycopg.errors.InsufficientPrivilege):
            raise
        return True
    return False


def test_a_malformed_clerk_id_is_refused_before_anything_runs(session: Session) -> None:
    with pytest.raises(ValidationError) as raised, as_user(session, "alice'; --"):
        pytest.fail("the block must not run")
    assert "clerk_user_id" in raised.value.problems
    assert session.execute(CONTEXT_SQL).one() == ("afilo_app", "")


def test_the_context_ends_with_the_block_and_with_the_transaction(
    session: Session, marketplace: Marketplace
) -> None:
    alice, bob = marketplace.alice, marketplace.bob
    with as_user(session, alice.clerk_user_id):
        assert session.execute(CONTEXT_SQL).one() == ("afilo_app", alice.clerk_user_id)
        with as_user(session, bob.clerk_user_id):
            assert session.execute(CONTEXT_SQL).one() == ("afilo_app", bob.clerk_user_id)
        assert session.execute(CONTEXT_SQL).one() == ("afilo_app", alice.clerk_user_id)
    assert session.execute(CONTEXT_SQL).one() == ("afilo_app", "")

    # Set for the rest of the transaction, the context does not outlive it.
    as_user(session, alice.clerk_user_id)
    assert session.execute(CONTEXT_SQL).one() == ("afilo_app", alice.clerk_user_id)
    session.commit()
    assert session.execute(CONTEXT_SQL).one() == ("afilo_app", "")


def test_an_error_inside_the_block_restores_the_context(
    session: Session, service: Session, marketplace: Marketplace
) -> None:
    with pytest.raises(RuntimeError), as_user(session, marketplace.alice.clerk_user_id):
        raise RuntimeError("the request failed")
    assert session.execute(CONTEXT_SQL).one() == ("afilo_app", "")
    inside: list[tuple[str, str]] = []

    def handler() -> None:
        with service_context(service):
            inside.append(tuple(service.execute(CONTEXT_SQL).one()))
            raise RuntimeError("the handler failed")

    with pytest.raises(RuntimeError):
        handler()
    assert inside == [("afilo_service", "")]
    assert service.execute(CONTEXT_SQL).one() == ("afilo_service", "")


def test_the_application_role_cannot_enter_the_service_context(
    session: Session, marketplace: Marketplace
) -> None:
    with pytest.raises(ForbiddenError, match="SERVICE_DATABASE_URL"):
        service_context(session)
    session.rollback()
    assert session.execute(CONTEXT_SQL).one() == ("afilo_app", "")
    as_user(session, marketplace.alice.clerk_user_id)
    with pytest.raises(ForbiddenError):
        service_context(session)


def test_the_orm_sees_only_the_users_rows(session: Session, marketplace: Marketplace) -> None:
    with as_user(session, marketplace.alice.clerk_user_id):
        profiles = session.query(UserProfile).all()
        items = session.query(CartItem).all()
    assert [profile.id for profile in profiles] == [marketplace.alice.id]
    assert [item.id for item in items] == marketplace.alice.rows["cart_items"]


def test_without_a_user_the_private_tables_are_empty_but_the_catalog_is_not(
    session: Session,
) -> None:
    assert session.execute(text("SELECT count(*) FROM user_profiles")).scalar_one() == 0
    assert session.execute(text("SELECT count(*) FROM products")).scalar_one() == 1


def test_a_user_updates_their_profile_but_not_billing_or_identity(
    session: Session, marketplace: Marketplace
) -> None:
    alice = marketplace.alice
    with as_user(session, alice.clerk_user_id):
        updated = session.connection().execute(
            text("UPDATE user_profiles SET display_name = 'Ada'")
        )
        assert updated.rowcount == 1
        for column, value in (("subscription_tier", "enterprise"),
                              ("clerk_user_id", "user_bob000001"),
                              ("stripe_customer_id", "cus_stolen0001")):  # fmt: skip
            assert refused(session, f"UPDATE user_profiles SET {column} = :value", value=value)


def test_a_user_cannot_move_a_cart_item_to_another_user(
    session: Session, marketplace: Marketplace
) -> None:
    with as_user(session, marketplace.alice.clerk_user_id):
        assert refused(session, "UPDATE cart_items SET user_id = :bob", bob=marketplace.bob.id)
        moved = session.connection().execute(text("UPDATE cart_items SET quantity = 2"))
        assert moved.rowcount == 1


def test_only_the_service_context_writes_billing_and_the_catalog(
    session: Session, service: Session, marketplace: Marketplace
) -> None:
    statements = [
        "UPDATE user_subscriptions SET status = 'active'",
        "UPDATE purchases SET status = 'paid'",
        "UPDATE products SET title = 'Renamed'",
        "DELETE FROM product_variants",
        "INSERT INTO knowledge_base (content_type, title, content) VALUES ('faq', 'Q', 'A')",
    ]
    with as_user(session, marketplace.alice.clerk_user_id):
        for sql in statements:
            assert refused(session, sql), sql
    with service_context(service):
        assert (
            service.connection()
            .execute(text("UPDATE user_subscriptions SET status = 'active'"))
            .rowcount
            == 2
        )
        assert (
            service.connection().execute(text("UPDATE products SET title = 'Renamed'")).rowcount
            == 1
        )


def test_unpublished_knowledge_is_hidden_from_the_application(
    session: Session, service: Session, marketplace: Marketplace
) -> None:
    with psycopg.connect(marketplace.owner_url) as owner:
        owner.execute(
            "INSERT INTO knowledge_base (content_type, title, content, is_published)"
            " VALUES ('faq', 'Draft answer', 'Not yet', false), ('faq', 'Answer', 'Yes', true)"
        )
    try:
        titles = session.execute(text("SELECT title FROM knowledge_base")).scalars().all()
        assert titles == ["Answer"]
        with service_context(service):
            assert service.execute(text("SELECT count(*) FROM knowledge_base")).scalar_one() == 2
    finally:
        with psycopg.connect(marketplace.owner_url) as owner:
            owner.execute("DELETE FROM knowledge_base")


def test_a_draft_products_variants_and_tiers_are_hidden_from_the_application(
    session: Session, service: Session, marketplace: Marketplace
) -> None:
    """The tiers' policy leans on the variants' (revision 0009_catalog_policies): a tier is seen with its
    variant, and a variant only with its published product."""
    count = "SELECT count(*) FROM {}"
    catalog = ("products", "product_variants", "product_pricing_tiers")
    with psycopg.connect(marketplace.owner_url) as owner:
        owner.execute(
            "INSERT INTO product_pricing_tiers (variant_id, license_type, min_quantity, unit_price)"
            " VALUES (%s, 'team', 1, 40)",
            (marketplace.variant_ids[1],),
        )
    assert [session.execute(text(count.format(t))).scalar_one() for t in catalog] == [1, 2, 1]
    session.rollback()
    with psycopg.connect(marketplace.owner_url) as owner:
        owner.execute("UPDATE products SET status = 'draft'")
    assert [session.execute(text(count.format(t))).scalar_one() for t in catalog] == [0, 0, 0]
    with service_context(service):
        assert [service.execute(text(count.format(t))).scalar_one() for t in catalog] == [1, 2, 1]


def test_the_activity_log_is_append_only_for_user_and_service(
    session: Session, service: Session, marketplace: Marketplace
) -> None:
    alice = marketplace.alice
    with as_user(session, alice.clerk_user_id):
        session.execute(
            text("INSERT INTO user_activity_log (user_id, actor, action)"
                 " VALUES (current_user_profile_id(), :actor, 'viewed_cart')"),
            {"actor": alice.clerk_user_id},
        )  # fmt: skip
        assert refused(session, "UPDATE user_activity_log SET action = 'nothing'")
        assert refused(session, "DELETE FROM user_activity_log")
    with service_context(service):
        assert service.execute(text("SELECT count(*) FROM user_activity_log")).scalar_one() == 2
        # The service may only blank personal columns (erasure), never rewrite what happened.
        assert refused(service, "UPDATE user_activity_log SET details = '{}'")
        assert refused(service, "UPDATE user_activity_log SET actor = 'system'")
        assert refused(service, "UPDATE user_activity_log SET action = 'nothing'")
        assert refused(service, "DELETE FROM user_activity_log")
        redacted = service.connection().execute(
            text("UPDATE user_activity_log SET actor = 'erased', details = '{}',"
                 " ip_address = NULL, user_agent = NULL WHERE user_id = :bob"),
            {"bob": marketplace.bob.id},
        )  # fmt: skip
        assert redacted.rowcount == 1


@pytest.mark.parametrize("actor", ["system", "stripe", "user_bob000001", None])
def test_a_user_cannot_write_the_activity_log_as_somebody_else(
    session: Session, marketplace: Marketplace, actor: str | None
) -> None:
    alice = marketplace.alice
    with as_user(session, alice.clerk_user_id):
        columns = "user_id, action" + (", actor" if actor is not None else "")
        values = "current_user_profile_id(), 'viewed'" + (", :actor" if actor is not None else "")
        if actor is None:
            # The default is the acting user, as the database knows them.
            written = session.execute(
                text(f"INSERT INTO user_activity_log ({columns}) VALUES ({values}) RETURNING actor")
            ).scalar_one()
            assert written == alice.clerk_user_id
        else:
            assert refused(
                session,
                f"INSERT INTO user_activity_log ({columns}) VALUES ({values})",
                actor=actor,
            )


def test_the_owner_can_still_redact_the_activity_log(marketplace: Marketplace) -> None:
    """Operator commands (erasing a user's personal data) run as the owner."""
    with psycopg.connect(marketplace.owner_url) as owner:
        redacted = owner.execute(
            "UPDATE user_activity_log SET ip_address = NULL, user_agent = NULL WHERE user_id = %s",
            (marketplace.bob.id,),
        ).rowcount
        owner.rollback()
    assert redacted == 1
