"""Webhook events per second: Stripe and Clerk events (a marketplace's lifecycle, 10 per user)
posted to the real endpoint by 8 concurrent senders, against a raw psycopg baseline that makes
the same writes with as many concurrent connections, both measured in the same run on the same
events.

- endpoint: `afilo-db webhooks serve` as an operator runs it (its default processes, one a
  core up to 4: 2 on a two-core machine), on the service role's login with DB_POOL_SIZE = 8 as
  docs/stripe-events.md says to size it for 8 senders (at most 8 deliveries are in flight, so
  at most 8 connections are busy at once, as many as the baseline's); the senders post from
  this process and retry a 409 or 500 as the providers do (`tests.billing.providers.
  deliver_all`). Three times a round: `endpoint` posted by httpx clients, `endpoint_socket` by
  HTTP/1.1 written on a socket by hand, and `endpoint_socket_one_process` so with
  `--workers 1`. In production the senders are Stripe's and Clerk's machines; here they share
  the endpoint's cores, and httpx spends a CPU share that is the benchmark's, not the
  endpoint's: the socket sender's ratio is the truer measure of the endpoint, httpx's the more
  cautious. Each run also reports the CPU its server processes spent an event, which the load
  of a shared machine does not change.
- baseline: 8 threads, a psycopg connection each, one transaction per event holding the writes
  the handler makes for it: the event row (with its user and outcome), the mirror rows it
  changes (`user_profiles`, `user_subscriptions`, `purchases`) and its `user_activity_log`
  entries, each write one prepared statement with the lookups it needs folded in (one round trip
  a write). It verifies no signature, parses each body once, reads nothing back and never
  retries: the least any endpoint storing these events can do, so endpoint / baseline is what
  the HTTP layer, verification and the handlers' rules (order, locks, idempotency) cost.
- library: `verify` + `ingest` in-process, sequential, one transaction per event (what applying
  costs without HTTP and without concurrency).

The events go out in the order they happened (each user's sign-up, then everybody's next step):
the users' lifecycles interleave as a marketplace's do. (Posting each user's ten events one after
another, as this benchmark did before, puts up to eight events of one user in flight at once:
the endpoint defers those that come before their predecessor, which no raw baseline can mirror.)

The baseline and the endpoint alternate for `--rounds` rounds (3), each round on fresh databases
and freshly signed events, so that a shared machine's load moves both alike; each round's ratio
is its endpoints' events a second over its baseline's (the goal: at least 0.5).

`python -m bench.webhooks [--users N] [--rounds R]` (default 200 users = 2,000 events a round:
on a fast machine shorter rounds were too short for a steady ratio, docs/benchmarks.md).
Results go to bench/results/webhooks.json.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.orm import Session
from tests.billing.providers import (
    CLERK_SECRET,
    STRIPE_SECRET,
    Delivery,
    deliver_all,
    httpx_sender,
    marketplace_events,
    socket_sender,
    stock_catalog,
)

from afilo_db.billing.ingest import ingest
from afilo_db.billing.verification import verify_clerk, verify_stripe
from afilo_db.db.embedded import EmbeddedServer
from afilo_db.db.engine import create_app_engine
from afilo_db.db.urls import libpq_url
from afilo_db.security.roles import SERVICE_ROLE, login_password_sql
from bench.common import fresh_database, report, scratch_server

TEMPLATE = "bench_webhooks_template"
SENDERS = 8
# The endpoint's runs: what posts to it (httpx, as a Python back end posts, or a socket written
# to by hand, whose CPU, on the endpoint's cores here and on Stripe's and Clerk's in production,
# is next to none) and the `--workers` it is served with (None: the command's default).
ENDPOINT_RUNS: dict[str, tuple[Callable[[str], Any], int | None]] = {
    "endpoint": (httpx_sender, None),
    "endpoint_socket": (socket_sender, None),
    "endpoint_socket_one_process": (socket_sender, 1),
}

Write = tuple[str, tuple[Any, ...]]

_EVENT = (
    "INSERT INTO webhook_events (provider, event_id, event_type, subject, payload, occurred_at,"
    " outcome, user_id) VALUES (%s, %s, %s, %s, %s, to_timestamp(%s), %s,"
    " (SELECT id FROM user_profiles WHERE clerk_user_id = %s)) ON CONFLICT DO NOTHING"
)
_LOG = (
    "INSERT INTO user_activity_log (user_id, actor, action, entity_type, entity_id, details,"
    " event_id) SELECT id, %s, %s, %s, %s, %s, %s FROM user_profiles WHERE clerk_user_id = %s"
)
_PROFILE = (
    "INSERT INTO user_profiles (clerk_user_id, email, display_name, state_event_id, state_as_of)"
    " VALUES (%s, %s, %s, %s, to_timestamp(%s)) ON CONFLICT (clerk_user_id) DO UPDATE SET"
    " email = excluded.email, display_name = excluded.display_name,"
    " state_event_id = excluded.state_event_id, state_as_of = excluded.state_as_of"
)
_CUSTOMER = (
    "UPDATE user_profiles SET stripe_customer_id = %s"
    " WHERE clerk_user_id = %s AND stripe_customer_id IS NULL"
)
_NOT_CURRENT = (
    "UPDATE user_subscriptions SET is_current = false"
    " WHERE stripe_subscription_id = %s AND is_current"
)
_SUBSCRIPTION = (
    "INSERT INTO user_subscriptions (user_id, stripe_subscription_id, stripe_price_id, tier,"
    " status, amount, currency, current_period_start, current_period_end, cancel_at_period_end,"
    " canceled_at, is_current, state_event_id, state_as_of) SELECT id, %s, %s, %s, %s, %s, %s,"
    " to_timestamp(%s), to_timestamp(%s), false, to_timestamp(%s), true, %s, to_timestamp(%s)"
    " FROM user_profiles WHERE clerk_user_id = %s"
)
_TIER = (
    "WITH changed AS (UPDATE user_profiles SET subscription_tier = %s"
    " WHERE clerk_user_id = %s AND subscription_tier IS DISTINCT FROM %s RETURNING id)"
    " INSERT INTO user_activity_log (user_id, actor, action, entity_type, entity_id, details,"
    " event_id) SELECT id, 'stripe', 'profile.tier_changed', 'user_profiles', id::text, %s, %s"
    " FROM changed"
)
_PURCHASE = (
    "INSERT INTO purchases (user_id, product_id, variant_id, quantity, amount, currency, status,"
    " stripe_payment_intent_id, stripe_checkout_session_id, state_event_id, state_as_of)"
    " SELECT u.id, v.product_id, v.id, 1, %s, %s, 'paid', %s, %s, %s, to_timestamp(%s)"
    " FROM user_profiles u, product_variants v WHERE u.clerk_user_id = %s"
    " AND v.stripe_price_id = %s ON CONFLICT (stripe_payment_intent_id) DO NOTHING"
)
_CONFIRM = (
    "UPDATE purchases SET state_event_id = %s, state_as_of = to_timestamp(%s)"
    " WHERE stripe_payment_intent_id = %s"
)
_REFUND = (
    "UPDATE purchases SET status = 'refunded', state_event_id = %s, state_as_of = to_timestamp(%s)"
    " WHERE stripe_payment_intent_id = %s AND status <> 'refunded'"
)


def _clerk_user(obj: dict[str, Any]) -> str:
    user = obj.get("metadata", {}).get("clerk_user_id") or obj.get("client_reference_id")
    if user is None:  # the bench's charges and invoices name their user by their ids' key
        user = (
            "user_" + str(obj["customer" if "customer" in obj else "payment_intent"]).split("_")[1]
        )
    return str(user)


def _raw_writes(delivery: Delivery) -> list[Write]:
    """What the handlers write for this event of `marketplace_events`, as raw statements."""
    event = json.loads(delivery.body)
    kind, data = event["type"], event["data"]
    obj = data if delivery.provider == "clerk" else data["object"]
    created = event["timestamp"] / 1000 if delivery.provider == "clerk" else event["created"]
    evt, provider = delivery.event_id, delivery.provider
    user = obj["id"] if provider == "clerk" else _clerk_user(obj)
    outcome = "recorded" if kind.startswith("invoice.") else "applied"
    row = (provider, evt, kind, obj["id"], delivery.body.decode(), created, outcome, user)

    def log(action: str, entity_type: str, entity_id: str, **details: Any) -> Write:
        document = json.dumps({"event_type": kind, **details})
        return _LOG, (provider, action, entity_type, entity_id, document, evt, user)

    if kind in ("user.created", "user.updated"):
        email = obj["email_addresses"][0]["email_address"]
        name = f"{obj['first_name']} {obj['last_name']}"
        return [
            (_PROFILE, (user, email, name, evt, obj["updated_at"] / 1000)),
            (_EVENT, row),
            log(f"profile.{kind.split('.')[1]}", "user_profiles", user),
        ]
    if kind.startswith("customer.subscription."):
        item = obj["items"]["data"][0]
        price, tier = item["price"], item["price"]["metadata"]["tier"]
        writes = (
            [(_CUSTOMER, (obj["customer"], user)),
             log("profile.stripe_customer_linked", "user_profiles", user)]
            if kind.endswith(".created")
            else []
        )  # fmt: skip
        holding = obj["status"] in ("trialing", "active", "past_due")
        return [
            *writes,
            (_EVENT, row),
            (_NOT_CURRENT, (obj["id"],)),
            (
                _SUBSCRIPTION,
                (
                    obj["id"],
                    price["id"],
                    tier,
                    obj["status"],
                    Decimal(price["unit_amount"]) / 100,
                    price["currency"].upper(),
                    item["current_period_start"],
                    item["current_period_end"],
                    obj["canceled_at"],
                    evt,
                    created,
                    user,
                ),
            ),
            log("subscription.state_recorded", "user_subscriptions", obj["id"]),
            (
                _TIER,
                (
                    tier if holding else "free",
                    user,
                    tier if holding else "free",
                    json.dumps({"event_type": kind}),
                    evt,
                ),
            ),
        ]
    if kind.startswith("invoice."):
        return [(_EVENT, row), log(f"subscription.{kind}", "user_subscriptions", obj["id"])]
    if kind == "checkout.session.completed":
        return [
            (_EVENT, row),
            (
                _PURCHASE,
                (
                    Decimal(obj["amount_total"]) / 100,
                    obj["currency"].upper(),
                    obj["payment_intent"],
                    obj["id"],
                    evt,
                    created,
                    user,
                    obj["metadata"]["stripe_price_id"],
                ),
            ),
            log("purchase.recorded", "purchases", obj["payment_intent"]),
        ]
    if kind == "charge.refunded":
        return [
            (_EVENT, row),
            (_REFUND, (evt, created, obj["payment_intent"])),
            log("purchase.refunded", "purchases", obj["payment_intent"]),
        ]
    # payment_intent.succeeded of a purchase its Checkout Session recorded as paid: confirmed.
    return [
        (_EVENT, row),
        (_CONFIRM, (evt, created, obj["id"])),
        log("purchase.confirmed", "purchases", obj["id"]),
    ]


def _in_order_of_occurrence(events: list[Delivery]) -> list[Delivery]:
    def occurred(delivery: Delivery) -> float:
        event = json.loads(delivery.body)
        return float(event["created"] if "created" in event else event["timestamp"] / 1000)

    return sorted(events, key=occurred)


def _concurrently(events: list[Delivery], work: Callable[[Delivery], None]) -> None:
    pending: queue.Queue[Delivery] = queue.Queue()
    for delivery in events:
        pending.put(delivery)

    def sender() -> None:
        while True:
            try:
                delivery = pending.get_nowait()
            except queue.Empty:
                return
            work(delivery)

    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _baseline(url: str, events: list[Delivery]) -> float:
    # Parsed before the clock starts, as the endpoint's senders sign before it starts.
    writes = {delivery.event_id: _raw_writes(delivery) for delivery in events}
    connections: queue.Queue[psycopg.Connection[Any]] = queue.Queue()
    for _ in range(SENDERS):
        connections.put(psycopg.connect(url))

    def apply(delivery: Delivery) -> None:
        connection = connections.get()
        try:
            with connection.transaction():
                for sql, values in writes[delivery.event_id]:
                    connection.execute(sql, values, prepare=True)
        finally:
            connections.put(connection)

    try:
        started = time.perf_counter()
        _concurrently(events, apply)
        return time.perf_counter() - started
    finally:
        while not connections.empty():
            connections.get().close()


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


def _tree_cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) that a process and those it started have used, from
    /proc: `webhooks serve` and its worker processes."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # The fields after the command's closing parenthesis: state, then the parent.
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
            except (OSError, IndexError, ValueError):
                continue  # ended while listed
    tree, grown = {pid}, True
    while grown:
        children = {child for child, parent in parents.items() if parent in tree}
        grown = not children <= tree
        tree |= children
    seconds = 0.0
    for member in tree:
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


def _wait_until_serving(server: subprocess.Popen[bytes], port: int) -> None:
    """Until the endpoint answers and its processes are done starting: with several workers
    the port takes connections before every worker has imported the app."""
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as probe:
                probe.sendall(b"GET /webhooks/stripe HTTP/1.1\r\nHost: bench\r\n\r\n")
                if probe.recv(64).startswith(b"HTTP/1.1 405"):
                    break
        except OSError:
            if server.poll() is not None:
                raise RuntimeError("the endpoint's server ended before it listened") from None
            time.sleep(0.05)
    idle_since = _tree_cpu_seconds(server.pid)
    while True:
        time.sleep(0.3)
        used = _tree_cpu_seconds(server.pid)
        if used - idle_since < 0.02:
            return
        idle_since = used


def _endpoint(
    owner_url: str,
    service_url: str,
    events: list[Delivery],
    port: int,
    run: tuple[Callable[[str], Any], int | None],
) -> tuple[float, int, float]:
    """Seconds, posts, and the CPU seconds an event of the endpoint's processes, served by
    `afilo-db webhooks serve` in a process of its own, with a pool of SENDERS connections a
    process (with the default 5, three of the eight senders' deliveries would wait for a
    connection that the baseline never lacks; docs/stripe-events.md says to size the pool so)."""
    sender, workers = run
    environment = {
        **os.environ,
        "DATABASE_URL": owner_url,
        "SERVICE_DATABASE_URL": service_url,
        "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
        "CLERK_WEBHOOK_SECRET": CLERK_SECRET,
        "DB_POOL_SIZE": str(SENDERS),
    }
    command = [sys.executable, "-m", "afilo_db", "webhooks", "serve", "--port", str(port)]
    if workers is not None:
        command += ["--workers", str(workers)]
    # Its log (a line a delivery, as served) goes to a file, read back if it fails.
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(command, env=environment, stdout=log, stderr=log)
        try:
            _wait_until_serving(server, port)
            cpu_before = _tree_cpu_seconds(server.pid)
            started = time.perf_counter()
            posts = deliver_all(f"http://127.0.0.1:{port}", events, SENDERS, sender)
            elapsed = time.perf_counter() - started
            cpu = (_tree_cpu_seconds(server.pid) - cpu_before) / len(events)
        except BaseException:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-4000:])
            raise
        finally:
            server.terminate()
            server.wait()
    return elapsed, posts, cpu


def _measure(
    server: EmbeddedServer, name: str, events: list[Delivery], port: int
) -> tuple[float, dict[str, Any]]:
    """Seconds for `name` to take `events` into a fresh database, and what it wrote."""
    database = f"bench_webhooks_{name}"
    url = fresh_database(server, database, template=TEMPLATE)
    service_url = libpq_url(server.role_url(SERVICE_ROLE, database))
    extra: dict[str, Any] = {}
    if name == "baseline":
        seconds = _baseline(url, events)
    elif name == "library":
        seconds = _library(service_url, events)
    else:
        seconds, extra["posts"], cpu = _endpoint(
            url, service_url, events, port, ENDPOINT_RUNS[name]
        )
        extra["process_cpu_ms_per_event"] = round(cpu * 1000, 2)
    with psycopg.connect(url) as check:
        stored = check.execute(
            "SELECT (SELECT count(*) FROM webhook_events),"
            " (SELECT count(*) FROM user_subscriptions),"
            " (SELECT count(*) FROM purchases WHERE status = 'refunded'),"
            " (SELECT count(*) FROM user_activity_log)"
        ).fetchone()
    assert stored is not None and stored[0] == len(events), (name, stored)
    extra["rows"] = dict(
        zip(("events", "subscription_states", "refunds", "activity"), stored, strict=True)
    )
    return seconds, extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=18787)
    options = parser.parse_args()
    if options.users < 4 * SENDERS:
        # Fewer, and the senders would post one user's next steps before the last one is
        # applied: the endpoint defers them (409), the baseline's plain writes would collide.
        parser.error(f"--users: at least {4 * SENDERS}")
    figures: dict[str, Any] = {"users": options.users, "senders": SENDERS}
    rates: dict[str, list[float]] = {name: [] for name in ("baseline", *ENDPOINT_RUNS, "library")}
    ratios: dict[str, list[float]] = {name: [] for name in ENDPOINT_RUNS}
    cpu: dict[str, list[float]] = {name: [] for name in ENDPOINT_RUNS}
    with scratch_server("webhooks") as server:
        template_url = fresh_database(server, TEMPLATE)
        stock_catalog(template_url)
        password = server.role_password(SERVICE_ROLE)
        with psycopg.connect(server.url("postgres"), autocommit=True) as admin:
            admin.execute(login_password_sql(admin, password, SERVICE_ROLE))
        # The baseline and the endpoint alternate, round after round, so that the load of a
        # shared machine moves both alike; the library (a reference) runs once, at the end.
        plan = [*(["baseline", *ENDPOINT_RUNS] * options.rounds), "library"]
        for name in plan:
            # Events are signed when made: each run gets its own, inside the five minutes.
            events = _in_order_of_occurrence(marketplace_events(options.users))
            seconds, extra = _measure(server, name, events, options.port)
            rates[name].append(len(events) / seconds)
            if name in ratios:
                ratios[name].append(rates[name][-1] / rates["baseline"][-1])
                cpu[name].append(extra["process_cpu_ms_per_event"])
            figures[f"{name}_last_run"] = extra
    figures["events"] = len(events)
    for name, measured in rates.items():
        figures[f"{name}_events_per_second"] = [round(rate, 1) for rate in measured]
    # Throughput ratios, each round's endpoint against its own baseline: the goal is >= 0.5.
    for name, measured in ratios.items():
        figures[f"{name}_throughput_vs_baseline"] = [round(ratio, 2) for ratio in measured]
        figures[f"{name}_throughput_vs_baseline_median"] = round(statistics.median(measured), 2)
        figures[f"{name}_cpu_ms_per_event"] = cpu[name]
    figures["load_average"] = os.getloadavg()
    report("webhooks", figures)


if __name__ == "__main__":
    main()
