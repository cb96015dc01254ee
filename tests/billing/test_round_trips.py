"""How many times applying an event waits for the server: a statement whose result the handler
does not read (a lock, an UPDATE) goes with the next one it reads, in one round trip. Counted
from libpq's own trace of the messages the client sends."""

from __future__ import annotations

import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg._pipeline_base
import psycopg.generators
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from afilo_db.billing import verify_clerk, verify_stripe
from afilo_db.billing.delivery import Delivery, driver_connection
from afilo_db.billing.events import APPLIED, Outcome, ProviderEvent, Result
from afilo_db.billing.ingest import HANDLERS, apply
from afilo_db.db.engine import PER_TRANSACTION_TIMEOUT_MS, create_app_engine
from afilo_db.errors import ValidationError
from afilo_db.security import service_context
from tests.billing.conftest import Shop
from tests.billing.providers import (
    CLERK_SECRET,
    STRIPE_SECRET,
    checkout_session,
    clerk_delivery,
    clerk_user,
    invoice,
    invoice_payment,
    stripe_delivery,
    subscription,
)
from tests.billing.providers import Delivery as Sent

NOW = int(time.time())
ADA = "user_ada000000001"
SUB = "sub_ada000000001"
CUSTOMER = "cus_ada000000001"
_SENT = re.compile(r"^F\t\d+\t(\w+)", re.MULTILINE)


def _waits(trace: str) -> int:
    """The points where the client waits for the server's answers: a Sync (the end of a
    statement, or of a pipeline), a simple Query, a Flush that follows no Sync (a result read
    inside a pipeline)."""
    sent = _SENT.findall(trace)
    return sum(
        message in ("Sync", "Query") or (message == "Flush" and sent[i - 1 : i] != ["Sync"])
        for i, message in enumerate(sent)
    )


@contextmanager
def counted_round_trips(connection: psycopg.Connection[object]) -> Iterator[list[int]]:
    """The round trips `connection` makes in the block (the list's one item, set at its end)."""
    counted: list[int] = []
    with tempfile.TemporaryFile("w+") as trace:
        connection.pgconn.trace(trace.fileno())
        connection.pgconn.set_trace_flags(
            psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE
        )
        try:
            yield counted
        finally:
            connection.pgconn.untrace()
        trace.seek(0, os.SEEK_SET)
        counted.append(_waits(trace.read()))


def verified(sent: Sent) -> ProviderEvent:
    if sent.provider == "stripe":
        return verify_stripe(sent.body, sent.headers["Stripe-Signature"], STRIPE_SECRET)
    return verify_clerk(sent.body, sent.headers, CLERK_SECRET)


def round_trips(engine: Engine, sent: Sent) -> int:
    """The round trips the endpoint's `apply` of `sent` takes, its COMMIT included."""
    pooled = engine.raw_connection()
    connection = pooled.driver_connection
    assert isinstance(connection, psycopg.Connection)
    pooled.close()  # back to the pool, where `apply` takes it again (the only one open)
    with counted_round_trips(connection) as counted:
        apply(engine, verified(sent))
    return counted[0]


def subscription_event(number: int, event_type: str, status: str) -> Sent:
    obj = subscription(SUB, ADA, status, "professional", NOW - 86400, NOW + 86400 * 29,
                       customer=CUSTOMER)  # fmt: skip
    return stripe_delivery(f"evt_ada{number:010d}", event_type, NOW - 100 + number, obj)


def test_an_events_statements_go_in_as_few_round_trips_as_it_reads(
    service_engine: Engine,
) -> None:
    signed_up = clerk_delivery("msg_ada000000001", "user.created", NOW * 1000,
                               clerk_user(ADA, "ada@example.com", NOW * 1000))  # fmt: skip
    # BEGIN with the service context, the event's row and the user's lock with the check for
    # a deletion; the profile; the outcome and audit with COMMIT.
    assert round_trips(service_engine, signed_up) == 3
    # ... the event's row with the user's lock and the subscription's; the customer's id, the
    # current state's flag, the new state and the tier, each logging what it wrote, with the
    # outcome and COMMIT.
    created = subscription_event(1, "customer.subscription.created", "trialing")
    assert round_trips(service_engine, created) == 2
    updated = subscription_event(2, "customer.subscription.updated", "active")
    assert round_trips(service_engine, updated) == 2
    # ... the event's row with the payment's lock, the user's and the variant its price sells;
    # the purchase; the outcome and audit with COMMIT.
    bought = stripe_delivery("evt_adacheckout01", "checkout.session.completed", NOW,
                             checkout_session("cs_test_a1ada_01", "pi_adacheckout01", ADA,
                                              CUSTOMER))  # fmt: skip
    assert round_trips(service_engine, bought) == 3


def renewal(number: int) -> tuple[Sent, Sent, Sent]:
    """A renewal in the 2025-03-31 shape: its invoice paid, its InvoicePayment, its payment
    (which names no invoice)."""
    invoice_id, payment_id = f"in_ada{number:010d}", f"pi_ada{number:010d}"
    paid = invoice(invoice_id, SUB, CUSTOMER, (NOW, NOW + 86400 * 30), 1900)
    linked = invoice_payment(f"inpay_ada{number:010d}", invoice_id, 1900, payment_intent=payment_id)
    payment = {"id": payment_id, "object": "payment_intent", "amount_received": 1900,
               "currency": "usd", "customer": CUSTOMER, "metadata": {}}  # fmt: skip
    return (
        stripe_delivery(f"evt_adainv{number:07d}", "invoice.paid", NOW - 90 + number, paid),
        stripe_delivery(f"evt_adainp{number:07d}", "invoice_payment.paid", NOW - 90 + number, linked),
        stripe_delivery(f"evt_adapi{number:08d}", "payment_intent.succeeded", NOW - 90 + number,
                        payment),
    )  # fmt: skip


def test_a_renewal_paid_in_the_2025_03_31_shape_takes_a_round_trip_per_read(
    service_engine: Engine,
) -> None:
    signed_up = clerk_delivery("msg_ada000000001", "user.created", NOW * 1000,
                               clerk_user(ADA, "ada@example.com", NOW * 1000))  # fmt: skip
    apply(service_engine, verified(signed_up))
    apply(
        service_engine, verified(subscription_event(1, "customer.subscription.created", "active"))
    )
    # The first renewal's statements are prepared as they recur (a round trip each, once).
    for event in renewal(1):
        apply(service_engine, verified(event))
    paid, linked, succeeded = renewal(2)
    apply(service_engine, verified(paid))
    # BEGIN with the event's row and the invoice's stored event; the user's lock; the outcome
    # and audit with COMMIT.
    assert round_trips(service_engine, linked) == 3
    # BEGIN with the event's row, the payment's lock and its purchase; the invoice that names
    # the payment; the user's lock; the outcome and audit with COMMIT.
    assert round_trips(service_engine, succeeded) == 4


def test_a_round_trips_statements_are_handed_to_libpq_together(
    service_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psycopg's pipeline sends each statement as it is executed (a poll and a write each);
    `run_together` queues them all first, so that psycopg communicates once a round trip,
    with nothing left to send but the sync."""
    signed_up = clerk_delivery("msg_ada000000001", "user.created", NOW * 1000,
                               clerk_user(ADA, "ada@example.com", NOW * 1000))  # fmt: skip
    apply(service_engine, verified(signed_up))
    communicated: list[list[Any]] = []
    communicate = psycopg.generators.pipeline_communicate

    def spy(pgconn: psycopg.pq.abc.PGconn, commands: Any) -> Any:
        communicated.append(list(commands))
        return communicate(pgconn, commands)

    monkeypatch.setattr(psycopg._pipeline_base, "pipeline_communicate", spy)
    created = subscription_event(1, "customer.subscription.created", "trialing")
    assert round_trips(service_engine, created) == 2
    # Two round trips of several statements each: two syncs, and nothing sent on its own.
    assert len(communicated) == 2
    assert all(len(commands) == 1 for commands in communicated)
    assert all(commands[0].__name__ == "pipeline_sync" for commands in communicated)


def test_a_held_statement_is_sent_with_the_next_read_and_its_error_named_then(
    service_engine: Engine,
) -> None:
    event = verified(clerk_delivery("msg_held00000001", "user.created", NOW * 1000,
                                    clerk_user(ADA, "ada@example.com", NOW * 1000)))  # fmt: skip
    with Session(service_engine) as session, session.begin():
        service_context(session)
        connection = driver_connection(session)
        delivery = Delivery(connection, event, row_id=uuid.uuid4())
        with counted_round_trips(connection) as held:
            delivery.execute("SELECT pg_advisory_xact_lock(42)")
            delivery.execute(
                "INSERT INTO user_profiles (clerk_user_id, email) VALUES (%(clerk)s, %(email)s)",
                {"clerk": "not a clerk id", "email": "ada@example.com"},
            )
        assert held == [0]
        with counted_round_trips(connection) as read, pytest.raises(ValidationError) as error:
            delivery.value("SELECT 1")
        assert read == [1]
        assert "clerk_user_id" in str(error.value)


def test_behind_a_pooler_the_statement_timeout_goes_in_the_first_round_trip(shop: Shop) -> None:
    # Behind a transaction-mode pooler the timeout is set per transaction (db/engine.py): the
    # endpoint, which takes its connection without a Session, must send it too, at no cost.
    engine = create_app_engine(shop.service_url, pooled=True)
    try:
        timeout_ms = PER_TRANSACTION_TIMEOUT_MS[engine]
        pooled = engine.raw_connection()
        connection = pooled.driver_connection
        assert isinstance(connection, psycopg.Connection)
        pooled.close()
        with tempfile.TemporaryFile("w+") as trace:
            connection.pgconn.trace(trace.fileno())
            connection.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
            try:
                apply(engine, verified(clerk_delivery(
                    "msg_pooled000001", "user.created", NOW * 1000,
                    clerk_user(ADA, "ada@example.com", NOW * 1000),
                )))  # fmt: skip
            finally:
                connection.pgconn.untrace()
            trace.seek(0, os.SEEK_SET)
            sent = trace.read()
    finally:
        engine.dispose()
    assert f"'{timeout_ms}'" in sent and "statement_timeout" in sent
    assert _waits(sent) == 3
    # Given back to the pool as the pool's others are: out of autocommit.
    assert not connection.autocommit


def test_a_replay_ends_with_its_stored_event_and_applies_nothing_of_its_first_round_trip(
    service_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event's store goes with the handler's first read: a replay finds the event stored
    in that round trip, and whatever the handler held for it is rolled back, not committed."""

    def counts_then_reads(delivery: Delivery) -> Result:
        delivery.execute(
            "INSERT INTO webhook_refusals (provider, status, reason)"
            " VALUES ('stripe', 400, 'counted by the handler') ON CONFLICT (provider, status,"
            " reason) DO UPDATE SET deliveries = webhook_refusals.deliveries + 1"
        )
        delivery.value("SELECT 1")
        return APPLIED

    monkeypatch.setitem(HANDLERS, ("stripe", "test.counted"), counts_then_reads)
    sent = stripe_delivery("evt_replayed00001", "test.counted", NOW, {"id": "x", "object": "x"})
    assert apply(service_engine, verified(sent)).outcome == Outcome.APPLIED
    pooled = service_engine.raw_connection()
    connection = pooled.driver_connection
    assert isinstance(connection, psycopg.Connection)
    pooled.close()
    with counted_round_trips(connection) as replayed:
        assert apply(service_engine, verified(sent)).outcome == Outcome.DUPLICATE
    # The store with the handler's read, then the ROLLBACK.
    assert replayed == [2]
    with service_engine.connect() as check:
        service_context(check)
        counted = check.execute(
            text("SELECT deliveries FROM webhook_refusals WHERE reason = 'counted by the handler'")
        ).scalar_one()
        attempts = check.execute(
            text("SELECT attempts FROM webhook_events WHERE event_id = 'evt_replayed00001'")
        ).scalar_one()
    assert (counted, attempts) == (1, 1)
