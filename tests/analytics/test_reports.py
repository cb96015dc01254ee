"""Every report against figures computed by hand on the shop of conftest.py."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from afilo_db.analytics import rollups
from afilo_db.analytics.events import ingest
from afilo_db.analytics.reports import REPORTS, DateRange, ReportTable
from afilo_db.analytics.sources import run_reports
from afilo_db.cli.report import REPORT_NAMES
from afilo_db.errors import ValidationError
from tests.analytics.conftest import Shop, at

FEB_MAR = DateRange(date(2026, 2, 1), date(2026, 3, 31))
D = Decimal


def report(shop: Shop, name: str, date_range: DateRange = FEB_MAR) -> ReportTable:
    run = run_reports([name], date_range, primary_url=shop.url, replica_url=None,
                      max_lag_seconds=30)  # fmt: skip
    assert run.answer.server == "primary"
    return run.tables[0]


def rows(table: ReportTable) -> list[tuple[Any, ...]]:
    return table.rows


def test_revenue_one_off_recurring_refunds_and_net(shop: Shop) -> None:
    assert rows(report(shop, "revenue")) == [
        ("2026-02", "USD", D(25), D(70), D(0), D(95)),
        # The refunded purchase counts in the month it was bought and comes off when refunded;
        # the pending one does not count.
        ("2026-03", "USD", D(70), D(140), D(20), D(190)),
    ]


def test_revenue_counts_only_the_days_in_the_range(shop: Shop) -> None:
    late_march = DateRange(date(2026, 3, 15), date(2026, 3, 31))
    assert rows(report(shop, "revenue", late_march)) == [
        ("2026-03", "USD", D(0), D(0), D(20), D(-20))
    ]


def test_mrr_movements_with_an_upgrade_a_downgrade_and_a_cancellation(shop: Shop) -> None:
    # month, currency, at start, new, expansion, contraction, churn, reactivation, net new, MRR,
    # customers, ARPU
    assert rows(report(shop, "mrr")) == [
        ("2026-02", "USD", 0, D(70), 0, 0, 0, 0, D(70), D(70), 3, D("23.33")),
        ("2026-03", "USD", D(70), D(100), D(20), D(20), D(30), 0, D(70), D(140), 3, D("46.67")),
    ]


def test_mrr_carries_the_running_total_from_before_the_range(shop: Shop) -> None:
    march = DateRange(date(2026, 3, 1), date(2026, 3, 31))
    assert rows(report(shop, "mrr", march)) == [
        ("2026-03", "USD", D(70), D(100), D(20), D(20), D(30), 0, D(70), D(140), 3, D("46.67"))
    ]


def test_revenue_churn_and_retention(shop: Shop) -> None:
    # March: 70 at the start, 30 churned, 20 contracted, 20 expanded.
    assert rows(report(shop, "revenue-retention"))[-1] == (
        "2026-03",
        "USD",
        D(70),
        D(30),
        D(20),
        D(20),
        D("0.7143"),
        D("0.2857"),
        D("0.5714"),
    )


def test_churn_by_month(shop: Shop) -> None:
    # month, at start, new, reactivated, churned, rate (churned / at start), at end
    assert rows(report(shop, "churn")) == [
        ("2026-02", 0, 3, 0, 0, None, 3),
        ("2026-03", 3, 1, 0, 1, D("0.3333"), 3),
    ]


def test_retention_by_monthly_cohort(shop: Shop) -> None:
    assert rows(report(shop, "retention")) == [
        ("2026-02", 0, 3, 3, D("1.0000")),
        ("2026-02", 1, 3, 2, D("0.6667")),
        ("2026-03", 0, 1, 1, D("1.0000")),
    ]


def test_new_subscriptions_by_tier(shop: Shop) -> None:
    assert rows(report(shop, "subscriptions")) == [
        ("2026-02", "starter", 1, 0, 0, 0),
        ("2026-02", "professional", 2, 0, 0, 0),
        ("2026-03", "starter", 0, 0, 1, 0),
        ("2026-03", "professional", 0, 1, 0, 1),
        ("2026-03", "enterprise", 1, 0, 0, 0),
    ]


def test_downloads_per_product(shop: Shop) -> None:
    assert rows(report(shop, "downloads")) == [
        ("Product P1", "product-p1", 3),
        ("Product P2", "product-p2", 1),
    ]
    march = DateRange(date(2026, 3, 1), date(2026, 3, 31))
    assert rows(report(shop, "downloads", march)) == [("Product P1", "product-p1", 3)]


def test_funnel_counts_each_step_only_after_the_one_before(shop: Shop) -> None:
    # s1 goes all the way, s2 stops at the cart, s3 only looks, s4 never viewed, s5 bought
    # without a cart.
    assert rows(report(shop, "funnel")) == [
        ("2026-03", 4, 2, 1, D("0.5000"), D("0.5000"), D("0.2500"))
    ]


def test_bot_resolution_latency_and_satisfaction(shop: Shop) -> None:
    # Latency weighted by answers: (1000*2 + 400*2 + 2200*1) / 5.
    assert rows(report(shop, "bot")) == [("2026-03", 2, 1, D("0.5000"), D(1000), D("3.00"), 2)]


def test_subscriptions_by_tier_and_status_today(shop: Shop) -> None:
    table = report(shop, "subscription-status")
    assert table.date_range is None
    assert rows(table) == [
        ("starter", "active", 1),
        ("professional", "active", 1),
        ("professional", "canceled", 1),
        ("enterprise", "active", 1),
    ]


def test_a_refresh_aggregates_only_the_days_that_received_events(shop: Shop) -> None:
    report(shop, "funnel")  # refreshes everything so far
    with psycopg.connect(shop.url) as connection:
        ingest(connection, [{"name": "product.viewed", "product_id": shop.products["P1"],
                             "session_id": "s9", "occurred_at": at("03-25")}])  # fmt: skip
        connection.commit()
        result = rollups.refresh(connection)
        connection.commit()
    assert result.days == [date(2026, 3, 25)]
    assert rows(report(shop, "funnel"))[-1][:4] == ("2026-03", 5, 2, 1)


def test_the_command_line_knows_every_report() -> None:
    assert tuple(REPORTS) == REPORT_NAMES


def test_a_range_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        DateRange(date(2026, 3, 1), date(2026, 2, 1))
    assert "from" in caught.value.problems
