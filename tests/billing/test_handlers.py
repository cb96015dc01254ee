"""What the events do: once per event however often it is delivered, never an older state over
a newer one, and a whole lifecycle (trial -> active -> past_due -> canceled, a purchase refunded)
leaving the history, the tier and the downloads right at each step. Clerk's users, deleted ones
erased, and an audit entry naming the event for every change."""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from afilo_db.billing import ingest, verify_clerk
from afilo_db.db.engine import create_app_engine
from afilo_db.db.urls import sqlalchemy_url
from afilo_db.errors import ForbiddenError
from afilo_db.security import as_user
from afilo_db.services.entitlements import entitlements
from tests.billing.conftest import Shop, parked_problems, post
from tests.billing.providers import (
    CLERK_SECRET,
    checkout_session,
    clerk_delivery,
    clerk_user,
    invoice,
    payment_intent,
    refund,
    stripe_delivery,
    subscription,
)

NOW = int(time.time())
DAY = 86400
ADA = "user_ada000000001"
SUB = "sub_ada000000001"
CUSTOMER = "cus_ada000000001"


def owner_rows(shop: Shop, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(shop.owner_url) as owner:
        return [tuple(row) for row in owner.execute(sql, parameters).fetchall()]


def history(shop: Shop) -> list[tuple[Any, ...]]:
    return owner_rows(
        shop,
        "SELECT status, is_current FROM user_subscriptions WHERE stripe_subscription_id = %s"
        " ORDER BY state_as_of, state_event_id",
        SUB,
    )


def tier(shop: Shop, clerk_user_id: str = ADA) -> str:
    return str(owner_rows(shop, "SELECT subscription_tier FROM user_profiles"
                                " WHERE clerk_user_id = %s", clerk_user_id)[0][0])  # fmt: skip


def downloadable(shop: Shop, clerk_user_id: str = ADA) -> set[str]:
    """What the user may download now, asked as the application role acting for them, and
    proven by recording each download (rolled back) and trying the others."""
    engine = create_engine(sqlalchemy_url(shop.app_url))
    allowed: set[str] = set()
    try:
        with Session(engine) as session:
            as_user(session, clerk_user_id)
            user_id = session.execute(text("SELECT current_user_profile_id()")).scalar_one()
            granted = {item.product_handle: item for item in entitlements(session, user_id)}
            session.rollback()
            candidates = owner_rows(
                shop,
                "SELECT p.handle, p.id, (SELECT s.id FROM user_subscriptions s JOIN user_profiles u"
                " ON u.id = s.user_id WHERE u.clerk_user_id = %s AND s.is_current LIMIT 1),"
                " (SELECT pu.id FROM purchases pu WHERE pu.product_id = p.id LIMIT 1)"
                " FROM products p",
                clerk_user_id,
            )
            for handle, product_id, subscription_id, purchase_id in candidates:
                for by_subscription, by_purchase in ((subscription_id, None), (None, purchase_id)):
                    if by_subscription is None and by_purchase is None:
                        continue
                    try:
                        with as_user(session, clerk_user_id):
                            session.execute(
                                text("INSERT INTO downloads (user_id, product_id,"
                                     " subscription_id, purchase_id) VALUES"
                                     " (current_user_profile_id(), :p, :s, :pu)"),
                                {"p": product_id, "s": by_subscription, "pu": by_purchase},
                            )  # fmt: skip
                        allowed.add(handle)
                    except ProgrammingError as error:
                        if not isinstance(error.orig, psycopg.errors.InsufficientPrivilege):
                            raise
                    session.rollback()
    finally:
        engine.dispose()
    assert set(granted) == allowed, (granted, allowed)
    return allowed


def signed_up(client: TestClient, clerk_user_id: str = ADA, email: str = "ada@example.com") -> None:
    data = clerk_user(clerk_user_id, email, (NOW - 30 * DAY) * 1000)
    delivery = clerk_delivery(
        f"msg_{clerk_user_id[5:]}", "user.created", (NOW - 30 * DAY) * 1000, data
    )
    assert post(client, delivery)[0] == 200


def sub_event(
    number: int, event_type: str, status: str, period: tuple[int, int], **extra: Any
) -> Any:
    obj = subscription(SUB, ADA, status, "professional", *period, customer=CUSTOMER, **extra)
    return stripe_delivery(f"evt_ada{number:010d}", event_type, NOW - 20 * DAY + number, obj)


def test_the_same_event_five_times_has_one_effect(client: TestClient, shop: Shop) -> None:
    signed_up(client)
    created = sub_event(1, "customer.subscription.created", "active", (NOW - DAY, NOW + 29 * DAY))
    outcomes = [post(client, created) for _ in range(5)]
    assert [status for status, _ in outcomes] == [200] * 5
    assert [body["status"] for _, body in outcomes] == ["applied"] + ["duplicate"] * 4
    assert history(shop) == [("active", True)]
    assert owner_rows(shop, "SELECT count(*) FROM webhook_events WHERE event_id = %s",
                      created.event_id) == [(1,)]  # fmt: skip
    assert owner_rows(shop, "SELECT count(*) FROM user_activity_log WHERE event_id = %s"
                      " AND action = 'subscription.state_recorded'", created.event_id) == [(1,)]  # fmt: skip
    paid = stripe_delivery("evt_pi0000000001", "payment_intent.succeeded", NOW,
                           payment_intent("pi_ada000000001", ADA, CUSTOMER))  # fmt: skip
    for _ in range(5):
        assert post(client, paid)[0] == 200
    assert owner_rows(shop, "SELECT count(*), min(status) FROM purchases") == [(1, "paid")]


def test_a_subscriptions_state_and_tier_are_logged_naming_the_rows_written(
    client: TestClient, shop: Shop
) -> None:
    """The state's and the tier's statements log what they wrote themselves (nothing is read
    back): the state's row, the tier it set, and no tier entry when the tier stays."""
    signed_up(client)
    created = sub_event(1, "customer.subscription.created", "active", (NOW - DAY, NOW + 29 * DAY))
    renewed = sub_event(2, "customer.subscription.updated", "active", (NOW, NOW + 30 * DAY))
    ((profile,),) = owner_rows(shop, "SELECT id::text FROM user_profiles WHERE clerk_user_id = %s",
                               ADA)  # fmt: skip
    for event in (created, renewed):
        assert post(client, event)[0] == 200
    logged = (
        "SELECT action, entity_type, entity_id, details FROM user_activity_log WHERE event_id = %s"
    )
    state = "SELECT id::text FROM user_subscriptions WHERE state_event_id = %s"
    ((created_state,),) = owner_rows(shop, state, created.event_id)
    ((renewed_state,),) = owner_rows(shop, state, renewed.event_id)
    subscription_created = {"event_type": "customer.subscription.created"}
    assert sorted(owner_rows(shop, logged, created.event_id)) == sorted([
        ("profile.stripe_customer_linked", "user_profiles", profile,
         {**subscription_created, "stripe_customer_id": CUSTOMER}),
        ("subscription.state_recorded", "user_subscriptions", created_state,
         {**subscription_created, "stripe_subscription_id": SUB, "status": "active",
          "tier": "professional", "current": True}),
        ("profile.tier_changed", "user_profiles", profile,
         {**subscription_created, "subscription_tier": "professional"}),
    ])  # fmt: skip
    assert owner_rows(shop, logged, renewed.event_id) == [
        ("subscription.state_recorded", "user_subscriptions", renewed_state,
         {"event_type": "customer.subscription.updated", "stripe_subscription_id": SUB,
          "status": "active", "tier": "professional", "current": True}),
    ]  # fmt: skip


def test_an_older_update_changes_nothing_current(client: TestClient, shop: Shop) -> None:
    signed_up(client)
    newer = sub_event(5, "customer.subscription.updated", "canceled", (NOW - DAY, NOW + DAY),
                      canceled_at=NOW - 20 * DAY + 5)  # fmt: skip
    older = sub_event(3, "customer.subscription.updated", "active", (NOW - DAY, NOW + 29 * DAY))
    assert post(client, newer)[1]["status"] == "applied"
    before = owner_rows(shop, "SELECT * FROM user_subscriptions WHERE is_current")
    tier_before = tier(shop)
    assert post(client, older)[1]["status"] == "applied"
    # The older state takes its place in the history; the current state is untouched.
    assert owner_rows(shop, "SELECT * FROM user_subscriptions WHERE is_current") == before
    assert history(shop) == [("active", False), ("canceled", True)]
    assert tier(shop) == tier_before == "free"
    assert downloadable(shop) == set()
    # Same for a profile: an older user.updated does not overwrite a newer one.
    later = clerk_user(ADA, "ada@new.example.com", (NOW - DAY) * 1000, first_name="Augusta")
    earlier = clerk_user(ADA, "ada@old.example.com", (NOW - 2 * DAY) * 1000, first_name="Old")
    assert (
        post(client, clerk_delivery("msg_later0000001", "user.updated", NOW * 1000, later))[0]
        == 200
    )
    assert (
        post(client, clerk_delivery("msg_early0000001", "user.updated", NOW * 1000, earlier))[0]
        == 200
    )
    assert owner_rows(shop, "SELECT email, display_name, state_event_id FROM user_profiles") == [
        ("ada@new.example.com", "Augusta Lovelace", "msg_later0000001")
    ]


def test_a_whole_lifecycle(client: TestClient, shop: Shop) -> None:
    signed_up(client)
    assert downloadable(shop) == set() and tier(shop) == "free"

    trial = (NOW - 10 * DAY, NOW + 4 * DAY)
    post(client, sub_event(1, "customer.subscription.created", "trialing", trial))
    assert history(shop) == [("trialing", True)]
    assert tier(shop) == "professional"
    # The professional tier includes the starter tier; a draft product is in no one's reach.
    assert downloadable(shop) == {"pro-kit", "starter-kit"}

    # The trial's free invoice is recorded against the subscription and changes no state; the
    # subscription's own event makes it active.
    status, body = post(client, stripe_delivery(
        "evt_ada0000000002", "invoice.paid", NOW - 20 * DAY + 2,
        invoice("in_ada000000001", SUB, CUSTOMER, trial, 0)))  # fmt: skip
    assert (status, body["status"]) == (200, "recorded")
    active = (NOW - DAY, NOW + 29 * DAY)
    post(client, sub_event(3, "customer.subscription.updated", "active", active))
    assert history(shop) == [("trialing", False), ("active", True)]
    assert downloadable(shop) == {"pro-kit", "starter-kit"}

    # The renewal fails: past_due, its period ended yesterday, inside the 3-day grace period.
    lapsed = (NOW - 31 * DAY, NOW - DAY)
    post(client, stripe_delivery("evt_adainvoice004", "invoice.payment_failed", NOW - 20 * DAY + 4,
                                 invoice("in_ada000000002", SUB, CUSTOMER, lapsed, 0)))  # fmt: skip
    post(client, sub_event(4, "customer.subscription.updated", "past_due", lapsed))
    assert history(shop)[-1] == ("past_due", True)
    assert tier(shop) == "professional"
    assert downloadable(shop) == {"pro-kit", "starter-kit"}
    with psycopg.connect(shop.owner_url) as owner:
        owner.execute("UPDATE billing_settings SET past_due_grace = interval '12 hours'")
    assert downloadable(shop) == set()

    # Canceled: nothing, and the profile is back to free.
    post(client, sub_event(5, "customer.subscription.deleted", "canceled", lapsed,
                           canceled_at=NOW - 20 * DAY + 5))  # fmt: skip
    assert [status for status, _ in history(shop)] == [
        "trialing", "active", "past_due", "canceled"]  # fmt: skip
    assert [current for _, current in history(shop)] == [False] * 3 + [True]
    assert tier(shop) == "free"
    assert downloadable(shop) == set()

    # A one-off purchase: checkout, then the payment's own event, then a full refund.
    checkout = checkout_session("cs_ada000000001", "pi_ada000000001", ADA, CUSTOMER)
    post(client, stripe_delivery("evt_ada0000000006", "checkout.session.completed", NOW, checkout))
    assert downloadable(shop) == {"one-off-kit"}
    post(client, stripe_delivery("evt_ada0000000007", "payment_intent.succeeded", NOW,
                                 payment_intent("pi_ada000000001", ADA, CUSTOMER)))  # fmt: skip
    assert owner_rows(shop, "SELECT status, stripe_checkout_session_id FROM purchases") == [
        ("paid", "cs_ada000000001")]  # fmt: skip
    post(client, stripe_delivery("evt_ada0000000008", "charge.refunded", NOW + 1,
                                 refund("ch_ada000000001", "pi_ada000000001")))  # fmt: skip
    assert owner_rows(shop, "SELECT status, state_event_id FROM purchases") == [
        ("refunded", "evt_ada0000000008")]  # fmt: skip
    assert downloadable(shop) == set()

    # Every change is in the audit trail with the event that made it.
    logged = owner_rows(shop, "SELECT DISTINCT event_id FROM user_activity_log"
                              " WHERE actor IN ('stripe', 'clerk') ORDER BY 1")  # fmt: skip
    stored = owner_rows(shop, "SELECT event_id FROM webhook_events ORDER BY 1")
    assert logged == stored
    assert owner_rows(shop, "SELECT count(*) FROM webhook_events WHERE user_id IS NULL") == [(0,)]


def test_a_late_refund_before_the_purchase_waits_and_a_late_payment_does_not_undo_it(
    client: TestClient, shop: Shop
) -> None:
    signed_up(client)
    refunded = stripe_delivery("evt_refund000001", "charge.refunded", NOW + 5,
                               refund("ch_ada000000001", "pi_ada000000001"))  # fmt: skip
    assert post(client, refunded)[0] == 409
    paid = stripe_delivery("evt_paid00000001", "payment_intent.succeeded", NOW,
                           payment_intent("pi_ada000000001", ADA, CUSTOMER))  # fmt: skip
    assert post(client, paid)[0] == 200
    assert post(client, refunded)[0] == 200
    checkout = checkout_session("cs_ada000000001", "pi_ada000000001", ADA, CUSTOMER)
    assert post(client, stripe_delivery("evt_checkout0001", "checkout.session.completed",
                                        NOW - 5, checkout))[0] == 200  # fmt: skip
    assert owner_rows(shop, "SELECT status FROM purchases") == [("refunded",)]


def test_user_deleted_erases_and_later_events_of_that_user_are_ignored(
    client: TestClient, shop: Shop
) -> None:
    signed_up(client)
    signed_up(client, "user_bob000000001", "bob@example.com")
    post(client, sub_event(1, "customer.subscription.created", "active", (NOW - DAY, NOW + DAY)))
    deleted = clerk_delivery("msg_deleted000001", "user.deleted", NOW * 1000,
                             {"id": ADA, "object": "user", "deleted": True})  # fmt: skip
    assert post(client, deleted)[1]["status"] == "applied"
    profiles = owner_rows(shop, "SELECT clerk_user_id, email, display_name FROM user_profiles"
                                " ORDER BY email")  # fmt: skip
    assert profiles[0] == ("user_bob000000001", "bob@example.com", "Ada Lovelace")
    assert profiles[1][0].startswith("user_erased") and profiles[1][1].endswith("@erased.invalid")
    # The billing history stays; the events' payloads do not.
    assert owner_rows(shop, "SELECT count(*) FROM user_subscriptions") == [(1,)]
    assert owner_rows(shop, "SELECT count(*) FROM webhook_events WHERE payload LIKE %s",
                      "%ada@example.com%") == [(0,)]  # fmt: skip
    assert owner_rows(shop, "SELECT actor, event_id FROM user_activity_log"
                            " WHERE action = 'user.erased'") == [("clerk", "msg_deleted000001")]  # fmt: skip
    # A user.updated of Ada delivered late does not bring her back.
    late = clerk_user(ADA, "ada@example.com", (NOW + DAY) * 1000)
    assert (
        post(client, clerk_delivery("msg_late00000001", "user.updated", NOW * 1000, late))[0] == 200
    )
    assert owner_rows(shop, "SELECT count(*) FROM user_profiles WHERE clerk_user_id = %s", ADA) == [
        (0,)
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [("status", "bogus"), ("tier", "platinum"), ("currency", "xyz")],
)
def test_an_event_breaking_a_rule_writes_nothing(
    client: TestClient, shop: Shop, field: str, value: str
) -> None:
    signed_up(client)
    obj = subscription(SUB, ADA, "active", "professional", NOW, NOW + DAY, customer=CUSTOMER)
    if field == "status":
        obj["status"] = value
    elif field == "tier":
        obj["items"]["data"][0]["price"]["metadata"]["tier"] = value
    else:
        obj["items"]["data"][0]["price"]["currency"] = value
    delivery = stripe_delivery(
        f"evt_bad{uuid.uuid4().hex[:10]}", "customer.subscription.created", NOW, obj
    )
    assert field in str(parked_problems(post(client, delivery)))
    assert owner_rows(shop, "SELECT outcome FROM webhook_events WHERE provider = 'stripe'") == [
        ("unresolved",)
    ]
    assert owner_rows(shop, "SELECT count(*) FROM user_subscriptions") == [(0,)]


def test_ingest_on_the_application_roles_login_is_forbidden_and_writes_nothing(
    shop: Shop,
) -> None:
    # The service context goes in one round trip with the event's row: PostgreSQL's refusal of
    # the role switch must still surface as ForbiddenError, before anything is stored.
    delivery = clerk_delivery("msg_forbidden0001", "user.created", NOW * 1000,
                              clerk_user(ADA, "ada@example.com", NOW * 1000))  # fmt: skip
    event = verify_clerk(delivery.body, delivery.headers, CLERK_SECRET)
    engine = create_app_engine(shop.app_url)
    try:
        with Session(engine) as session, pytest.raises(ForbiddenError, match="service"):
            ingest(session, event)
    finally:
        engine.dispose()
    assert owner_rows(shop, "SELECT count(*) FROM webhook_events") == [(0,)]
