"""A download is recorded only under an entitlement: an active subscription whose tier includes
the product, or a paid purchase of it. When the subscription lapses, new downloads are refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import ProgrammingError

from afilo_db.security import as_user, service_context
from tests.security.conftest import add_product, app_engine, as_app_role

FREE = "user_freeuser01"
SUBSCRIBER = "user_subscriber1"


@pytest.fixture
def app(database_url: str, app_password: str) -> Iterator[Connection]:
    """The application role on this test's own database, with two users and three products."""
    with psycopg.connect(database_url) as owner:
        for clerk_user_id in (FREE, SUBSCRIBER):
            owner.execute(
                "INSERT INTO user_profiles (clerk_user_id, email) VALUES (%s, %s)",
                (clerk_user_id, f"{clerk_user_id}@example.com"),
            )
        add_product(owner, "professional-kit", "professional")
        add_product(owner, "starter-kit", "starter")
        add_product(owner, "purchase-only-kit", None)
    engine = app_engine(as_app_role(database_url, app_password))
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def one(connection: Connection, sql: str, **parameters: Any) -> Any:
    return connection.execute(text(sql), parameters).scalar_one()


def subscribe(
    connection: Connection, clerk_user_id: str, tier: str, status: str = "active"
) -> uuid.UUID:
    """What the Stripe webhook handler does, in the service context."""
    with service_context(connection):
        subscription: uuid.UUID = one(
            connection,
            "INSERT INTO user_subscriptions (user_id, stripe_subscription_id, stripe_price_id,"
            " tier, status, amount, current_period_start, current_period_end)"
            " SELECT id, 'sub_' || md5(random()::text), 'price_tier000001', :tier, :status, 19,"
            " now(), now() + interval '30 days' FROM user_profiles WHERE clerk_user_id = :user"
            " RETURNING id",
            tier=tier, status=status, user=clerk_user_id,
        )  # fmt: skip
    connection.commit()
    return subscription


def purchase(
    connection: Connection, clerk_user_id: str, handle: str, status: str = "paid"
) -> uuid.UUID:
    with service_context(connection):
        purchase_id: uuid.UUID = one(
            connection,
            "INSERT INTO purchases (user_id, product_id, amount, status)"
            " SELECT u.id, p.id, 49, :status FROM user_profiles u, products p"
            " WHERE u.clerk_user_id = :user AND p.handle = :handle RETURNING id",
            user=clerk_user_id, handle=handle, status=status,
        )  # fmt: skip
    connection.commit()
    return purchase_id


def download(
    connection: Connection,
    clerk_user_id: str,
    handle: str,
    *,
    subscription: uuid.UUID | None = None,
    purchase_id: uuid.UUID | None = None,
) -> bool:
    """Record a download as the user; False when the database refuses it."""
    try:
        with as_user(connection, clerk_user_id):
            connection.execute(
                text(
                    "INSERT INTO downloads (user_id, product_id, subscription_id, purchase_id)"
                    " SELECT current_user_profile_id(), id, :subscription, :purchase"
                    " FROM products WHERE handle = :handle"
                ),
                {"subscription": subscription, "purchase": purchase_id, "handle": handle},
            )
        connection.commit()
        return True
    except ProgrammingError as error:
        if not isinstance(error.orig, psycopg.errors.InsufficientPrivilege):
            raise
        connection.rollback()
        return False


def test_a_free_user_cannot_download_a_paid_tier_product(app: Connection) -> None:
    starter = subscribe(app, FREE, "free")
    assert not download(app, FREE, "professional-kit", subscription=starter)


def test_a_lower_tier_does_not_include_a_higher_tier_product(app: Connection) -> None:
    starter = subscribe(app, SUBSCRIBER, "starter")
    assert download(app, SUBSCRIBER, "starter-kit", subscription=starter)
    assert not download(app, SUBSCRIBER, "professional-kit", subscription=starter)


@pytest.mark.parametrize("tier", ["professional", "enterprise"])
def test_an_active_subscription_of_that_tier_or_higher_can(app: Connection, tier: str) -> None:
    subscription = subscribe(app, SUBSCRIBER, tier)
    assert download(app, SUBSCRIBER, "professional-kit", subscription=subscription)
    assert download(app, SUBSCRIBER, "starter-kit", subscription=subscription)
    # A product sold only by purchase is in no tier.
    assert not download(app, SUBSCRIBER, "purchase-only-kit", subscription=subscription)


def test_after_the_subscription_is_canceled_they_cannot(app: Connection) -> None:
    subscription = subscribe(app, SUBSCRIBER, "professional")
    assert download(app, SUBSCRIBER, "professional-kit", subscription=subscription)
    with service_context(app):
        app.execute(
            text(
                "UPDATE user_subscriptions SET status = 'canceled', canceled_at = now() WHERE id = :id"
            ),
            {"id": subscription},
        )
    app.commit()
    assert not download(app, SUBSCRIBER, "professional-kit", subscription=subscription)
    # What was downloaded stays in the user's history.
    with as_user(app, SUBSCRIBER):
        assert one(app, "SELECT count(*) FROM downloads") == 1


@pytest.mark.parametrize(("status", "entitled"), [("trialing", True), ("past_due", False),
                                                 ("unpaid", False), ("incomplete", False)])  # fmt: skip
def test_only_entitling_statuses_count(app: Connection, status: str, entitled: bool) -> None:
    subscription = subscribe(app, SUBSCRIBER, "enterprise", status)
    assert download(app, SUBSCRIBER, "starter-kit", subscription=subscription) is entitled


def test_a_paid_purchase_grants_that_product_only(app: Connection) -> None:
    bought = purchase(app, FREE, "purchase-only-kit")
    assert download(app, FREE, "purchase-only-kit", purchase_id=bought)
    assert not download(app, FREE, "starter-kit", purchase_id=bought)
    refunded = purchase(app, FREE, "professional-kit", status="refunded")
    assert not download(app, FREE, "professional-kit", purchase_id=refunded)


def test_nobody_downloads_under_another_users_entitlement(app: Connection) -> None:
    subscription = subscribe(app, SUBSCRIBER, "enterprise")
    bought = purchase(app, SUBSCRIBER, "purchase-only-kit")
    assert not download(app, FREE, "starter-kit", subscription=subscription)
    assert not download(app, FREE, "purchase-only-kit", purchase_id=bought)
