"""Payloads in the shapes Stripe's and Clerk's APIs send (tests/billing/fixtures/: the 2025-03-31
shape with the period on each item and two items, the 2020-2025 shape with the period on the
subscription, dj-stripe's legacy Plan shape, both invoice shapes, a Checkout Session with a real
`cs_test_...` id, a renewal's invoice, InvoicePayment, PaymentIntent and refund in the 2025-03-31
shape, Clerk's user.created), signed as the providers sign and delivered to the real endpoint."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import stripe
from starlette.testclient import TestClient
from svix.webhooks import Webhook

from tests.billing.conftest import Shop, post
from tests.billing.providers import (
    CLERK_SECRET,
    STRIPE_SECRET,
    Delivery,
    clerk_delivery,
    clerk_user,
)
from tests.billing.test_handlers import owner_rows

FIXTURES = Path(__file__).parent / "fixtures"
CLERK_ID = "user_2vEZJ4mW4Q0GxK8b6XnRzT1aBcD"
SUB = "sub_1RIv6mLkdIwHu7ixkPDpbR2s"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def stripe_fixture(name: str) -> Delivery:
    body = fixture(name)
    header = stripe.WebhookSignature.generate_signature_header(
        body, STRIPE_SECRET, int(time.time())
    )
    return Delivery("stripe", json.loads(body)["id"], body.encode(), {"Stripe-Signature": header})


def clerk_fixture(name: str, message_id: str) -> Delivery:
    body = fixture(name)
    moment = datetime.now(UTC)
    headers = {"svix-id": message_id, "svix-timestamp": str(int(moment.timestamp())),
               "svix-signature": Webhook(CLERK_SECRET).sign(message_id, moment, body)}  # fmt: skip
    return Delivery("clerk", message_id, body.encode(), headers)


def answer(client: TestClient, delivery: Delivery) -> tuple[int, Any]:
    status, body = post(client, delivery)
    return status, body.get("status")


def subscription_rows(shop: Shop, subscription_id: str) -> list[tuple[Any, ...]]:
    return owner_rows(
        shop,
        "SELECT status, tier, stripe_price_id, amount, extract(epoch FROM current_period_end)::bigint,"
        " is_current FROM user_subscriptions WHERE stripe_subscription_id = %s"
        " ORDER BY state_as_of",
        subscription_id,
    )


def test_stripe_and_clerk_payloads_of_every_shape_are_applied_or_recorded(
    client: TestClient, shop: Shop
) -> None:
    assert answer(client, clerk_fixture("clerk_user_created.json", "msg_2vEZKb1cD2eF3gH4iJ5kL6m")) == (
        200, "applied")  # fmt: skip
    assert owner_rows(shop, "SELECT clerk_user_id, email, display_name FROM user_profiles") == [
        (CLERK_ID, "ada@example.com", "Ada Lovelace")]  # fmt: skip

    created = json.loads(fixture("subscription_created_2025_03_31.json"))["data"]["object"]
    assert answer(client, stripe_fixture("subscription_created_2025_03_31.json")) == (
        200,
        "applied",
    )
    # The tier comes from the second item (the first is an add-on), the period from the item.
    assert subscription_rows(shop, SUB) == [
        ("active", "professional", "price_pro000001", 49,
         created["items"]["data"][1]["current_period_end"], True)]  # fmt: skip

    assert answer(client, stripe_fixture("invoice_paid_2025_03_31.json")) == (200, "recorded")
    updated = json.loads(fixture("subscription_updated_2024_price.json"))["data"]["object"]
    assert answer(client, stripe_fixture("subscription_updated_2024_price.json")) == (
        200,
        "applied",
    )
    assert subscription_rows(shop, SUB)[-1] == (
        "active", "starter", "price_starter000001", 19, updated["current_period_end"], True)  # fmt: skip
    assert answer(client, stripe_fixture("invoice_payment_failed_legacy.json")) == (200, "recorded")
    assert answer(client, stripe_fixture("payment_intent_succeeded_subscription.json")) == (
        200, "ignored")  # fmt: skip
    assert answer(client, stripe_fixture("charge_refunded_subscription.json")) == (200, "recorded")
    assert [row[0] for row in subscription_rows(shop, SUB)] == ["active", "active"]

    assert answer(client, stripe_fixture("checkout_session_completed.json")) == (200, "applied")
    assert owner_rows(shop, "SELECT status, stripe_checkout_session_id FROM purchases") == [
        ("paid", "cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY")]  # fmt: skip


def test_a_legacy_plan_with_a_chosen_id_is_mirrored(client: TestClient, shop: Shop) -> None:
    legacy = json.loads(fixture("subscription_deleted_legacy_plan.json"))["data"]["object"]
    clerk_id = legacy["metadata"]["clerk_user_id"]
    signed_up = clerk_delivery("msg_legacygold0001", "user.created", 1558000000000,
                               clerk_user(clerk_id, "gold@example.com", 1558000000000))  # fmt: skip
    assert post(client, signed_up)[0] == 200
    assert answer(client, stripe_fixture("subscription_deleted_legacy_plan.json")) == (
        200, "applied")  # fmt: skip
    assert subscription_rows(shop, legacy["id"]) == [
        ("canceled", "enterprise", "gold21323", 20, legacy["current_period_end"], True)]  # fmt: skip


def test_a_renewal_and_its_refund_in_the_2025_03_31_shape_are_recorded_against_the_subscription(
    client: TestClient, shop: Shop
) -> None:
    """Neither the renewal's PaymentIntent nor its Charge names the invoice: the InvoicePayment
    links them to it, and through it to the subscription."""
    assert (
        answer(client, clerk_fixture("clerk_user_created.json", "msg_2vEZKb1cD2eF3gH4iJ5kL6m"))[0]
        == 200
    )
    for name in ("subscription_created_2025_03_31.json", "invoice_paid_renewal_2025_03_31.json"):
        assert answer(client, stripe_fixture(name))[0] == 200, name
    for name in ("invoice_payment_paid_2025_03_31.json",
                 "payment_intent_succeeded_subscription.json",
                 "charge_refunded_subscription.json"):  # fmt: skip
        assert answer(client, stripe_fixture(name)) == (200, "recorded"), name
    assert owner_rows(
        shop,
        "SELECT action, entity_id FROM user_activity_log WHERE action IN"
        " ('subscription.invoice_payment.paid', 'subscription.payment_succeeded',"
        " 'subscription.payment_refunded') ORDER BY id",
    ) == [("subscription.invoice_payment.paid", SUB), ("subscription.payment_succeeded", SUB),
          ("subscription.payment_refunded", SUB)]  # fmt: skip
