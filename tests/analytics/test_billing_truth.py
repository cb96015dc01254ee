"""The money reports follow the billing mirror by Stripe's and ChartMogul's definitions, and
follow it when it changes; the funnel follows PostHog's conversion window.

Each shop here is written as production writes it: subscription states at Stripe's time, Stripe
events stored in webhook_events (their trigger records the payments)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from afilo_db import rules
from afilo_db.analytics import rollups
from afilo_db.analytics.charts import render
from afilo_db.analytics.events import ingest
from afilo_db.analytics.reports import (
    REPORTS,
    USD_PER_UNIT,
    DateRange,
    ReportOptions,
    ReportTable,
)
from afilo_db.errors import ValidationError
from tests.analytics.conftest import (
    at,
    charge_refunded,
    insert,
    invoice_paid,
    payment_succeeded,
    stripe_event,
    subscription_state,
)

D = Decimal
JAN_APR = DateRange(date(2026, 1, 1), date(2026, 4, 30))


@pytest.fixture
def connection(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url) as connection:
        yield connection


def user(connection: psycopg.Connection[Any], name: str) -> uuid.UUID:
    return insert(connection, "user_profiles", clerk_user_id=f"user_{name}000001",
                  email=f"{name.lower()}@example.com")  # fmt: skip


def run(
    connection: psycopg.Connection[Any],
    name: str,
    date_range: DateRange = JAN_APR,
    options: ReportOptions | None = None,
) -> ReportTable:
    rollups.refresh(connection)
    return REPORTS[name].run(connection, date_range, options)


def by_month(table: ReportTable, *columns: str) -> dict[str, tuple[Any, ...]]:
    return {r["month"]: tuple(r[c] for c in columns) for r in table.records()}


def test_every_month_is_present_for_every_currency(connection: psycopg.Connection[Any]) -> None:
    # EUR moves in January only, USD in March only: neither vanishes in the other months.
    subscription_state(connection, user(connection, "E"), "E", "starter", "active", "25",
                       at("01-20"), current=True, currency="EUR")  # fmt: skip
    subscription_state(connection, user(connection, "U"), "U", "starter", "active", "10",
                       at("03-05"), current=True)  # fmt: skip
    invoice_paid(connection, "in_E0000001", 2500, at("01-20"), "eur")
    invoice_paid(connection, "in_U0000001", 1000, at("03-05"))
    mrr = run(connection, "mrr")
    assert [(r["month"], r["currency"], r["new"], r["mrr"]) for r in mrr.records()] == [
        ("2026-01", "EUR", D(25), D(25)), ("2026-01", "USD", 0, 0),
        ("2026-02", "EUR", 0, D(25)), ("2026-02", "USD", 0, 0),
        ("2026-03", "EUR", 0, D(25)), ("2026-03", "USD", D(10), D(10)),
        ("2026-04", "EUR", 0, D(25)), ("2026-04", "USD", 0, D(10)),
    ]  # fmt: skip
    revenue = run(connection, "revenue")
    assert [(r["month"], r["currency"], r["recurring"]) for r in revenue.records()] == [
        ("2026-01", "EUR", D(25)), ("2026-01", "USD", 0), ("2026-02", "EUR", 0),
        ("2026-02", "USD", 0), ("2026-03", "EUR", 0), ("2026-03", "USD", D(10)),
        ("2026-04", "EUR", 0), ("2026-04", "USD", 0),
    ]  # fmt: skip


def test_amounts_convert_to_one_reporting_currency_at_the_documented_rates(
    connection: psycopg.Connection[Any],
) -> None:
    assert set(USD_PER_UNIT) == set(rules.CURRENCIES)
    both = user(connection, "B")  # one customer paying in two currencies
    subscription_state(connection, both, "E", "starter", "active", "25", at("01-20"),
                       current=True, currency="EUR")  # fmt: skip
    subscription_state(connection, both, "U", "starter", "active", "10", at("03-05"),
                       current=True)  # fmt: skip
    invoice_paid(connection, "in_E0000001", 2500, at("01-20"), "eur")
    in_usd = ReportOptions(currency="USD")
    mrr = run(connection, "mrr", options=in_usd)
    assert [(r["month"], r["currency"], r["new"], r["expansion"], r["mrr"], r["customers"])
            for r in mrr.records()] == [
        ("2026-01", "USD", D("27.00"), 0, D("27.00"), 1),
        ("2026-02", "USD", 0, 0, D("27.00"), 1),
        ("2026-03", "USD", 0, D("10.00"), D("37.00"), 1),
        ("2026-04", "USD", 0, 0, D("37.00"), 1),
    ]  # fmt: skip
    revenue = run(connection, "revenue", options=ReportOptions(currency="EUR"))
    assert revenue.rows[0] == ("2026-01", "EUR", 0, D("25.00"), 0, D("25.00"))
    with pytest.raises(ValidationError) as caught:
        ReportOptions(currency="XYZ")
    assert "must be one of" in caught.value.problems["currency"]


def test_a_payment_in_a_currency_without_a_rate_stays_in_its_own_currency(
    connection: psycopg.Connection[Any],
) -> None:
    # Stripe settles in many more currencies than the rates table lists; none of it may vanish.
    assert "MXN" not in USD_PER_UNIT
    invoice_paid(connection, "in_M0000001", 45000, at("02-10"), "mxn")
    invoice_paid(connection, "in_U0000001", 1000, at("02-11"))
    for options in (None, ReportOptions(currency="EUR")):
        revenue = run(connection, "revenue", options=options)
        february = {r["currency"]: r["recurring"] for r in revenue.records()
                    if r["month"] == "2026-02"}  # fmt: skip
        assert february["MXN"] == D("450.00"), options


def test_one_subscription_of_two_ending_is_contraction_and_the_last_is_churn(
    connection: psycopg.Connection[Any],
) -> None:
    x = user(connection, "X")
    subscription_state(connection, x, "X1", "starter", "active", "10", at("01-05"), current=False)
    subscription_state(connection, x, "X2", "professional", "active", "30", at("01-06"),
                       current=False)  # fmt: skip
    subscription_state(connection, x, "X1", "starter", "canceled", "10", at("02-10"),
                       current=True, step=2)  # fmt: skip
    subscription_state(connection, x, "X2", "professional", "canceled", "30", at("03-10"),
                       current=True, step=2)  # fmt: skip
    mrr = by_month(run(connection, "mrr"), "contraction", "churn", "mrr")
    assert mrr["2026-02"] == (D(10), 0, D(30))
    assert mrr["2026-03"] == (0, D(30), 0)
    churn = by_month(run(connection, "churn"), "customers_at_start", "churned")
    assert churn["2026-02"] == (1, 0)
    assert churn["2026-03"] == (1, 1)


def test_a_customer_who_returns_is_reactivation_and_their_churn_stays(
    connection: psycopg.Connection[Any],
) -> None:
    y = user(connection, "Y")
    subscription_state(connection, y, "Y1", "starter", "active", "10", at("01-05"), current=False)
    subscription_state(connection, y, "Y1", "starter", "canceled", "10", at("02-10"),
                       current=True, step=2)  # fmt: skip
    subscription_state(connection, y, "Y2", "professional", "active", "30", at("04-02"),
                       current=True)  # fmt: skip
    mrr = by_month(run(connection, "mrr"), "new", "churn", "reactivation")
    assert mrr == {"2026-01": (D(10), 0, 0), "2026-02": (0, D(10), 0), "2026-03": (0, 0, 0),
                   "2026-04": (0, 0, D(30))}  # fmt: skip
    churn = by_month(run(connection, "churn"), "new", "reactivated", "churned")
    assert churn["2026-02"] == (0, 0, 1)
    assert churn["2026-04"] == (0, 1, 0)
    # One cohort (January's) for good: retained in the months they pay.
    retention = run(connection, "retention")
    assert [(r["cohort"], r["months_since_start"], r["retained"]) for r in retention.records()] == [
        ("2026-01", 0, 1), ("2026-01", 1, 0), ("2026-01", 2, 0), ("2026-01", 3, 1),
    ]  # fmt: skip


def test_only_a_subscriptions_last_state_of_a_month_moves_mrr(
    connection: psycopg.Connection[Any],
) -> None:
    # The reports compute MRR only in the months a subscription changed: an upgrade undone in
    # the same month is no movement, and a subscription moved to another currency leaves the
    # first (churn in USD) and starts in the second, without the customer churning.
    z = user(connection, "Z")
    subscription_state(connection, z, "Z", "starter", "active", "10", at("01-05"), current=False)
    subscription_state(connection, z, "Z", "professional", "active", "30", at("02-03"),
                       current=False, step=2)  # fmt: skip
    subscription_state(connection, z, "Z", "starter", "active", "10", at("02-20"),
                       current=False, step=3)  # fmt: skip
    subscription_state(connection, z, "Z", "starter", "active", "12", at("03-10"),
                       current=True, currency="EUR", step=4)  # fmt: skip
    mrr = run(connection, "mrr")
    assert [(r["month"], r["currency"], r["mrr_at_start"], r["new"], r["expansion"],
             r["contraction"], r["churn"], r["mrr"], r["customers"]) for r in mrr.records()] == [
        ("2026-01", "EUR", 0, 0, 0, 0, 0, 0, 0), ("2026-01", "USD", 0, D(10), 0, 0, 0, D(10), 1),
        ("2026-02", "EUR", 0, 0, 0, 0, 0, 0, 0), ("2026-02", "USD", D(10), 0, 0, 0, 0, D(10), 1),
        ("2026-03", "EUR", 0, D(12), 0, 0, 0, D(12), 1), ("2026-03", "USD", D(10), 0, 0, 0, D(10), 0, 0),
        ("2026-04", "EUR", D(12), 0, 0, 0, 0, D(12), 1), ("2026-04", "USD", 0, 0, 0, 0, 0, 0, 0),
    ]  # fmt: skip
    churn = run(connection, "churn")
    assert [(r["month"], r["customers_at_start"], r["new"], r["churned"], r["customers_at_end"])
            for r in churn.records()] == [
        ("2026-01", 0, 1, 0, 1), ("2026-02", 1, 0, 0, 1), ("2026-03", 1, 0, 0, 1),
        ("2026-04", 1, 0, 0, 1),
    ]  # fmt: skip
    retention = run(connection, "retention")
    assert [(r["months_since_start"], r["customers"], r["retained"]) for r in retention.records()] == [
        (0, 1, 1), (1, 1, 1), (2, 1, 1), (3, 1, 1),
    ]  # fmt: skip


def test_trials_are_not_mrr_past_due_is_and_trial_conversion(
    connection: psycopg.Connection[Any],
) -> None:
    z, w = user(connection, "Z"), user(connection, "W")
    subscription_state(connection, z, "Z", "starter", "trialing", "20", at("01-05"), current=False)
    subscription_state(connection, z, "Z", "starter", "active", "20", at("01-19"), current=False,
                       step=2)  # fmt: skip
    subscription_state(connection, z, "Z", "starter", "past_due", "20", at("02-19"),
                       current=True, step=3)  # fmt: skip
    subscription_state(connection, w, "W", "starter", "trialing", "50", at("01-25"), current=False)
    subscription_state(connection, w, "W", "starter", "canceled", "50", at("02-08"), current=True,
                       step=2)  # fmt: skip
    mrr = by_month(run(connection, "mrr"), "mrr", "churn")
    assert mrr["2026-01"] == (D(20), 0)  # W's trial is not revenue
    assert mrr["2026-02"] == (D(20), 0)  # Z is past due: still counted; W never paid
    trials = by_month(run(connection, "trials"), "trials", "converted", "conversion_rate")
    assert trials["2026-01"] == (2, 1, D("0.5000"))
    assert trials["2026-02"] == (0, 0, None)


def test_revenue_is_dated_by_when_the_customer_paid(connection: psycopg.Connection[Any]) -> None:
    # Stripe sent the invoice.paid event after midnight; the customer paid on the 28th.
    paid_at = int(at("02-28", "23:59").timestamp())
    stripe_event(connection, "evt_late0000001", "invoice.paid", at("03-01", "00:05"),
                 {"id": "in_late0000001", "amount_paid": 1900, "currency": "usd",
                  "subscription": "sub_late0000001", "status_transitions": {"paid_at": paid_at}})  # fmt: skip
    # A one-off payment made in February whose webhook is processed in April.
    payment_succeeded(connection, "pi_late0000001", 4900, at("02-27"))
    rows = by_month(run(connection, "revenue"), "one_off", "recurring")
    assert rows["2026-02"] == (D(49), D(19))
    assert rows["2026-03"] == (0, 0)


def test_a_renewal_paid_through_a_payment_intent_counts_once(
    connection: psycopg.Connection[Any],
) -> None:
    # Stripe reports a renewal twice: the invoice's invoice.paid and the payment intent that paid
    # it, which names the invoice (API versions before 2025-03-31).
    invoice_paid(connection, "in_renew000001", 3000, at("02-10"))
    stripe_event(connection, "evt_pi_renew000001", "payment_intent.succeeded", at("02-10", "00:01"),
                 {"id": "pi_renew000001", "object": "payment_intent", "amount_received": 3000,
                  "currency": "usd", "invoice": "in_renew000001"})  # fmt: skip
    payment_succeeded(connection, "pi_oneoff00001", 4900, at("02-11"))
    rows = by_month(run(connection, "revenue"), "one_off", "recurring")
    assert rows["2026-02"] == (D(49), D(30))


def test_partial_refunds_add_up_by_the_time_they_happened(
    connection: psycopg.Connection[Any],
) -> None:
    payment_succeeded(connection, "pi_part0000001", 5000, at("01-10"))
    charge_refunded(connection, "evt_part_1", "ch_part0000001", "pi_part0000001", 1000, at("02-01"))
    charge_refunded(connection, "evt_part_2", "ch_part0000001", "pi_part0000001", 5000, at("03-01"))
    # A replayed or out-of-order total adds nothing.
    charge_refunded(connection, "evt_part_3", "ch_part0000001", "pi_part0000001", 1000, at("03-02"))
    rows = by_month(run(connection, "revenue"), "one_off", "refunds", "net")
    assert rows["2026-01"] == (D(50), 0, D(50))
    assert rows["2026-02"] == (0, D(10), D(-10))
    assert rows["2026-03"] == (0, D(40), D(-40))


def test_corrections_flow_into_every_report(connection: psycopg.Connection[Any]) -> None:
    """A late cancellation, a deleted state, a deleted Stripe event and moved and deleted
    behaviour events: each report that reads them changes."""
    v = user(connection, "V")
    subscription_state(connection, v, "V", "starter", "active", "10", at("01-05"), current=True)
    invoice_paid(connection, "in_V0000001", 1000, at("01-05"))
    product = insert(connection, "products", handle="p", title="P", status="draft")
    ingest(connection, [
        {"name": "product.viewed", "product_id": product, "session_id": "s", "occurred_at": at("02-02")},
        {"name": "cart.item_added", "product_id": product, "session_id": "s", "occurred_at": at("02-02", "12:05")},
    ])  # fmt: skip
    before = {name: run(connection, name).rows for name in ("mrr", "churn", "retention")}
    assert by_month(run(connection, "funnel"), "viewed", "carted")["2026-02"] == (1, 1)
    assert by_month(run(connection, "revenue"), "recurring")["2026-01"] == (D(10),)

    # A late cancellation (Stripe's time: February) arrives after the reports were read.
    connection.execute("UPDATE user_subscriptions SET is_current = false")
    subscription_state(connection, v, "V", "starter", "canceled", "10", at("02-15"),
                       current=True, step=9)  # fmt: skip
    assert by_month(run(connection, "mrr"), "churn", "mrr")["2026-02"] == (D(10), 0)
    assert by_month(run(connection, "churn"), "churned")["2026-02"] == (1,)
    assert [r["retained"] for r in run(connection, "retention").records()] == [1, 0, 0, 0]
    assert by_month(run(connection, "subscriptions"), "canceled")["2026-02"] == (1,)

    # Deleted again (a correction): every report is as before.
    connection.execute("DELETE FROM user_subscriptions WHERE state_event_id = 'evt_Vsub0009'")
    assert {name: run(connection, name).rows for name in before} == before

    # The Stripe event deleted: its payment goes.
    connection.execute("DELETE FROM webhook_events WHERE event_id = 'evt_in_V0000001'")
    assert run(connection, "revenue").rows == []

    # The cart moved out of the window, then the view deleted.
    connection.execute("UPDATE events SET occurred_at = %s WHERE event_type = 'cart.item_added'",
                       (at("02-05"),))  # fmt: skip
    assert by_month(run(connection, "funnel"), "viewed", "carted")["2026-02"] == (1, 0)
    connection.execute("DELETE FROM events WHERE event_type = 'product.viewed'")
    assert "2026-02" not in by_month(run(connection, "funnel"), "viewed")


def test_the_funnel_window_runs_from_the_first_view_across_midnight(
    connection: psycopg.Connection[Any],
) -> None:
    product = insert(connection, "products", handle="p", title="P", status="draft")
    steps = (
        ("night", "product.viewed", "01-31", "23:50"), ("night", "cart.item_added", "02-01", "00:10"),
        ("night", "checkout.completed", "02-01", "00:20"),
        ("slow", "product.viewed", "01-10", "10:00"), ("slow", "cart.item_added", "01-10", "10:05"),
        ("slow", "checkout.completed", "01-13", "09:00"),
    )  # fmt: skip
    ingest(connection, [{"name": name, "product_id": product, "session_id": session,
                         "occurred_at": at(day, time)} for session, name, day, time in steps])  # fmt: skip
    january = DateRange(date(2026, 1, 1), date(2026, 1, 31))
    # Default (24 hours): the night visitor bought within a day of the view; the slow one not.
    assert run(connection, "funnel", january).rows[0][:4] == ("2026-01", 2, 2, 1)
    four_days = ReportOptions(conversion_window=timedelta(hours=96))
    assert run(connection, "funnel", january, four_days).rows[0][:4] == ("2026-01", 2, 2, 2)
    with pytest.raises(ValidationError) as caught:
        ReportOptions(conversion_window=timedelta(minutes=5))
    assert "conversion_window" in caught.value.problems


def test_charts_draw_each_currency_on_its_own_axis_with_the_period(
    connection: psycopg.Connection[Any],
) -> None:
    invoice_paid(connection, "in_E0000001", 2500, at("01-20"), "eur")
    invoice_paid(connection, "in_U0000001", 1000, at("03-05"))
    svg = render(run(connection, "revenue"), "svg").decode()
    assert "Revenue by month, 2026-01-01 to 2026-04-30" in svg
    assert "revenue (EUR)" in svg and "revenue (USD)" in svg
    assert svg.count('id="axes_') == 2
    bot = render(run(connection, "bot"), "svg").decode()
    assert "latency" in bot and "satisfaction" in bot
    assert "one-off" in svg and "refunds" in svg  # every series is named, in the legend
    # Counts on whole ticks: one customer is never drawn on a scale of fifths.
    subscription_state(connection, user(connection, "C"), "C", "starter", "active", "10",
                       at("01-05"), current=True)  # fmt: skip
    churn = render(run(connection, "churn"), "svg").decode()
    assert ">0.2<" not in churn.replace(" ", "") and "0.20" not in churn and "0.50" not in churn
