"""A small marketplace with figures computed by hand (see the expected values in the tests).

February 2026: A subscribes (starter, 10/month), B and C (professional, 30/month each); their
invoices are paid; A buys product P2 once (25).
March 2026, in the same month: A upgrades to professional (10 -> 30), B downgrades to starter
(30 -> 10), C cancels (30), D subscribes (enterprise, 100); invoices of A (30), B (10), D (100)
are paid; E buys P1 (50, paid) and P2 (20, refunded on the 20th); P1 is downloaded three times;
five sessions go through the funnel; two chat conversations.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
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


def _subscription(
    name: str, user: uuid.UUID, kind: str, when: datetime, **properties: Any
) -> dict[str, Any]:
    return {"name": f"subscription.{kind}", "user_id": user, "occurred_at": when,
            "properties": {"subscription_id": f"sub_{name}000001", "currency": "USD", **properties}}  # fmt: skip


def _invoice(
    name: str, user: uuid.UUID, when: datetime, amount: str, number: int
) -> dict[str, Any]:
    return {"name": "invoice.paid", "user_id": user, "occurred_at": when,
            "properties": {"invoice_id": f"in_{name}00000{number}", "currency": "USD",
                           "subscription_id": f"sub_{name}000001", "amount": amount}}  # fmt: skip


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
    for name, tier, status in (("A", "professional", "active"), ("B", "starter", "active"),
                               ("C", "professional", "canceled"), ("D", "enterprise", "active")):  # fmt: skip
        insert(connection, "user_subscriptions", user_id=users[name],
               stripe_subscription_id=f"sub_{name}000001", stripe_price_id="price_x000001",
               tier=tier, status=status, amount=10, currency="USD",
               current_period_start=at("03-01"), current_period_end=at("04-01"))  # fmt: skip
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

    a, b, c, d, e = (users[name] for name in "ABCDE")
    p1, p2 = products["P1"], products["P2"]
    events: list[dict[str, Any]] = [
        _subscription("A", a, "started", at("02-10"), tier="starter", mrr="10"),
        _subscription("B", b, "started", at("02-12"), tier="professional", mrr="30"),
        _subscription("C", c, "started", at("02-15"), tier="professional", mrr="30"),
        _invoice("A", a, at("02-10"), "10", 1),
        _invoice("B", b, at("02-12"), "30", 1),
        _invoice("C", c, at("02-15"), "30", 1),
        _subscription("A", a, "changed", at("03-05"), from_tier="starter", to_tier="professional",
                      previous_mrr="10", mrr="30"),
        _subscription("B", b, "changed", at("03-08"), from_tier="professional", to_tier="starter",
                      previous_mrr="30", mrr="10"),
        _subscription("C", c, "canceled", at("03-10"), tier="professional", mrr="30"),
        _subscription("D", d, "started", at("03-12"), tier="enterprise", mrr="100"),
        _invoice("A", a, at("03-10"), "30", 2),
        _invoice("B", b, at("03-12"), "10", 2),
        _invoice("D", d, at("03-12"), "100", 1),
        {"name": "purchase.refunded", "user_id": e, "product_id": p2, "occurred_at": at("03-20"),
         "properties": {"purchase_id": str(bought["e-p2"]), "amount": "20", "currency": "USD"}},
    ]  # fmt: skip
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
