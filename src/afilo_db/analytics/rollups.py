"""The behaviour reports' pre-aggregate (the funnel per day), refreshed incrementally.

Triggers on `events` record every UTC day a statement wrote, changed or deleted events in
(`analytics_dirty_days`); `refresh()` takes those days, deletes the funnel rows of the days those
events can change (a step may follow the first view by up to the conversion window) and
aggregates them again from the events of those days only, so its cost follows the new events,
not the table. The money reports need no rollup: they read the billing mirror, which the webhook
handlers write in the event's own transaction. It runs in the caller's
transaction under an advisory lock (two refreshes queue); an event written while it runs marks its
day again and is aggregated by the next one.

Rollups outlive the events: after retention drops a month's partition its figures stay.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from afilo_db.analytics import partitions

# pg_advisory_xact_lock key: "afilo analytics rollups".
REFRESH_LOCK = 0x4146_414E_414C_5954

# The funnel PostHog's way: a visitor (a session, or a user without one) enters on their first
# product view of a UTC day; the cart must follow the view, and the purchase the cart, both
# within the conversion window from the view. The steps may fall on later days: the visitor
# counts on the day they entered. The events read are bounded by the first day and the last
# day's end plus the window, so the (event_type, occurred_at) index and partition pruning apply.
FUNNEL_STEPS = """
WITH views AS (
  SELECT d.day, coalesce(e.session_id, e.user_id::text) AS visitor,
         min(e.occurred_at) AS viewed_at
  FROM unnest(%(days)s::date[]) AS d(day)
  JOIN events e ON e.event_type = 'product.viewed'
               AND e.occurred_at >= d.day::timestamp AT TIME ZONE 'UTC'
               AND e.occurred_at < (d.day + 1)::timestamp AT TIME ZONE 'UTC'
  WHERE coalesce(e.session_id, e.user_id::text) IS NOT NULL
  GROUP BY 1, 2
), later_steps AS (
  SELECT coalesce(session_id, user_id::text) AS visitor, event_type, occurred_at
  FROM events
  WHERE event_type IN ('cart.item_added', 'checkout.completed')
    AND occurred_at >= %(steps_from)s AND occurred_at < %(steps_to)s
), carts AS (
  SELECT v.day, v.visitor, v.viewed_at, min(s.occurred_at) AS carted_at
  FROM views v JOIN later_steps s ON s.visitor = v.visitor AND s.event_type = 'cart.item_added'
   AND s.occurred_at >= v.viewed_at AND s.occurred_at <= v.viewed_at + %(window)s
  GROUP BY 1, 2, 3
), purchases AS (
  SELECT DISTINCT c.day, c.visitor
  FROM carts c JOIN later_steps s ON s.visitor = c.visitor
   AND s.event_type = 'checkout.completed'
   AND s.occurred_at >= c.carted_at AND s.occurred_at <= c.viewed_at + %(window)s
), funnel AS (
  SELECT v.day, v.visitor, c.visitor IS NOT NULL AS carted, p.visitor IS NOT NULL AS purchased
  FROM views v LEFT JOIN carts c USING (day, visitor) LEFT JOIN purchases p USING (day, visitor)
)
SELECT day, count(*) AS viewed, count(*) FILTER (WHERE carted) AS carted,
       count(*) FILTER (WHERE purchased) AS purchased
FROM funnel GROUP BY day
"""

FUNNEL = "INSERT INTO analytics_funnel_daily (day, viewed, carted, purchased)\n" + FUNNEL_STEPS

# The window the stored funnel uses ("within a day" of the first view); another window is
# computed from the events when asked.
DEFAULT_CONVERSION_WINDOW = timedelta(days=1)


def funnel_parameters(days: list[date], window: timedelta) -> dict[str, Any]:
    """The parameters of FUNNEL_STEPS for these days (sorted) and this conversion window."""
    first = datetime(days[0].year, days[0].month, days[0].day, tzinfo=UTC)
    last = datetime(days[-1].year, days[-1].month, days[-1].day, tzinfo=UTC)
    return {
        "days": days,
        "window": window,
        "steps_from": first,
        "steps_to": last + timedelta(days=1) + window + timedelta(microseconds=1),
    }


def days_entering_before(days: list[date], window: timedelta) -> list[date]:
    """The days whose funnel an event on one of `days` can change: the same days and those
    within the conversion window before them."""
    reach = -(-window // timedelta(days=1))  # whole days, rounded up
    return sorted({day - timedelta(days=back) for day in days for back in range(reach + 1)})


@dataclass(frozen=True)
class RefreshResult:
    days: list[date]
    partitions_created: int
    seconds: float


def refresh(connection: psycopg.Connection[Any]) -> RefreshResult:
    """Aggregate the days that received events since the last refresh, in the caller's
    transaction (the caller commits), and create the coming months' partitions. Needs the owner."""
    started = time.perf_counter()
    connection.execute("SELECT pg_advisory_xact_lock(%s)", (REFRESH_LOCK,))
    created = partitions.ensure_ahead(connection)
    days = sorted(
        row[0]
        for row in connection.execute("DELETE FROM analytics_dirty_days RETURNING day").fetchall()
    )
    if days:
        entered = days_entering_before(days, DEFAULT_CONVERSION_WINDOW)
        connection.execute(
            "DELETE FROM analytics_funnel_daily WHERE day = ANY(%(days)s)", {"days": entered}
        )
        connection.execute(FUNNEL, funnel_parameters(entered, DEFAULT_CONVERSION_WINDOW))
    connection.execute(
        "INSERT INTO analytics_rollup_state (id, refreshed_at) VALUES (true, now())"
        " ON CONFLICT (id) DO UPDATE SET refreshed_at = excluded.refreshed_at"
    )
    return RefreshResult(days, created, time.perf_counter() - started)


def refreshed_at(connection: psycopg.Connection[Any]) -> datetime | None:
    """When the rollups this server holds were last refreshed (None: never)."""
    row = connection.execute("SELECT refreshed_at FROM analytics_rollup_state").fetchone()
    return None if row is None else row[0]


def pending_days(connection: psycopg.Connection[Any]) -> int:
    row = connection.execute("SELECT count(*) FROM analytics_dirty_days").fetchone()
    return int(row[0]) if row else 0
