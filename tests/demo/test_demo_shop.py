"""The demo shop of `afilo-db up`: made through the webhook path and analytics `ingest`, dated up
to today, so that the reports, `user show` and the studio tell one story."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from afilo_db.analytics.reports import DateRange, ReportTable
from afilo_db.analytics.sources import run_reports
from afilo_db.data import demo_shop
from afilo_db.data.seed import TIER_PRICES
from afilo_db.data.up import bring_up, table_counts
from afilo_db.db.embedded import EmbeddedServer
from afilo_db.db.urls import sqlalchemy_url
from afilo_db.demo import populate, verified
from afilo_db.errors import ValidationError
from afilo_db.services.accounts import account, list_users
from afilo_db.studio.app import BASE_PATH, StudioOptions, create_studio
from tests.conftest import create_database, drop_database

TODAY = datetime.now(UTC).date()
SEVEN_MONTHS = DateRange(TODAY - timedelta(days=7 * 31), TODAY)


@pytest.fixture(scope="module")
def demo_url(server: EmbeddedServer, template_database: str) -> Iterator[str]:
    """A migrated database that `up` filled with the demo shop (then left alone)."""
    url = create_database(server, "demo_shop", template=template_database)
    try:
        assert bring_up(url, populate).seeded
        yield url
    finally:
        drop_database(server, "demo_shop")


def report(url: str, name: str) -> ReportTable:
    run = run_reports([name], SEVEN_MONTHS, primary_url=url, replica_url=None,
                      max_lag_seconds=30)  # fmt: skip
    return run.tables[0]


def scalar(url: str, query: str) -> Any:
    with psycopg.connect(url) as connection:
        row = connection.execute(query).fetchone()
        assert row is not None
        return row[0]


def test_the_story_ends_today_and_moves_with_the_day() -> None:
    now = datetime.now(UTC)
    for today in (now, now + timedelta(days=45)):
        shop = demo_shop.demo_shop(today)
        moments = [message.at for message in shop.messages] + [e.at for e in shop.behaviour]
        assert min(moments) >= today - timedelta(days=demo_shop.HISTORY_DAYS)
        assert max(moments) <= today
        # Renewals run up to the last month: something was billed in the last 31 days.
        assert max(m.at for m in shop.messages if m.event_type == "invoice.paid") > today - (
            timedelta(days=31)
        )
        ids = [(message.provider, message.event_id) for message in shop.messages]
        assert len(ids) == len(set(ids))
        assert [message.at for message in shop.messages] == sorted(
            message.at for message in shop.messages
        )
    types = {message.event_type for message in demo_shop.demo_shop(now).messages}
    assert types >= {
        "user.created", "customer.subscription.created", "customer.subscription.updated",
        "customer.subscription.deleted", "invoice.paid", "invoice.payment_failed",
        "checkout.session.completed", "payment_intent.succeeded", "charge.refunded",
    }  # fmt: skip


def test_each_message_is_signed_as_its_provider_signs_it() -> None:
    now = datetime.now(UTC)
    shop = demo_shop.demo_shop(now)
    for message in (shop.messages[0], *[m for m in shop.messages if m.provider == "stripe"][:3]):
        delivery = message.signed("whsec_" + "ab" * 24, now)
        event = verified(delivery, "whsec_" + "ab" * 24)
        assert (event.event_id, event.event_type) == (message.event_id, message.event_type)
        with pytest.raises(ValidationError):
            verified(delivery, "whsec_" + "cd" * 24)
    stripe_message = next(m for m in reversed(shop.messages) if m.provider == "stripe")
    body = json.loads(stripe_message.signed("whsec_x", now).body)
    assert body["api_version"] == "2025-10-29.clover"


def test_the_billing_mirror_holds_only_what_the_webhooks_applied(demo_url: str) -> None:
    with psycopg.connect(demo_url) as connection:
        outcomes: dict[str, int] = dict(connection.execute(
            "SELECT outcome, count(*) FROM webhook_events GROUP BY outcome").fetchall())  # fmt: skip
        assert set(outcomes) <= {"applied", "recorded", "ignored"}, outcomes
        assert connection.execute("SELECT count(*) FROM webhook_refusals").fetchone() == (0,)
        clerk = connection.execute(
            "SELECT count(*) FROM webhook_events WHERE provider = 'clerk'"
        ).fetchone()
        assert clerk == (len(demo_shop.PERSONAS),)
        # Every profile by Clerk's event, every subscription state and purchase by Stripe's.
        for query in (
            "SELECT count(*) FROM user_profiles p WHERE NOT EXISTS (SELECT FROM webhook_events"
            " e WHERE e.event_id = p.state_event_id AND e.provider = 'clerk')",
            "SELECT count(*) FROM user_subscriptions s WHERE NOT EXISTS (SELECT FROM"
            " webhook_events e WHERE e.event_id = s.state_event_id AND e.provider = 'stripe')",
            "SELECT count(*) FROM purchases p WHERE NOT EXISTS (SELECT FROM webhook_events e"
            " WHERE e.event_id = p.state_event_id AND e.provider = 'stripe')",
        ):
            assert connection.execute(query).fetchone() == (0,), query
        newest = connection.execute("SELECT max(occurred_at) FROM webhook_events").fetchone()
        assert newest is not None and newest[0] > datetime.now(UTC) - timedelta(days=31)


def test_every_report_tells_six_months_ending_this_month(demo_url: str) -> None:
    this_month = TODAY.strftime("%Y-%m")
    mrr = report(demo_url, "mrr").records()
    earning = [row["month"] for row in mrr if row["mrr"] > 0]
    assert len(earning) >= 5 and earning[-1] == this_month
    for movement in ("new", "expansion", "contraction", "churn", "reactivation"):
        assert any(row[movement] > 0 for row in mrr), movement
    funnel = report(demo_url, "funnel").records()
    assert sum(row["carted"] for row in funnel) > 0
    assert sum(row["purchased"] for row in funnel) > 0
    revenue = report(demo_url, "revenue").records()
    for column in ("one_off", "recurring", "refunds"):
        assert sum(row[column] for row in revenue) > 0, column
    assert sum(row["churned"] for row in report(demo_url, "churn").records()) > 0
    assert report(demo_url, "downloads").rows
    assert report(demo_url, "bot").rows
    status = {
        (row["tier"], row["status"]) for row in report(demo_url, "subscription-status").records()
    }
    assert {("starter", "trialing"), ("professional", "active"), ("starter", "canceled")} <= status
    # MRR today is what the current states in force say, summed by hand.
    in_force = scalar(
        demo_url,
        "SELECT sum(amount) FROM user_subscriptions WHERE is_current"
        " AND status IN ('active', 'past_due')",
    )
    assert mrr[-1]["mrr"] == in_force


def test_the_users_to_try_have_a_subscription_in_force_today(demo_url: str) -> None:
    engine = create_engine(sqlalchemy_url(demo_url))
    try:
        with Session(engine) as session:
            for user in list_users(session, limit=2).users:
                found = account(session, user.clerk_user_id)
                assert found.idle == {}, found.idle
                granted = [e for e in found.entitlements if e.subscription_id is not None]
                assert granted, user.clerk_user_id
                assert all(
                    e.valid_until is not None and e.valid_until > datetime.now(UTC) for e in granted
                )
    finally:
        engine.dispose()


def test_the_studio_dashboard_shows_the_reports_figures(demo_url: str) -> None:
    engine = create_engine(sqlalchemy_url(demo_url))
    try:
        app = create_studio(engine, StudioOptions(secret="demo-password"))
        with TestClient(app) as client:
            login = client.get(f"{BASE_PATH}/login").text
            token = re.search(r'name="csrftoken" value="([^"]+)"', login)
            assert token is not None
            client.post(f"{BASE_PATH}/login", data={
                "username": "ada", "password": "demo-password", "csrftoken": token[1]})  # fmt: skip
            page = client.get(f"{BASE_PATH}/", params={
                "from": SEVEN_MONTHS.start.isoformat(), "to": SEVEN_MONTHS.end.isoformat()})  # fmt: skip
            assert page.status_code == 200
            html = page.text
    finally:
        engine.dispose()
    mrr_now = report(demo_url, "mrr").records()[-1]["mrr"]
    assert f"{mrr_now:.2f}" in html
    assert TODAY.strftime("%Y-%m") in html
    counted = int(scalar(demo_url, "SELECT count(*) FROM user_subscriptions"))
    assert re.search(rf">\s*{counted}\s*<", html)


def test_up_again_changes_nothing(demo_url: str) -> None:
    with psycopg.connect(demo_url) as connection:
        before = table_counts(connection)
    again = bring_up(demo_url, populate)
    assert not again.seeded
    assert again.counts == before


def test_subscriptions_are_sold_at_the_tiers_monthly_prices() -> None:
    shop = demo_shop.demo_shop(datetime.now(UTC))
    for message in shop.messages:
        if message.event_type.startswith("customer.subscription."):
            price: dict[str, Any] = message.obj["items"]["data"][0]["price"]
            assert price["recurring"]["interval"] == "month"
            tier = price["metadata"]["tier"]
            assert Decimal(price["unit_amount"]) / 100 == TIER_PRICES[tier]
