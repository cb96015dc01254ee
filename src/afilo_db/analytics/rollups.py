"""The reports' pre-aggregates, refreshed incrementally.

A trigger on `events` records every UTC day a statement wrote events into (`analytics_dirty_days`);
`refresh()` takes those days, deletes their rollup rows and aggregates them again from the events
of those days only, so its cost follows the new events, not the table. It runs in the caller's
transaction under an advisory lock (two refreshes queue); an event written while it runs marks its
day again and is aggregated by the next one.

Rollups outlive the events: after retention drops a month's partition its figures stay.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg

from afilo_db.analytics import partitions

# pg_advisory_xact_lock key: "afilo analytics rollups".
REFRESH_LOCK = 0x4146_414E_414C_5954

# The days' events, each joined to its day (ranges per day keep the (event_type, occurred_at)
# index usable and prune partitions).
_DAY_EVENTS = """
FROM unnest(%(days)s::date[]) AS d(day)
JOIN events e ON e.occurred_at >= d.day::timestamp AT TIME ZONE 'UTC'
             AND e.occurred_at < (d.day + 1)::timestamp AT TIME ZONE 'UTC'
"""

FUNNEL = f"""
INSERT INTO analytics_funnel_daily (day, viewed, carted, purchased)
WITH steps AS (
  SELECT d.day, coalesce(e.session_id, e.user_id::text) AS visitor, e.event_type, e.occurred_at,
         min(e.occurred_at) FILTER (WHERE e.event_type = 'product.viewed')
           OVER (PARTITION BY d.day, coalesce(e.session_id, e.user_id::text)) AS first_view
  {_DAY_EVENTS}
  WHERE e.event_type IN ('product.viewed', 'cart.item_added', 'checkout.completed')
    AND coalesce(e.session_id, e.user_id::text) IS NOT NULL
), visits AS (
  SELECT day, visitor, first_view,
         min(occurred_at) FILTER (WHERE event_type = 'cart.item_added'
                                    AND occurred_at >= first_view) AS first_cart,
         max(occurred_at) FILTER (WHERE event_type = 'checkout.completed') AS last_purchase
  FROM steps GROUP BY day, visitor, first_view
)
SELECT day, count(first_view), count(first_cart),
       count(*) FILTER (WHERE last_purchase >= first_cart)
FROM visits GROUP BY day
"""

SUBSCRIPTIONS = f"""
INSERT INTO analytics_subscriptions_daily (day, tier, currency, started, new_mrr, upgrades,
  expansion_mrr, downgrades, contraction_mrr, canceled, churned_mrr)
WITH movements AS (
  SELECT d.day, e.event_type,
         coalesce(e.properties->>'to_tier', e.properties->>'tier') AS tier,
         e.properties->>'currency' AS currency,
         (e.properties->>'mrr')::numeric AS mrr,
         coalesce((e.properties->>'mrr')::numeric - (e.properties->>'previous_mrr')::numeric, 0)
           AS change
  {_DAY_EVENTS}
  WHERE e.event_type IN ('subscription.started', 'subscription.changed', 'subscription.canceled')
)
SELECT day, tier, currency,
  count(*) FILTER (WHERE event_type = 'subscription.started'),
  coalesce(sum(mrr) FILTER (WHERE event_type = 'subscription.started'), 0),
  count(*) FILTER (WHERE event_type = 'subscription.changed' AND change > 0),
  coalesce(sum(change) FILTER (WHERE event_type = 'subscription.changed' AND change > 0), 0),
  count(*) FILTER (WHERE event_type = 'subscription.changed' AND change < 0),
  coalesce(-sum(change) FILTER (WHERE event_type = 'subscription.changed' AND change < 0), 0),
  count(*) FILTER (WHERE event_type = 'subscription.canceled'),
  coalesce(sum(mrr) FILTER (WHERE event_type = 'subscription.canceled'), 0)
FROM movements GROUP BY day, tier, currency
"""

REVENUE = f"""
INSERT INTO analytics_revenue_daily (day, currency, recurring, refunds)
SELECT d.day, e.properties->>'currency',
  coalesce(sum((e.properties->>'amount')::numeric)
           FILTER (WHERE e.event_type = 'invoice.paid'), 0),
  coalesce(sum((e.properties->>'amount')::numeric)
           FILTER (WHERE e.event_type = 'purchase.refunded'), 0)
{_DAY_EVENTS}
WHERE e.event_type IN ('invoice.paid', 'purchase.refunded')
GROUP BY d.day, e.properties->>'currency'
"""

# A subscriber's span from all their subscription events (not only the dirty days'): the first
# start, and the last cancellation if no start came after it. The earliest start already known is
# kept, since retention may have dropped the events that showed it.
SUBSCRIBERS = f"""
WITH touched AS (
  SELECT DISTINCT e.user_id {_DAY_EVENTS}
  WHERE e.event_type IN ('subscription.started', 'subscription.canceled')
    AND e.user_id IS NOT NULL
), spans AS (
  SELECT e.user_id,
         min(e.occurred_at) FILTER (WHERE e.event_type = 'subscription.started') AS started_at,
         max(e.occurred_at) FILTER (WHERE e.event_type = 'subscription.started') AS last_start,
         max(e.occurred_at) FILTER (WHERE e.event_type = 'subscription.canceled') AS last_cancel
  FROM touched JOIN events e ON e.user_id = touched.user_id
  WHERE e.event_type IN ('subscription.started', 'subscription.canceled')
  GROUP BY e.user_id
)
INSERT INTO analytics_subscribers (user_id, started_at, canceled_at)
SELECT user_id, started_at, CASE WHEN last_cancel >= last_start THEN last_cancel END
FROM spans WHERE started_at IS NOT NULL
ON CONFLICT (user_id) DO UPDATE SET
  started_at = least(analytics_subscribers.started_at, excluded.started_at),
  canceled_at = excluded.canceled_at
"""

DAILY_ROLLUPS = {
    "analytics_funnel_daily": FUNNEL,
    "analytics_subscriptions_daily": SUBSCRIPTIONS,
    "analytics_revenue_daily": REVENUE,
}


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
        for table, aggregate in DAILY_ROLLUPS.items():
            connection.execute(f"DELETE FROM {table} WHERE day = ANY(%(days)s)", {"days": days})
            connection.execute(aggregate, {"days": days})
        connection.execute(SUBSCRIBERS, {"days": days})
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
