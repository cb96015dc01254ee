"""200 events of 20 users, posted concurrently to the real endpoint (uvicorn on a loopback port)
in shuffled order with duplicates, retried as the providers retry (anything but 2xx), end in the
same table contents as the same events applied once, in order."""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import psycopg
from sqlalchemy import Engine, event
from starlette.testclient import TestClient

from afilo_db.billing.endpoint import create_webhook_app
from afilo_db.db.embedded import EmbeddedServer
from afilo_db.db.engine import create_app_engine
from tests.billing.conftest import SECRETS, Shop, open_shop, post
from tests.billing.providers import (
    CLERK_SECRET,
    STRIPE_SECRET,
    deliver_all,
    marketplace_events,
    socket_sender,
)
from tests.conftest import create_database, drop_database

# Every table the events write, as natural keys and values (generated ids and times left out).
CONTENTS = {
    "user_profiles": "SELECT clerk_user_id, email, display_name, subscription_tier,"
    " stripe_customer_id, state_event_id, state_as_of FROM user_profiles",
    "user_subscriptions": "SELECT u.clerk_user_id, s.stripe_subscription_id, s.stripe_price_id,"
    " s.tier, s.status, s.amount, s.currency, s.current_period_start, s.current_period_end,"
    " s.cancel_at_period_end, s.canceled_at, s.is_current, s.state_event_id, s.state_as_of"
    " FROM user_subscriptions s JOIN user_profiles u ON u.id = s.user_id",
    "purchases": "SELECT u.clerk_user_id, p.handle, pu.quantity, pu.amount, pu.currency,"
    " pu.status, pu.stripe_payment_intent_id, pu.stripe_checkout_session_id, pu.state_event_id,"
    " pu.state_as_of FROM purchases pu JOIN user_profiles u ON u.id = pu.user_id"
    " JOIN products p ON p.id = pu.product_id",
    "webhook_events": "SELECT e.provider, e.event_id, e.event_type, e.subject, e.payload,"
    " e.occurred_at, e.outcome, u.clerk_user_id FROM webhook_events e"
    " LEFT JOIN user_profiles u ON u.id = e.user_id",
}


def contents(owner_url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(owner_url) as owner:
        return {
            table: sorted((tuple(row) for row in owner.execute(query).fetchall()), key=repr)
            for table, query in CONTENTS.items()
        }


def test_shuffled_concurrent_duplicated_deliveries_end_like_the_ordered_run(
    served: str,
    shop: Shop,
    server: EmbeddedServer,
    template_database: str,
    app_password: str,
    service_password: str,
) -> None:
    events = marketplace_events(20)
    assert len(events) == 200

    shuffled = events + random.sample(events, 40)
    random.shuffle(shuffled)
    assert deliver_all(served, shuffled) >= 240
    concurrent = contents(shop.owner_url)

    name = f"ordered_{id(shop)}"
    ordered_url = create_database(server, name, template=template_database)
    try:
        ordered = open_shop(ordered_url, app_password, service_password)
        engine = create_app_engine(ordered.service_url)
        with TestClient(create_webhook_app(engine, SECRETS)) as in_order:
            for delivery in events:
                status, body = post(in_order, delivery)
                # Invoices are recorded against their subscription; everything else applied.
                expected_outcome = (
                    "recorded" if '"invoice"' in delivery.body.decode() else "applied"
                )
                assert (status, body["status"]) == (200, expected_outcome), (
                    delivery.event_id,
                    body,
                )
        engine.dispose()
        expected = contents(ordered_url)
    finally:
        drop_database(server, name)

    assert {table: len(rows) for table, rows in expected.items()} == {
        "user_profiles": 20, "user_subscriptions": 80, "purchases": 20, "webhook_events": 200}  # fmt: skip
    for table in CONTENTS:
        assert concurrent[table] == expected[table], table


def test_a_burst_of_deliveries_uses_no_more_connections_than_the_pool_keeps(
    shop: Shop, service_engine: Engine, served: str
) -> None:
    # More senders than the pool keeps connections: beyond the pool's size each delivery would
    # open an overflow connection (a login) that the pool closes again when it comes back.
    opened = itertools.count()
    event.listen(service_engine, "connect", lambda *_: next(opened))
    pool_size = service_engine.pool.size()  # type: ignore[attr-defined]
    # Step by step (the ids end with the step), the users interleaved, as they happened.
    events = sorted(marketplace_events(6, tag="b"), key=lambda delivery: delivery.event_id[-3:])
    deliver_all(served, events, workers=pool_size + 3)
    assert next(opened) <= pool_size
    with psycopg.connect(shop.owner_url) as owner:
        stored = owner.execute("SELECT count(*) FROM webhook_events").fetchone()
    assert stored == (len(events),)


def _worker_processes(pid: int) -> set[int]:
    """The processes `pid` started with multiprocessing's spawn (not its resource tracker)."""
    workers = set()
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):  # ended while listed
            # The fields after the command's closing parenthesis: state, then the parent's pid.
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == pid and b"spawn_main" in (entry / "cmdline").read_bytes():
                workers.add(int(entry.name))
    return workers


@contextlib.contextmanager
def _served_by_the_command(shop: Shop, workers: int) -> Iterator[tuple[str, Stopped]]:
    """`afilo-db webhooks serve --workers N` on a free port, until the port answers; stopped
    after by Ctrl-C (SIGINT), its exit code and stderr then given in `Stopped`."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {**os.environ, "DATABASE_URL": shop.owner_url,
                   "SERVICE_DATABASE_URL": shop.service_url,
                   "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET, "CLERK_WEBHOOK_SECRET": CLERK_SECRET}  # fmt: skip
    served = subprocess.Popen(
        [sys.executable, "-m", "afilo_db", "webhooks", "serve", "--port", str(port),
         "--workers", str(workers)],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    stopped = Stopped(served.pid)
    try:
        # Starting is importing the command and then, in each worker, the app: seconds on a
        # quiet machine, minutes on one loaded several times over.
        deadline = time.monotonic() + 240
        while True:  # until the port takes connections: the first worker to start listens
            with contextlib.suppress(httpx2.TransportError):
                if httpx2.get(f"http://127.0.0.1:{port}/webhooks/stripe").status_code == 405:
                    break
            assert served.poll() is None, served.communicate()
            assert time.monotonic() < deadline, "not listening"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", stopped
    finally:
        served.send_signal(signal.SIGINT)
        _, stopped.logged = served.communicate(timeout=30)
        stopped.exit_code = served.returncode


@dataclass
class Stopped:
    pid: int
    exit_code: int | None = None
    logged: str = ""


# A delivery's line, after the logging time: "stripe evt_... customer.subscription.created:
# 200 applied in 3.1 ms", with several processes after the pid of the one that served it.
_DELIVERY_LINE = re.compile(r"^\S+ \S+ (\[(?P<pid>\d+)\] )?(?P<event>\w+ \S+) \S+: \d{3} ")


def _delivery_lines(logged: str) -> dict[str, str | None]:
    """The event ids of the logged deliveries (provider and id) and the pid each names."""
    found = (_DELIVERY_LINE.match(line) for line in logged.splitlines())
    return {match["event"]: match["pid"] for match in found if match}


def test_one_server_process_logs_each_delivery_and_ctrl_c_ends_in_0(shop: Shop) -> None:
    events = marketplace_events(1, tag="o")[:3]
    with _served_by_the_command(shop, workers=1) as (url, stopped):
        deliver_all(url, events, workers=1, sender=socket_sender)
    assert stopped.exit_code == 0, stopped.logged
    logged = _delivery_lines(stopped.logged)
    # One process: no pid in its lines.
    assert logged == {f"{d.provider} {d.event_id}": None for d in events}, stopped.logged


def test_two_server_processes_apply_each_delivery_once(shop: Shop) -> None:
    """`webhooks serve --workers 2`: two processes share the port, each with a pool of its own;
    concurrent deliveries, each delivered twice at once, end as on one, and stopping it stops
    both."""
    with _served_by_the_command(shop, workers=2) as (url, stopped):
        # The first process to start answers while, on a loaded machine, the second may still
        # be starting.
        deadline = time.monotonic() + 60
        while len(workers := _worker_processes(stopped.pid)) < 2:
            assert time.monotonic() < deadline, f"worker processes: {workers}"
            time.sleep(0.1)
        assert len(workers) == 2
        # Step by step, the users interleaved, each event posted twice at once: the two copies
        # go out on two senders' connections, which the kernel hands to either process.
        events = sorted(marketplace_events(6, tag="w"), key=lambda delivery: delivery.event_id[-3:])
        twice = [delivery for delivery in events for _ in range(2)]
        deliver_all(url, twice, sender=socket_sender)
    # Ctrl-C ends it as it ends one process: 0.
    assert stopped.exit_code == 0, stopped.logged

    assert not any(Path(f"/proc/{worker}").exists() for worker in workers)
    stored = contents(shop.owner_url)
    assert {table: len(rows) for table, rows in stored.items()} == {
        "user_profiles": 6, "user_subscriptions": 24, "purchases": 6, "webhook_events": 60}  # fmt: skip
    # Every process logs its deliveries, one line each, naming itself by its pid.
    logged = _delivery_lines(stopped.logged)
    assert logged.keys() == {f"{d.provider} {d.event_id}" for d in events}, stopped.logged
    assert {int(pid) for pid in logged.values() if pid} <= workers
    assert None not in logged.values()
