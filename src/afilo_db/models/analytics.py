"""Analytics: marketplace events, range-partitioned by month on `occurred_at`, and the daily
rollups the reports read (see `afilo_db.analytics`).

Partitions (`events_pYYYYMM`, and `events_default` for anything outside them) are created by the
`create_event_partition(month)` and `ensure_event_partitions(from, months)` SQL functions the
migrations install; they are not models, and migrations ignore them. A statement-level trigger on
`events` records the UTC days each statement touched in `analytics_dirty_days`; a refresh
re-aggregates those days only.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from afilo_db import rules
from afilo_db.models.base import UUID7_DEFAULT, Base, personal, references

EVENT_PARTITION_PREFIX = "events_"


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        # A partitioned table's primary key must include the partition key.
        PrimaryKeyConstraint("id", "occurred_at"),
        CheckConstraint(rules.sql_event_type_check("event_type"), name="event_type_format"),
        Index("ix_events_event_type_occurred_at", "event_type", "occurred_at"),
        Index("ix_events_user_id_occurred_at", "user_id", "occurred_at"),
        Index("ix_events_product_id_occurred_at", "product_id", "occurred_at"),
        {"postgresql_partition_by": "RANGE (occurred_at)"},
    )

    id: Mapped[uuid.UUID] = mapped_column(server_default=UUID7_DEFAULT)
    occurred_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    event_type: Mapped[str]
    # No foreign keys: events outlive what they mention, and partitions stay cheap to detach.
    user_id: Mapped[uuid.UUID | None] = mapped_column(info=references("user_profiles.id"))
    product_id: Mapped[uuid.UUID | None]
    session_id: Mapped[str | None] = mapped_column(info=personal())
    properties: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default="{}", info=personal("'{}'::jsonb")
    )


class AnalyticsDirtyDay(Base):
    """A UTC day that received events since the last refresh of the rollups."""

    __tablename__ = "analytics_dirty_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)


class AnalyticsRollupState(Base):
    """One row: when the rollups were last refreshed (how stale a report may be)."""

    __tablename__ = "analytics_rollup_state"
    __table_args__ = (CheckConstraint("id", name="single_row"),)

    id: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default=text("true"))
    refreshed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AnalyticsFunnelDaily(Base):
    """Sessions that, within one UTC day, viewed a product, then added to a cart, then bought."""

    __tablename__ = "analytics_funnel_daily"
    __table_args__ = (
        CheckConstraint(
            "purchased >= 0 AND purchased <= carted AND carted <= viewed", name="steps_narrow"
        ),
    )

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    viewed: Mapped[int] = mapped_column(Integer)
    carted: Mapped[int] = mapped_column(Integer)
    purchased: Mapped[int] = mapped_column(Integer)


class AnalyticsSubscriptionsDaily(Base):
    """Subscription movements of one UTC day and tier (the tier after the movement), in monthly
    recurring revenue: new, expansion (upgrades), contraction (downgrades), churn."""

    __tablename__ = "analytics_subscriptions_daily"
    __table_args__ = (PrimaryKeyConstraint("day", "tier", "currency"),)

    day: Mapped[date] = mapped_column(Date)
    tier: Mapped[str]
    currency: Mapped[str]
    started: Mapped[int] = mapped_column(Integer)
    new_mrr: Mapped[Decimal] = mapped_column(Numeric)
    upgrades: Mapped[int] = mapped_column(Integer)
    expansion_mrr: Mapped[Decimal] = mapped_column(Numeric)
    downgrades: Mapped[int] = mapped_column(Integer)
    contraction_mrr: Mapped[Decimal] = mapped_column(Numeric)
    canceled: Mapped[int] = mapped_column(Integer)
    churned_mrr: Mapped[Decimal] = mapped_column(Numeric)


class AnalyticsRevenueDaily(Base):
    """Recurring revenue (paid invoices) and refunds of one UTC day, per currency."""

    __tablename__ = "analytics_revenue_daily"
    __table_args__ = (PrimaryKeyConstraint("day", "currency"),)

    day: Mapped[date] = mapped_column(Date)
    currency: Mapped[str]
    recurring: Mapped[Decimal] = mapped_column(Numeric)
    refunds: Mapped[Decimal] = mapped_column(Numeric)


class AnalyticsSubscriber(Base):
    """A subscriber's span, for the cohort reports: first subscription start, and the
    cancellation that ended the last subscription (NULL while subscribed)."""

    __tablename__ = "analytics_subscribers"
    __table_args__ = (
        CheckConstraint("canceled_at IS NULL OR canceled_at >= started_at", name="period_order"),
    )

    # Derived from the user's events (which a user's export holds), so not a reference of its own.
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    canceled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
