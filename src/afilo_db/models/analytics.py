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


class AnalyticsPayment(Base):
    """A payment or a refund as Stripe reported it, written by a trigger on `webhook_events` in
    the transaction of the event (revision 0016): an invoice paid (recurring), a one-off payment,
    or what a `charge.refunded` event added to the charge's refunded amount. Dated by Stripe's
    time: when the invoice was paid, when the payment or refund event happened."""

    __tablename__ = "analytics_payments"
    __table_args__ = (
        PrimaryKeyConstraint("kind", "reference"),
        CheckConstraint("kind IN ('one_off', 'recurring', 'refund')", name="kind_valid"),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_analytics_payments_occurred_at", "occurred_at"),
        Index("ix_analytics_payments_stripe_event_id", "stripe_event_id"),
    )

    kind: Mapped[str]
    reference: Mapped[str]
    """The invoice (`in_...`) or payment intent (`pi_...`); for a refund, the event."""
    amount: Mapped[Decimal] = mapped_column(Numeric)
    currency: Mapped[str]
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    charge: Mapped[str | None]
    """A refund's charge (`ch_...`)."""
    stripe_event_id: Mapped[str]
