"""Retention drops whole months older than the bound, nothing else; the rollups keep their figures."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import psycopg
import pytest

from afilo_db.analytics import partitions, rollups
from afilo_db.analytics.events import ingest
from afilo_db.errors import ValidationError
from tests.analytics.conftest import insert

TODAY = date(2026, 6, 10)
PRODUCT = "0194f0b2-7c1e-7d3a-9f00-1a2b3c4d5e70"


def _viewed(day: date, time: str = "12:00") -> dict[str, Any]:
    hour, minute = map(int, time.split(":"))
    return {"name": "product.viewed", "product_id": PRODUCT,
            "session_id": f"s{day.isoformat()}",
            "occurred_at": datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)}  # fmt: skip


def _months(connection: psycopg.Connection[Any]) -> set[date]:
    return {partition.month for partition in partitions.list_partitions(connection)}


def test_retention_drops_only_whole_months_older_than_the_bound(database_url: str) -> None:
    with psycopg.connect(database_url) as connection:
        insert(connection, "products", id=PRODUCT, handle="viewed", title="Viewed", status="draft")
        partitions.ensure_ahead(connection, 0, also=(date(2025, 11, 1), date(2025, 12, 1),
                                                      date(2026, 1, 1), date(2026, 2, 1),
                                                      date(2026, 3, 1)))  # fmt: skip
        # The last instant of February and the first of March, on both sides of the bound.
        ingest(connection, [_viewed(date(2026, 2, 28), "23:59"), _viewed(date(2026, 3, 1), "00:00"),
                            _viewed(date(2025, 11, 20))])  # fmt: skip
        rollups.refresh(connection)
        connection.commit()
        before = _months(connection)

        dry = partitions.apply_retention(connection, 3, dry_run=True, today=TODAY)
        assert dry.bound == date(2026, 3, 1)
        assert _months(connection) == before

        result = partitions.apply_retention(connection, 3, today=TODAY)
        connection.commit()
        assert result.dropped == dry.dropped
        assert {"events_p202511", "events_p202601", "events_p202602"} <= set(result.dropped)
        assert "events_p202603" not in result.dropped
        after = _months(connection)
        assert min(after) == date(2026, 3, 1)
        assert after == {month for month in before if month >= date(2026, 3, 1)}
        remaining = connection.execute("SELECT min(occurred_at) FROM events").fetchone()
        assert remaining == (datetime(2026, 3, 1, tzinfo=UTC),)
        # The rollups outlive the raw events.
        days = connection.execute("SELECT day FROM analytics_funnel_daily ORDER BY day").fetchall()
        assert (date(2026, 2, 28),) in days
        # A new month after retention still takes inserts.
        ingest(connection, [_viewed(date(2026, 6, 1))])
        connection.commit()


def test_nothing_is_dropped_when_every_month_is_within_the_bound(database_url: str) -> None:
    with psycopg.connect(database_url) as connection:
        before = _months(connection)
        result = partitions.apply_retention(connection, 1200, today=TODAY)
        assert result.dropped == [] and _months(connection) == before


@pytest.mark.parametrize("keep", [-1, 1201])
def test_a_bad_bound_is_refused(database_url: str, keep: int) -> None:
    with psycopg.connect(database_url) as connection:
        with pytest.raises(ValidationError) as caught:
            partitions.apply_retention(connection, keep, today=TODAY)
        assert "keep_months" in caught.value.problems
