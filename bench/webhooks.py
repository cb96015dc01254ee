"""Webhook events per second: Stripe and Clerk events (a marketplace's lifecycle, 10 per user)
posted to the real endpoint (uvicorn on a loopback port, the service role's login, 8 concurrent
clients retrying a 409 as the providers do), against two references measured in the same run on
the same events:

- baseline: raw psycopg, one prepared `INSERT ... ON CONFLICT DO NOTHING` of the event row per
  transaction (what storing an event once costs at the least, without applying it);
- library: `verify` + `ingest` in-process, one transaction per event, sequential (what applying
  costs without HTTP).

`python -m bench.webhooks [--users N]` (default 100 users = 1,000 events). Results go to
bench/results/webhooks.json.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import psycopg
import uvicorn
from sqlalchemy.orm import Session
from tests.billing.providers import (
    CLERK_SECRET,
    STRIPE_SECRET,
    Delivery,
    deliver_all,
    marketplace_events,
    stock_catalog,
)

from afilo_db.billing.endpoint import WebhookSecrets, create_webhook_app
from afilo_db.billing.ingest import ingest
from afilo_db.billing.verification import verify_clerk, verify_stripe
from afilo_db.db.engine import create_app_engine
from afilo_db.db.urls import libpq_url
from afilo_db.security.roles import SERVICE_ROLE, login_password_sql
from bench.common import fresh_database, report, scratch_server

TEMPLATE = "bench_webhooks_template"


def _baseline(url: str, events: list[Delivery]) -> float:
    with psycopg.connect(url, autocommit=True) as connection:
        started = time.perf_counter()
        for delivery in events:
            connection.execute(
                "INSERT INTO webhook_events (provider, event_id, event_type, payload, occurred_at)"
                " VALUES (%s, %s, 'bench', %s, now()) ON CONFLICT DO NOTHING",
                (delivery.provider, delivery.event_id, delivery.body.decode()),
                prepare=True,
            )
        return time.perf_counter() - started


def _library(service_url: str, events: list[Delivery]) -> float:
    engine = create_app_engine(service_url)
    try:
        started = time.perf_counter()
        for delivery in events:
            event = (
                verify_stripe(delivery.body, delivery.headers["Stripe-Signature"], STRIPE_SECRET)
                if delivery.provider == "stripe"
                else verify_clerk(delivery.body, delivery.headers, CLERK_SECRET)
            )
            with Session(engine) as session, session.begin():
                ingest(session, event)
        return time.perf_counter() - started
    finally:
        engine.dispose()


def _endpoint(service_url: str, events: list[Delivery], port: int) -> tuple[float, int]:
    engine = create_app_engine(service_url)
    app = create_webhook_app(engine, WebhookSecrets(STRIPE_SECRET, CLERK_SECRET))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        started = time.perf_counter()
        posts = deliver_all(f"http://127.0.0.1:{port}", events)
        return time.perf_counter() - started, posts
    finally:
        server.should_exit = True
        thread.join()
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--port", type=int, default=18787)
    options = parser.parse_args()
    figures: dict[str, Any] = {"users": options.users}
    with scratch_server("webhooks") as server:
        template_url = fresh_database(server, TEMPLATE)
        stock_catalog(template_url)
        password = server.role_password(SERVICE_ROLE)
        with psycopg.connect(server.url("postgres"), autocommit=True) as admin:
            admin.execute(login_password_sql(admin, password, SERVICE_ROLE))
        # Events are signed when made: each variant gets its own, inside the five minutes.
        timings: dict[str, float] = {}
        for name in ("baseline", "library", "endpoint"):
            events = marketplace_events(options.users)
            url = fresh_database(server, f"bench_webhooks_{name}", template=TEMPLATE)
            service_url = libpq_url(server.role_url(SERVICE_ROLE, f"bench_webhooks_{name}"))
            if name == "baseline":
                timings[name] = _baseline(url, events)
            elif name == "library":
                timings[name] = _library(service_url, events)
            else:
                timings[name], figures["endpoint_posts"] = _endpoint(
                    service_url, events, options.port
                )
            with psycopg.connect(url) as check:
                stored = check.execute("SELECT count(*) FROM webhook_events").fetchone()
            assert stored == (len(events),), (name, stored)
            figures[f"{name}_events_per_second"] = round(len(events) / timings[name], 1)
    figures["events"] = len(events)
    figures["endpoint_vs_baseline"] = round(timings["endpoint"] / timings["baseline"], 2)
    figures["library_vs_baseline"] = round(timings["library"] / timings["baseline"], 2)
    report("webhooks", figures)


if __name__ == "__main__":
    main()
