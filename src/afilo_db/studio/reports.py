"""The operator's overview of the marketplace: what the studio's dashboard draws. Each figure is
one aggregate query; nothing is computed row by row in Python."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import psycopg
from sqlalchemy import func, literal, select, union_all
from sqlalchemy.orm import Session

from afilo_db import rules
from afilo_db.data.up import table_counts
from afilo_db.models import Download, Product, Purchase, UserActivityLog, UserSubscription

NEWEST_ACTIVITY = 12
TOP_PRODUCTS = 10
# Subscriptions billed in a month: those whose period started in it and that were not abandoned
# before the first payment.
_BILLED_STATUSES = tuple(
    status for status in rules.SUBSCRIPTION_STATUSES if not status.startswith("incomplete")
)


@dataclass(frozen=True)
class ActivityEntry:
    created_at: datetime
    actor: str
    action: str
    entity_type: str | None
    entity_id: str | None


@dataclass(frozen=True)
class MonthRevenue:
    month: str
    """YYYY-MM"""
    purchases: Decimal
    subscriptions: Decimal


@dataclass(frozen=True)
class Overview:
    counts: dict[str, int]
    newest_activity: list[ActivityEntry]
    subscriptions: dict[tuple[str, str], int]
    """(tier, status) -> number of subscriptions"""
    revenue_by_month: list[MonthRevenue]
    """In the store's currencies added up as they are: the demo data sells in USD only."""
    downloads_by_product: list[tuple[str, int]]


def overview(session: Session) -> Overview:
    driver = session.connection().connection.driver_connection
    if not isinstance(driver, psycopg.Connection):
        raise TypeError("the overview needs a psycopg connection")
    activity = session.execute(
        select(
            UserActivityLog.created_at,
            UserActivityLog.actor,
            UserActivityLog.action,
            UserActivityLog.entity_type,
            UserActivityLog.entity_id,
        )
        .order_by(UserActivityLog.created_at.desc(), UserActivityLog.id.desc())
        .limit(NEWEST_ACTIVITY)
    )
    subscriptions = session.execute(
        select(UserSubscription.tier, UserSubscription.status, func.count()).group_by(
            UserSubscription.tier, UserSubscription.status
        )
    )
    return Overview(
        counts=table_counts(driver),
        newest_activity=[ActivityEntry(*row) for row in activity],
        subscriptions={(tier, status): count for tier, status, count in subscriptions},
        revenue_by_month=_revenue_by_month(session),
        downloads_by_product=_downloads_by_product(session),
    )


def _revenue_by_month(session: Session) -> list[MonthRevenue]:
    purchases = select(
        func.date_trunc("month", Purchase.created_at).label("month"),
        Purchase.amount.label("purchases"),
        literal(Decimal(0)).label("subscriptions"),
    ).where(Purchase.status == "paid")
    subscriptions = select(
        func.date_trunc("month", UserSubscription.current_period_start).label("month"),
        literal(Decimal(0)).label("purchases"),
        UserSubscription.amount.label("subscriptions"),
    ).where(UserSubscription.status.in_(_BILLED_STATUSES))
    both = union_all(purchases, subscriptions).subquery()
    rows = session.execute(
        select(
            func.to_char(both.c.month, "YYYY-MM"),
            func.sum(both.c.purchases),
            func.sum(both.c.subscriptions),
        )
        .group_by(both.c.month)
        .order_by(both.c.month)
    )
    return [MonthRevenue(month, Decimal(bought), Decimal(billed)) for month, bought, billed in rows]


def _downloads_by_product(session: Session) -> list[tuple[str, int]]:
    count = func.count(Download.id)
    rows = session.execute(
        select(Product.title, count)
        .join(Download, Download.product_id == Product.id)
        .group_by(Product.id, Product.title)
        .order_by(count.desc(), Product.title)
        .limit(TOP_PRODUCTS)
    )
    return [(title, int(downloads)) for title, downloads in rows]
