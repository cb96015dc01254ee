"""MRR normalises a price by its billing interval, as ChartMogul does: a yearly price counts a
twelfth a month. The subscriptions come through the webhook path (signed, verified, ingested)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from afilo_db.analytics.reports import DateRange
from afilo_db.analytics.sources import run_reports
from afilo_db.billing import ingest
from afilo_db.data import provider_events as pe
from afilo_db.db.urls import sqlalchemy_url
from afilo_db.demo import verified

SECRET = "whsec_" + "12" * 24


def deliver(url: str, deliveries: list[pe.Delivery]) -> None:
    engine = create_engine(sqlalchemy_url(url))
    try:
        with Session(engine) as session, session.begin():
            for delivery in deliveries:
                ingest(session, verified(delivery, SECRET))
    finally:
        engine.dispose()


def customer(key: str, obj: dict[str, Any], at: datetime) -> list[pe.Delivery]:
    """A Clerk sign-up, then Stripe's customer.subscription.created with `obj` as its object."""
    ms = int(at.timestamp() * 1000)
    return [
        pe.clerk_delivery(f"msg_{key}", "user.created", ms,
                          pe.clerk_user(f"user_{key}", f"{key}@example.com", ms),
                          secret=SECRET, signed_at=datetime.now(UTC)),
        pe.stripe_delivery(f"evt_{key}", "customer.subscription.created", int(at.timestamp()),
                           obj, secret=SECRET, signed_at=int(datetime.now(UTC).timestamp())),
    ]  # fmt: skip


def subscribed(key: str, price: dict[str, Any], at: datetime) -> list[pe.Delivery]:
    start = int(at.timestamp())
    obj = pe.subscription(f"sub_{key}", f"cus_{key}", f"user_{key}", "active", price,
                          (start, start + 86_400 * 365), created=start)  # fmt: skip
    return customer(key, obj, at)


def test_mrr_divides_each_price_by_the_months_it_bills_for(database_url: str) -> None:
    at = datetime.now(UTC) - timedelta(days=3)
    legacy = {  # before Stripe's Prices: the plan on the item, its interval on the plan
        "id": "sub_legacy0001", "object": "subscription", "customer": "cus_legacy0001",
        "status": "active", "metadata": {"clerk_user_id": "user_legacy0001"},
        "current_period_start": int(at.timestamp()),
        "current_period_end": int(at.timestamp()) + 86_400 * 365,
        "items": {"object": "list", "data": [{"plan": {
            "id": "plan_gold_yearly", "object": "plan", "amount": 2400, "currency": "usd",
            "interval": "year", "interval_count": 1, "metadata": {"tier": "starter"}}}]},
    }  # fmt: skip
    deliver(database_url, [
        *subscribed("yearly0001", pe.price("price_yearly0001", 12000, "usd", "professional",
                                           interval="year"), at),
        *subscribed("quarter0001", pe.price("price_quarter0001", 3000, "usd", "starter",
                                            interval_count=3), at),
        *subscribed("monthly0001", pe.price("price_monthly0001", 1900, "usd", "starter"), at),
        *subscribed("weekly0001", pe.price("price_weekly0001", 520, "usd", "starter",
                                           interval="week"), at),
        *customer("legacy0001", legacy, at),
    ])  # fmt: skip
    today = datetime.now(UTC).date()
    run = run_reports(["mrr"], DateRange(today - timedelta(days=40), today),
                      primary_url=database_url, replica_url=None, max_lag_seconds=30)  # fmt: skip
    last = run.tables[0].records()[-1]
    # 120/12 + 30/3 + 19 + 5.20 a week (52 weeks in 12 months) + 24/12
    assert last["mrr"] == Decimal("10.00") + Decimal("10.00") + Decimal("19.00") + Decimal(
        "22.53"
    ) + Decimal("2.00")
    assert last["customers"] == 5


@pytest.mark.parametrize(
    ("recurring", "months"),
    [
        ({"interval": "year", "interval_count": 2}, "24"),
        ({"interval": "month", "interval_count": 6}, "6"),
        ({"interval": "day", "interval_count": 365}, "12"),
        ({}, "1"),  # no interval: a monthly price, as before
    ],
)
def test_the_interval_is_read_from_the_item_of_the_recorded_price(
    connection: psycopg.Connection[tuple[object, ...]], recurring: dict[str, Any], months: str
) -> None:
    add_on = {"price": {"id": "price_addon", "recurring": {"interval": "week"}}}
    priced = {"price": {"id": "price_main", "recurring": recurring}}
    subscription = {"items": {"data": [add_on, priced]}}
    row = connection.execute(
        "SELECT subscription_interval_months(%s::jsonb, 'price_main')",
        (psycopg.types.json.Jsonb(subscription),),
    ).fetchone()
    assert row is not None and Decimal(str(row[0])).quantize(Decimal("0.0001")) == Decimal(months)
