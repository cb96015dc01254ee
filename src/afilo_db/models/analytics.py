"""Analytics: marketplace events, range-partitioned by month on `occurred_at`.

Partitions (`events_pYYYYMM`, and `events_default` for anything outside them) are created by the
`ensure_event_partitions(from, months)` SQL function that the baseline migration installs; they are
not models, and migrations ignore them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Index, PrimaryKeyConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from afilo_db.models.base import UUID7_DEFAULT, Base, personal, references

EVENT_PARTITION_PREFIX = "events_"


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        # A partitioned table's primary key must include the partition key.
        PrimaryKeyConstraint("id", "occurred_at"),
        CheckConstraint("event_type ~ '^[a-z][a-z0-9_.]{1,63}$'", name="event_type_format"),
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
