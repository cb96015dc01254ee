"""Deliveries signed locally exactly as Stripe and Clerk (Svix) sign them: valid ones are
applied; tampered, expired, unsigned or wrongly signed ones get 400 and write nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import stripe
from starlette.testclient import TestClient

from tests.billing.conftest import Shop, parked_problems, post
from tests.billing.providers import (
    STRIPE_SECRET,
    Delivery,
    clerk_delivery,
    clerk_user,
    stripe_delivery,
    subscription,
)

NOW = int(time.time())
CLERK_ID = "user_verify000001"


def clerk_created(**signing: object) -> Delivery:
    data = clerk_user(CLERK_ID, "ada@example.com", NOW * 1000)
    return clerk_delivery("msg_verify000001", "user.created", NOW * 1000, data, **signing)  # type: ignore[arg-type]


def stripe_created(**signing: object) -> Delivery:
    obj = subscription("sub_verify000001", CLERK_ID, "active", "starter", NOW, NOW + 86400)
    return stripe_delivery("evt_verify000001", "customer.subscription.created", NOW, obj, **signing)  # type: ignore[arg-type]


def written(shop: Shop) -> tuple[object, ...]:
    with psycopg.connect(shop.owner_url) as owner:
        row = owner.execute(
            "SELECT (SELECT count(*) FROM webhook_events), (SELECT count(*) FROM user_profiles),"
            " (SELECT count(*) FROM user_subscriptions), (SELECT count(*) FROM user_activity_log)"
        ).fetchone()
    assert row is not None
    return tuple(row)


def tampered(delivery: Delivery) -> Delivery:
    return replace(delivery, body=delivery.body.replace(b"ada@example.com", b"eve@example.com")
                   .replace(b'"starter"', b'"professional"'))  # fmt: skip


def unsigned(delivery: Delivery) -> Delivery:
    return replace(delivery, headers={})


def signature_dropped(delivery: Delivery) -> Delivery:
    kept = {k: v for k, v in delivery.headers.items() if k.lower() not in ("svix-signature",
                                                                           "stripe-signature")}  # fmt: skip
    return replace(delivery, headers=kept)


BAD: dict[str, Callable[[], Delivery]] = {
    "stripe tampered": lambda: tampered(stripe_created()),
    "stripe expired": lambda: stripe_created(signed_at=NOW - 301),
    "stripe unsigned": lambda: unsigned(stripe_created()),
    "stripe wrong secret": lambda: stripe_created(secret="whsec_someoneelse"),
    "clerk tampered": lambda: tampered(clerk_created()),
    "clerk expired": lambda: clerk_created(signed_at=datetime.now(UTC) - timedelta(minutes=6)),
    "clerk from the future": lambda: clerk_created(
        signed_at=datetime.now(UTC) + timedelta(minutes=6)
    ),
    "clerk unsigned": lambda: unsigned(clerk_created()),
    "clerk signature dropped": lambda: signature_dropped(clerk_created()),
    "clerk wrong secret": lambda: clerk_created(secret="whsec_" + "QUJD" * 8),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_signature_gets_400_and_writes_nothing(
    client: TestClient, shop: Shop, name: str
) -> None:
    # A real user exists, so that a forged subscription would have somewhere to go.
    assert post(client, clerk_created())[0] == 200
    before = written(shop)
    status, body = post(client, BAD[name]())
    assert status == 400, body
    assert "signature" in str(body["problems"])
    assert written(shop) == before


def test_valid_signatures_are_applied(client: TestClient, shop: Shop) -> None:
    assert post(client, clerk_created()) == (
        200, {"status": "applied", "event_id": "msg_verify000001"})  # fmt: skip
    assert post(client, stripe_created()) == (
        200, {"status": "applied", "event_id": "evt_verify000001"})  # fmt: skip
    assert written(shop)[:3] == (2, 1, 1)


def test_a_signed_body_that_is_not_an_event_gets_400(client: TestClient, shop: Shop) -> None:
    body = "[1, 2, 3]"
    header = stripe.WebhookSignature.generate_signature_header(body, STRIPE_SECRET)
    response = client.post(
        "/webhooks/stripe", content=body.encode(), headers={"Stripe-Signature": header}
    )
    assert response.status_code == 400
    assert written(shop) == (0, 0, 0, 0)


def test_a_valid_event_with_bad_content_is_parked_naming_the_field(
    client: TestClient, shop: Shop
) -> None:
    data = clerk_user(CLERK_ID, "not an email", NOW * 1000)
    answer = post(client, clerk_delivery("msg_bademail001", "user.created", NOW * 1000, data))
    assert "email" in str(parked_problems(answer))
    # The event alone is kept, for an operator: nothing of what it would change.
    assert written(shop) == (1, 0, 0, 0)


def test_a_subscription_before_its_user_gets_409_and_succeeds_on_retry(
    client: TestClient, shop: Shop
) -> None:
    status, body = post(client, stripe_created())
    assert (status, body["status"]) == (409, "deferred"), body
    # Only the event, as deferred: counted, to be taken up again on the retry.
    assert written(shop) == (1, 0, 0, 0)
    assert post(client, clerk_created())[0] == 200
    assert post(client, stripe_created()) == (
        200, {"status": "applied", "event_id": "evt_verify000001"})  # fmt: skip
    assert written(shop)[:3] == (2, 1, 1)
    with psycopg.connect(shop.owner_url) as owner:
        assert owner.execute(
            "SELECT outcome, reason, attempts FROM webhook_events WHERE provider = 'stripe'"
        ).fetchall() == [("applied", None, 2)]
