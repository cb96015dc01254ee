"""A download is recorded only under an entitlement: an active subscription whose tier includes
the product and whose period has not ended (past_due: within the grace period), or a paid
purchase of it, and never of a product that is not published. When the subscription lapses, new
downloads are refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import ProgrammingError

from afilo_db.security import as_user, service_context
from afilo_db.security.roles import SERVICE_ROLE
from tests.security.conftest import add_product, app_engine, as_app_role

FREE = "user_freeuser01"
# Handle -> id of the products every test starts with (the same handles in every test database).
PRODUCTS: dict[str, uuid.UUID] = {}
SUBSCRIBER = "user_subscriber1"


@pytest.fixture
def service(database_url: str, service_password: str) -> Iterator[Connection]:
    """The service role's own login on this test's database (what the webhook handlers use)."""
    engine = app_engine(as_app_role(database_url, service_password, SERVICE_ROLE))
    with engine.connect() as connection:
        yield connection
    engine.dispose()


@pytest.fixture
def app(database_url: str, app_password: str, service: Connection) -> Iterator[Connection]:
    """The application role on this test's own database, with two users and three products."""
    with psycopg.connect(database_url) as owner:
        for clerk_user_id in (FREE, SUBSCRIBER):
            owner.execute(
                "INSERT INTO user_profiles (clerk_user_id, email) VALUES (%s, %s)",
                (clerk_user_id, f"{clerk_user_id}@example.com"),
            )
        for handle, tier in (("professional-kit", "professional"), ("starter-kit", "starter"),
                             ("purchase-only-kit", None)):  # fmt: skip
            PRODUCTS[handle] = add_product(owner, handle, tier)[0]
    engine = app_engine(as_app_role(database_url, app_password))
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def one(connection: Connection, sql: str, **parameters: Any) -> Any:
    return connection.execute(text(sql), parameters).scalar_one()


def subscribe(
    connection: Connection,
    clerk_user_id: str,
    tier: str,
    status: str = "active",
    period_end: str = "now() + interval '30 days'",
) -> uuid.UUID:
    """What the Stripe webhook handler does, on the service login."""
    with service_context(connection):
        subscription: uuid.UUID = one(
            connection,
            "INSERT INTO user_subscriptions (user_id, stripe_subscription_id, stripe_price_id,"
            " tier, status, amount, current_period_start, current_period_end)"
            " SELECT id, 'sub_' || md5(random()::text), 'price_tier000001', :tier, :status, 19,"
            f" {period_end} - interval '30 days', {period_end}"
            " FROM user_profiles WHERE clerk_user_id = :user RETURNING id",
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
    product: uuid.UUID,
    *,
    subscription: uuid.UUID | None = None,
    purchase_id: uuid.UUID | None = None,
) -> bool:
    """Record a download as the user; False when the database refuses it. The product is named
    by its id, so a product the user cannot see is tried all the same."""
    try:
        with as_user(connection, clerk_user_id):
            connection.execute(
                text(
                    "INSERT INTO downloads (user_id, product_id, subscription_id, purchase_id)"
                    " VALUES (current_user_profile_id(), :product, :subscription, :purchase)"
                ),
                {"subscription": subscription, "purchase": purchase_id, "product": product},
            )
        connection.commit()
        return True
    except ProgrammingError as error:
        if not isinstance(error.orig, psycopg.errors.InsufficientPrivilege):
            raise
        connection.rollback()
        return False


def test_a_free_user_cannot_download_a_paid_tier_product(
    app: Connection, service: Connection
) -> None:
    starter = subscribe(service, FREE, "free")
    assert not download(app, FREE, PRODUCTS["professional-kit"], subscription=starter)


def test_a_lower_tier_does_not_include_a_higher_tier_product(
    app: Connection, service: Connection
) -> None:
    starter = subscribe(service, SUBSCRIBER, "starter")
    assert download(app, SUBSCRIBER, PRODUCTS["starter-kit"], subscription=starter)
    assert not download(app, SUBSCRIBER, PRODUCTS["professional-kit"], subscription=starter)


@pytest.mark.parametrize("tier", ["professional", "enterprise"])
def test_an_active_subscription_of_that_tier_or_higher_can(
    app: Connection, service: Connection, tier: str
) -> None:
    subscription = subscribe(service, SUBSCRIBER, tier)
    assert download(app, SUBSCRIBER, PRODUCTS["professional-kit"], subscription=subscription)
    assert download(app, SUBSCRIBER, PRODUCTS["starter-kit"], subscription=subscription)
    # A product sold only by purchase is in no tier.
    assert not download(app, SUBSCRIBER, PRODUCTS["purchase-only-kit"], subscription=subscription)


def test_after_the_subscription_is_canceled_they_cannot(
    app: Connection, service: Connection
) -> None:
    subscription = subscribe(service, SUBSCRIBER, "professional")
    assert download(app, SUBSCRIBER, PRODUCTS["professional-kit"], subscription=subscription)
    with service_context(service):
        service.execute(
            text(
                "UPDATE user_subscriptions SET status = 'canceled', canceled_at = now() WHERE id = :id"
            ),
            {"id": subscription},
        )
    service.commit()
    assert not download(app, SUBSCRIBER, PRODUCTS["professional-kit"], subscription=subscription)
    # What was downloaded stays in the user's history.
    with as_user(app, SUBSCRIBER):
        assert one(app, "SELECT count(*) FROM downloads") == 1


@pytest.mark.parametrize(("status", "entitled"), [("trialing", True), ("past_due", True),
                                                 ("unpaid", False), ("incomplete", False)])  # fmt: skip
def test_only_entitling_statuses_count(
    app: Connection, service: Connection, status: str, entitled: bool
) -> None:
    subscription = subscribe(service, SUBSCRIBER, "enterprise", status)
    assert download(app, SUBSCRIBER, PRODUCTS["starter-kit"], subscription=subscription) is entitled


def test_a_paid_purchase_grants_that_product_only(app: Connection, service: Connection) -> None:
    bought = purchase(service, FREE, "purchase-only-kit")
    assert download(app, FREE, PRODUCTS["purchase-only-kit"], purchase_id=bought)
    assert not download(app, FREE, PRODUCTS["starter-kit"], purchase_id=bought)
    refunded = purchase(service, FREE, "professional-kit", status="refunded")
    assert not download(app, FREE, PRODUCTS["professional-kit"], purchase_id=refunded)


def test_nobody_downloads_under_another_users_entitlement(
    app: Connection, service: Connection
) -> None:
    subscription = subscribe(service, SUBSCRIBER, "enterprise")
    bought = purchase(service, SUBSCRIBER, "purchase-only-kit")
    assert not download(app, FREE, PRODUCTS["starter-kit"], subscription=subscription)
    assert not download(app, FREE, PRODUCTS["purchase-only-kit"], purchase_id=bought)


def test_an_active_subscription_whose_period_ended_is_refused(
    app: Connection, service: Connection
) -> None:
    """Stripe may never send the event that ends it: the period's end is enough."""
    lapsed = subscribe(service, SUBSCRIBER, "enterprise", period_end="now() - interval '60 days'")
    assert not download(app, SUBSCRIBER, PRODUCTS["starter-kit"], subscription=lapsed)
    trial_over = subscribe(service, FREE, "enterprise", "trialing", "now() - interval '1 second'")
    assert not download(app, FREE, PRODUCTS["starter-kit"], subscription=trial_over)


def test_past_due_keeps_downloads_for_the_configured_grace_period(
    app: Connection, service: Connection, database_url: str
) -> None:
    yesterday = subscribe(service, SUBSCRIBER, "enterprise", "past_due", "now() - interval '1 day'")
    assert download(app, SUBSCRIBER, PRODUCTS["starter-kit"], subscription=yesterday)
    last_week = subscribe(service, FREE, "enterprise", "past_due", "now() - interval '5 days'")
    assert not download(app, FREE, PRODUCTS["starter-kit"], subscription=last_week)
    with psycopg.connect(database_url) as owner:
        owner.execute("UPDATE billing_settings SET past_due_grace = interval '7 days'")
    assert download(app, FREE, PRODUCTS["starter-kit"], subscription=last_week)


def test_a_draft_product_is_refused_even_when_bought_and_the_application_never_sees_it(
    app: Connection, service: Connection, database_url: str
) -> None:
    bought = purchase(service, FREE, "purchase-only-kit")
    subscription = subscribe(service, SUBSCRIBER, "enterprise")
    with psycopg.connect(database_url) as owner:
        owner.execute("UPDATE products SET status = 'draft' WHERE handle <> 'professional-kit'")
        owner.execute("UPDATE products SET status = 'archived' WHERE handle = 'professional-kit'")
    assert not download(app, FREE, PRODUCTS["purchase-only-kit"], purchase_id=bought)
    assert not download(app, SUBSCRIBER, PRODUCTS["starter-kit"], subscription=subscription)
    assert not download(app, SUBSCRIBER, PRODUCTS["professional-kit"], subscription=subscription)
    for table in ("products", "product_variants"):
        assert one(app, f"SELECT count(*) FROM {table}") == 0, table
        with as_user(app, SUBSCRIBER):
            assert one(app, f"SELECT count(*) FROM {table}") == 0, table
        app.rollback()
    with service_context(service):
        assert one(service, "SELECT count(*) FROM products") == 3


def test_only_the_current_state_of_a_subscription_entitles(
    app: Connection, service: Connection
) -> None:
    subscription = subscribe(service, SUBSCRIBER, "enterprise")
    with service_context(service):
        service.execute(
            text("UPDATE user_subscriptions SET is_current = false WHERE id = :id"),
            {"id": subscription},
        )
    service.commit()
    assert not download(app, SUBSCRIBER, PRODUCTS["starter-kit"], subscription=subscription)
