"""A user-read function's context lasts as long as its call; the application cannot probe which
email addresses are registered."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError, ProgrammingError
from sqlalchemy.orm import Session

from afilo_db.security import as_user
from afilo_db.security.policies import CLERK_USER_ID_SETTING
from afilo_db.security.reads import USER_CART, USER_DOWNLOADS
from tests.security.conftest import Marketplace, app_engine

CURRENT_USER_SQL = text(f"SELECT current_setting('{CLERK_USER_ID_SETTING}', true)")


@pytest.fixture
def engine(marketplace: Marketplace) -> Iterator[Engine]:
    engine = app_engine(marketplace.app_url)
    yield engine
    engine.dispose()


def _cart_variants(session: Session, clerk_user_id: str) -> list[object]:
    rows = session.execute(
        text(f"SELECT variant_id FROM {USER_CART.name}(:clerk_user_id)"),
        {"clerk_user_id": clerk_user_id},
    )
    return list(rows.scalars())


@pytest.mark.parametrize("function", [USER_CART, USER_DOWNLOADS], ids=lambda read: read.name)
def test_a_read_for_another_user_leaves_the_callers_context_as_it_was(
    engine: Engine, marketplace: Marketplace, function: object
) -> None:
    alice, bob = marketplace.alice, marketplace.bob
    call = (
        f"SELECT count(*) FROM {USER_CART.name}(:clerk_user_id)"
        if function is USER_CART
        else f"SELECT count(*) FROM {USER_DOWNLOADS.name}(:clerk_user_id, 10)"
    )
    with Session(engine) as session:
        as_user(session, alice.clerk_user_id)
        assert session.execute(text(call), {"clerk_user_id": bob.clerk_user_id}).scalar_one() == 1
        assert session.execute(CURRENT_USER_SQL).scalar_one() == alice.clerk_user_id
        # Reading "as itself" afterwards in the same transaction reads Alice's rows, not Bob's.
        own = session.execute(text("SELECT user_id FROM cart_items")).scalars().all()
        assert own == [alice.id]
        session.rollback()


def test_a_read_function_outside_any_context_leaves_none(
    engine: Engine, marketplace: Marketplace
) -> None:
    with Session(engine) as session:
        assert _cart_variants(session, marketplace.bob.clerk_user_id) == [
            marketplace.variant_ids[0]
        ]
        assert session.execute(CURRENT_USER_SQL).scalar_one() in (None, "")
        assert session.execute(text("SELECT count(*) FROM cart_items")).scalar_one() == 0
        session.rollback()


def _email_update_error(session: Session, email: str) -> str:
    try:
        with session.begin_nested():
            session.execute(text("UPDATE user_profiles SET email = :email"), {"email": email})
    except (ProgrammingError, IntegrityError) as error:
        return type(error.orig).__name__
    return "updated"


def test_the_application_learns_nothing_from_changing_its_own_email(
    engine: Engine, marketplace: Marketplace
) -> None:
    """Clerk owns the address: the application may not write it, so a taken address and a free
    one get the same answer (once, a taken one answered with the unique index's name)."""
    with Session(engine) as session:
        as_user(session, marketplace.alice.clerk_user_id)
        taken = _email_update_error(session, "bob@example.com")
        free = _email_update_error(session, "nobody-has-this@example.com")
        assert taken == free == "InsufficientPrivilege"
        # What the user may still change about themselves.
        changed = session.connection().execute(
            text("UPDATE user_profiles SET display_name = 'Ada'")
        )
        assert changed.rowcount == 1
        session.rollback()
