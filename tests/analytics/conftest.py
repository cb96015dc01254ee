"""A small marketplace with figures computed by hand (see the expected values in the tests).

The money is written as production writes it: each subscription's history of states at Stripe's
time (`user_subscriptions`, the newest current), and Stripe's payment and refund events stored in
`webhook_events` (whose trigger records the payments). Behaviour goes through `ingest`.

February 2026: A subscribes (starter, 10/month), B and C (professional, 30/month each); their
invoices are paid; A buys product P2 once (25).
March 2026, in the same month: A upgrades to professional (10 -> 30), B downgrades to starter
(30 -> 10), C cancels (30), D subscribes (enterprise, 100); invoices of A (30), B (10), D (100)
are paid; E buys P1 (50, paid) and P2 (20, refunded on the 20th); P1 is downloaded three times;
five sessions go through the funnel; two chat conversations.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from afilo_db.analytics.events import ingest
from tests.security.conftest import _insert


def at(day: str, time: str = "12:00") -> datetime:
    return datetime.fromisoformat(f"2026-{day}T{time}:00").replace(tzinfo=UTC)


def insert(connection: psycopg.Connection[Any], table: str, **values: Any) -> uuid.UUID:
    return _insert(connection, table, values)


@dataclass
class Shop:
    url: str
    users: dict[str, uuid.UUID]
    products: dict[str, uuid.UUID]


def subscription_state(
    connection: psycopg.Connection[Any],
    user: uuid.UUID,
    name: str,
    tier: str,
    status: str,
    amount: str,
    when: datetime,
    *,
    current: bool,
    currency: str = "USD",
    step: int = 1,
) -> None:
    """One state of subscription `sub_{name}000001` as the Stripe handlers record it."""
    insert(connection, "user_subscriptions", user_id=user,
           stripe_subscription_id=f"sub_{name}000001", stripe_price_id=f"price_{tier}000001",
           tier=tier, status=status, amount=amount, currency=currency,
           current_period_start=when, current_period_end=when + timedelta(days=30),
           canceled_at=when if status == "canceled" else None, is_current=current,
           state_event_id=f"evt_{name}sub{step:04d}", state_as_of=when)  # fmt: skip


def stripe_event(
    connection: psycopg.Connection[Any],
    event_id: str,
    event_type: str,
    when: datetime,
    obj: dict[str, Any],
) -> None:
    """A Stripe event stored as the webhook endpoint stores it (the trigger on webhook_events
    records the payment or refund it reports)."""
    payload = {"id": event_id, "object": "event", "type": event_type,
               "created": int(when.timestamp()), "data": {"object": obj}}  # fmt: skip
    insert(connection, "webhook_events", provider="stripe", event_id=event_id,
           event_type=event_type, subject=obj.get("id"), payload=json.dumps(payload),
           occurred_at=when)  # fmt: skip


def invoice_paid(
    connection: psycopg.Connection[Any],
    invoice: str,
    cents: int,
    when: datetime,
    currency: str = "usd",
) -> None:
    """A subscription's invoice paid (one that bills no subscription is a one-off sale)."""
    stripe_event(connection, f"evt_{invoice}", "invoice.paid", when,
                 {"id": invoice, "object": "invoice", "amount_paid": cents, "currency": currency,
                  "subscription": f"sub_{invoice[3:]}",
                  "status_transitions": {"paid_at": int(when.timestamp())}})  # fmt: skip


def payment_succeeded(
    connection: psycopg.Connection[Any], payment_intent: str, cents: int, when: datetime
) -> None:
    stripe_event(connection, f"evt_{payment_intent}", "payment_intent.succeeded", when,
                 {"id": payment_intent, "object": "payment_intent", "amount_received": cents,
                  "currency": "usd"})  # fmt: skip


def charge_refunded(
    connection: psycopg.Connection[Any],
    event_id: str,
    charge: str,
    payment_intent: str,
    refunded_cents: int,
    when: datetime,
) -> None:
    stripe_event(connection, event_id, "charge.refunded", when,
                 {"id": charge, "object": "charge", "payment_intent": payment_intent,
                  "currency": "usd", "amount_refunded": refunded_cents,
                  "refunded": False})  # fmt: skip


def build_shop(
    connection: psycopg.Connection[Any],
) -> tuple[dict[str, uuid.UUID], dict[str, uuid.UUID]]:
    products = {
        name: insert(connection, "products", handle=f"product-{name.lower()}", title=f"Product {name}",
                     status="active")
        for name in ("P1", "P2")
    }  # fmt: skip
    for handle, product_id in products.items():  # an active product needs a variant for sale
        insert(connection, "product_variants", product_id=product_id, sku=f"{handle}-PERSONAL",
               title="Personal", license_type="personal", price=10, seats=1)  # fmt: skip
    users = {
        name: insert(connection, "user_profiles", clerk_user_id=f"user_{name}000001",
                     email=f"{name.lower()}@example.com")
        for name in "ABCDE"
    }  # fmt: skip
    history = (
        ("A", "starter", "active", "10", at("02-10")),
        ("A", "professional", "active", "30", at("03-05")),
        ("B", "professional", "active", "30", at("02-12")),
        ("B", "starter", "active", "10", at("03-08")),
        ("C", "professional", "active", "30", at("02-15")),
        ("C", "professional", "canceled", "30", at("03-10")),
        ("D", "enterprise", "active", "100", at("03-12")),
    )
    for step, (name, tier, status, monthly, when) in enumerate(history):
        current = all(other[0] != name for other in history[step + 1 :])
        subscription_state(connection, users[name], name, tier, status, monthly, when,
                           current=current, step=step)  # fmt: skip
    for invoice, cents, when in (
        ("in_A0000001", 1000, at("02-10")),
        ("in_B0000001", 3000, at("02-12")),
        ("in_C0000001", 3000, at("02-15")),
        ("in_A0000002", 3000, at("03-10")),
        ("in_B0000002", 1000, at("03-12")),
        ("in_D0000001", 10000, at("03-12")),
    ):
        invoice_paid(connection, invoice, cents, when)
    for payment_intent, cents, when in (
        ("pi_a_p2", 2500, at("02-20")),
        ("pi_e_p1", 5000, at("03-03", "10:10")),
        ("pi_e_p2", 2000, at("03-04")),
    ):
        payment_succeeded(connection, payment_intent, cents, when)
    charge_refunded(connection, "evt_refund_e_p2", "ch_e_p2", "pi_e_p2", 2000, at("03-20"))
    bought = {}
    for key, user, product, amount, status, when in (
        ("a-p2", "A", "P2", 25, "paid", at("02-20")),
        ("e-p1", "E", "P1", 50, "paid", at("03-03", "10:10")),
        ("e-p2", "E", "P2", 20, "refunded", at("03-04")),
        ("e-pending", "E", "P1", 99, "pending", at("03-05")),
    ):
        bought[key] = insert(connection, "purchases", user_id=users[user], product_id=products[product],
                             amount=amount, currency="USD", status=status, created_at=when)  # fmt: skip
    for user, product, purchase, when in (
        ("A", "P2", "a-p2", at("02-21")),
        ("E", "P1", "e-p1", at("03-03", "10:20")),
        ("E", "P1", "e-p1", at("03-06")),
        ("E", "P1", "e-p1", at("03-07")),
    ):
        insert(connection, "downloads", user_id=users[user], product_id=products[product],
               purchase_id=bought[purchase], created_at=when)  # fmt: skip
    x = insert(connection, "chat_conversations", user_id=users["E"])
    y = insert(connection, "chat_conversations", user_id=users["A"])
    for conversation, day, messages, answered, resolved, latency, satisfaction in (
        (x, "2026-03-02", 4, 2, False, 1000, 4),
        (x, "2026-03-03", 2, 2, True, 400, None),
        (y, "2026-03-05", 2, 1, False, 2200, 2),
    ):
        insert(connection, "bot_analytics", conversation_id=conversation, day=day, messages=messages,
               answered=answered, resolved=resolved, avg_latency_ms=latency,
               satisfaction=satisfaction)  # fmt: skip

    p1 = products["P1"]
    events: list[dict[str, Any]] = []
    funnel = (
        ("s1", "product.viewed", "03-03", "10:00"), ("s1", "cart.item_added", "03-03", "10:05"),
        ("s1", "checkout.completed", "03-03", "10:10"),
        ("s2", "product.viewed", "03-03", "11:00"), ("s2", "cart.item_added", "03-03", "11:05"),
        ("s3", "product.viewed", "03-04", "09:00"),
        ("s4", "cart.item_added", "03-04", "09:30"),
        ("s5", "product.viewed", "03-04", "12:00"), ("s5", "checkout.completed", "03-04", "12:10"),
    )  # fmt: skip
    events += [
        {"name": name, "product_id": p1, "session_id": session, "occurred_at": at(day, time)}
        for session, name, day, time in funnel
    ]
    ingest(connection, events)
    return users, products


@pytest.fixture
def shop(database_url: str) -> Shop:
    with psycopg.connect(database_url) as connection:
        users, products = build_shop(connection)
        connection.commit()
    return Shop(database_url, users, products)
