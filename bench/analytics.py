"""Analytics at volume: events ingested through the batch path (validation + COPY) against raw COPY
of the same rows, each report's latency from its pre-aggregate, and the refresh cost after
100,000 new events.

- Ingest: the same generated events, in chunks, alternately through `analytics.events.ingest`
  (each event validated, then COPY) and through raw psycopg COPY of ready-made tuples (the best
  raw path, no validation; both send from a writer thread), into two databases of one scratch server; the ratio is raw time /
  batch time (goal >= 0.8). Both pay the events table's indexes and its dirty-day trigger.
- Reports: every report run on the batch database after a full refresh, p50 and p99 over
  `--rounds` runs (goal p50 < 200 ms); the money reports over a billing history of one
  subscription per user (upgrades, cancellations, three currencies) and its payments (monthly
  invoices, one-off purchases, refunds), as the webhook handlers and their trigger record them.
- Refresh: 100,000 new events (today), then `rollups.refresh`; against it, rebuilding every day.

Default 1,000,000 events (a few minutes on a shared two-core machine); `--events 10000000` for
the issue's scale. The money reports read the billing history, not events: `--subscribers`
(default 5,000) sizes it. Figures go to bench/results/analytics.json.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg.copy import QueuedLibpqWriter

from afilo_db.analytics import rollups
from afilo_db.analytics.events import COPY_STATEMENT, ingest
from afilo_db.analytics.reports import REPORTS, DateRange
from bench.common import fresh_database, latencies, report, scratch_server, summary

DEFAULT_EVENTS = 1_000_000
CHUNKS = 10
NEW_EVENTS = 100_000
DEFAULT_SUBSCRIBERS = 5_000
PRODUCTS = 500
PEOPLE_SEED = 7


def _people(seed: int, subscribers: int) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    rng = random.Random(seed)
    users = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(subscribers)]
    products = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(PRODUCTS)]
    return users, products


def _stock(
    connection: psycopg.Connection[Any], seed: int, first_day: datetime, subscribers: int
) -> None:
    """The users and products the events name (`ingest` refuses unknown ones), and a billing
    history for the money reports: each user subscribes, about a third upgrade, a fifth cancel,
    as the Stripe handlers record it (one row per state)."""
    users, products = _people(seed, subscribers)
    connection.execute(
        "INSERT INTO user_profiles (id, clerk_user_id, email)"
        " SELECT u, 'user_bench' || lpad(n::text, 10, '0'), 'b' || n || '@example.com'"
        " FROM unnest(%s::uuid[]) WITH ORDINALITY AS t(u, n)",
        (users,),
    )
    connection.execute(
        "INSERT INTO products (id, handle, title, status)"
        " SELECT p, 'bench-' || n, 'Bench ' || n, 'draft'"
        " FROM unnest(%s::uuid[]) WITH ORDINALITY AS t(p, n)",
        (products,),
    )
    connection.execute(
        """
        INSERT INTO user_subscriptions (user_id, stripe_subscription_id, stripe_price_id, tier,
          status, amount, currency, current_period_start, current_period_end, is_current,
          state_event_id, state_as_of)
        SELECT u, 'sub_b' || lpad(n::text, 10, '0'), 'price_bench00001', s.tier, s.status,
               s.amount, (ARRAY['USD', 'EUR', 'GBP'])[1 + n %% 3], s.at, s.at + interval '30 days',
               s.step = max(s.step) OVER (PARTITION BY u), 'evt_b' || n || '_' || s.step, s.at
        FROM unnest(%s::uuid[]) WITH ORDINALITY AS t(u, n),
        LATERAL (VALUES
          (1, 'starter', 'active', 19.00, %s::timestamptz + (n %% 300) * interval '1 day'),
          (2, 'professional', 'active', 49.00,
           %s::timestamptz + (n %% 300 + 40) * interval '1 day'),
          (3, 'professional', 'canceled', 49.00,
           %s::timestamptz + (n %% 300 + 90) * interval '1 day')
        ) AS s(step, tier, status, amount, at)
        WHERE s.step = 1 OR (s.step = 2 AND n %% 3 = 0) OR (s.step = 3 AND n %% 5 = 0)
        """,
        (users, first_day, first_day, first_day),
    )
    # What the Stripe trigger would have recorded for that history: each month's invoice while
    # the subscription lasts (the upgraded price after the upgrade), a one-off purchase of every
    # fourth user and a refund of every twentieth.
    connection.execute(
        """
        INSERT INTO analytics_payments (kind, reference, amount, currency, occurred_at,
                                        stripe_event_id)
        SELECT 'recurring', 'in_b' || n || '_' || k,
               CASE WHEN n %% 3 = 0 AND at >= s + interval '40 days' THEN 49.00 ELSE 19.00 END,
               (ARRAY['USD', 'EUR', 'GBP'])[1 + n %% 3], at, 'evt_bi' || n || '_' || k
        FROM unnest(%s::uuid[]) WITH ORDINALITY AS t(u, n),
        LATERAL (SELECT %s::timestamptz + (n %% 300) * interval '1 day') AS start(s),
        LATERAL generate_series(s, CASE WHEN n %% 5 = 0 THEN s + interval '90 days' ELSE now() END,
                                interval '1 month') WITH ORDINALITY AS g(at, k)
        UNION ALL
        SELECT kind, kind || '_b' || n, 29.00, (ARRAY['USD', 'EUR', 'GBP'])[1 + n %% 3],
               %s::timestamptz + (n %% 300 + offset_days) * interval '1 day', 'evt_bo' || n || kind
        FROM unnest(%s::uuid[]) WITH ORDINALITY AS t(u, n),
        LATERAL (VALUES ('one_off', 10), ('refund', 14)) AS o(kind, offset_days)
        WHERE n %% 4 = 0 AND (kind = 'one_off' OR n %% 20 = 0)
        """,
        (users, first_day, first_day, users),
    )


def _generate(
    count: int, seed: int, start: datetime, days: int, subscribers: int
) -> Iterator[dict[str, Any]]:
    """A marketplace's behaviour: mostly product views, some carts and checkouts."""
    users, products = _people(seed, subscribers)
    span = days * 86_400
    for index in range(count):
        at = start + timedelta(seconds=span * index // count)
        user = users[index % len(users)]
        session = f"s{index // 5}"
        roll = index % 100
        if roll < 70:
            yield {"name": "product.viewed", "user_id": user, "product_id": products[index % len(products)],
                   "session_id": session, "occurred_at": at, "properties": {"source": "web"}}  # fmt: skip
        elif roll < 88:
            yield {"name": "cart.item_added", "user_id": user, "session_id": session,
                   "product_id": products[index % len(products)], "occurred_at": at,
                   "properties": {"quantity": 1}}  # fmt: skip
        else:
            yield {"name": "checkout.completed", "user_id": user, "session_id": session,
                   "product_id": products[index % len(products)], "occurred_at": at,
                   "properties": {"amount": "29.00", "currency": "USD"}}  # fmt: skip


def _raw_rows(events: Iterator[dict[str, Any]]) -> Iterator[tuple[Any, ...]]:
    for event in events:
        yield (event["occurred_at"], event["name"], event.get("user_id"), event.get("product_id"),
               event.get("session_id"), json.dumps(event["properties"]))  # fmt: skip


def _raw_copy(connection: psycopg.Connection[Any], rows: Iterator[tuple[Any, ...]]) -> None:
    with (
        connection.cursor() as cursor,
        cursor.copy(COPY_STATEMENT, writer=QueuedLibpqWriter(cursor)) as copy,
    ):
        for row in rows:
            copy.write_row(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument(
        "--subscribers",
        type=int,
        default=DEFAULT_SUBSCRIBERS,
        help="users with a billing history: what the money reports' cost grows with",
    )
    arguments = parser.parse_args()
    total = arguments.events
    subscribers = arguments.subscribers
    chunk = total // CHUNKS
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = (today - timedelta(days=330)).replace(day=1)
    days = (today - first_day).days
    with scratch_server("analytics") as server:
        batch_url = fresh_database(server, "bench_analytics_batch")
        raw_url = fresh_database(server, "bench_analytics_raw")
        batch_seconds = raw_seconds = 0.0
        with psycopg.connect(batch_url) as batch, psycopg.connect(raw_url) as raw:
            for connection in (batch, raw):
                _stock(connection, PEOPLE_SEED, first_day, subscribers)
                connection.commit()
            for number in range(CHUNKS):
                chunk_start = first_day + timedelta(days=days * number / CHUNKS)
                chunk_days = max(days // CHUNKS, 1)
                # Alternate which goes first, so that drift hits both alike.
                order = ("batch", "raw") if number % 2 == 0 else ("raw", "batch")
                for side in order:
                    events = _generate(chunk, PEOPLE_SEED, chunk_start, chunk_days, subscribers)
                    started = time.perf_counter()
                    if side == "batch":
                        ingest(batch, events)
                        batch.commit()
                        batch_seconds += time.perf_counter() - started
                    else:
                        _raw_copy(raw, _raw_rows(events))
                        raw.commit()
                        raw_seconds += time.perf_counter() - started
                print(f"chunk {number + 1}/{CHUNKS}: batch {batch_seconds:.1f} s, raw {raw_seconds:.1f} s",
                      flush=True)  # fmt: skip
            started = time.perf_counter()
            first = rollups.refresh(batch)
            batch.commit()
            first_refresh = time.perf_counter() - started

            date_range = DateRange(first_day.date(), today.date())
            report_latency = {}
            batch.autocommit = True
            for name, definition in REPORTS.items():
                samples = latencies(
                    lambda definition=definition: definition.run(batch, date_range),  # type: ignore[misc]
                    arguments.rounds,
                    warmup=3,
                )
                report_latency[name] = summary(samples)
                print(f"{name}: {report_latency[name]}", flush=True)
            batch.autocommit = False

            new_events = _generate(
                NEW_EVENTS, PEOPLE_SEED, datetime.now(UTC) - timedelta(days=1), 1, subscribers
            )
            started = time.perf_counter()
            ingest(batch, new_events)
            batch.commit()
            new_ingest = time.perf_counter() - started
            incremental = rollups.refresh(batch)
            batch.commit()
            batch.execute("INSERT INTO analytics_dirty_days SELECT generate_series(%s::date, %s::date, interval '1 day')::date",
                          (first_day.date(), today.date()))  # fmt: skip
            rebuild = rollups.refresh(batch)
            batch.commit()
            sizes = {
                table: batch.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
                for table in (
                    "events",
                    "analytics_funnel_daily",
                    "user_subscriptions",
                    "analytics_payments",
                )
            }
    figures = {
        "events": total,
        "subscribers": subscribers,
        "ingest": {
            "batch_seconds": round(batch_seconds, 2),
            "raw_copy_seconds": round(raw_seconds, 2),
            "batch_events_per_second": round(total / batch_seconds),
            "raw_events_per_second": round(total / raw_seconds),
            "batch_vs_raw_copy": round(raw_seconds / batch_seconds, 3),
            "goal": ">= 0.8",
        },
        "first_refresh": {"days": len(first.days), "seconds": round(first_refresh, 2)},
        "report_latency_ms": report_latency,
        "report_goal": "p50 < 200 ms",
        "after_100k_new_events": {
            "ingest_seconds": round(new_ingest, 2),
            "incremental_refresh_seconds": round(incremental.seconds, 3),
            "days_refreshed": len(incremental.days),
            "full_rebuild_seconds": round(rebuild.seconds, 2),
            "incremental_vs_rebuild": round(rebuild.seconds / incremental.seconds, 1),
        },
        "rows": sizes,
        "range": {"from": date_range.start.isoformat(), "to": date_range.end.isoformat()},
        "generated_on": date.today().isoformat(),
    }
    report("analytics", figures)


if __name__ == "__main__":
    main()
