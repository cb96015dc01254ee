"""A renewal's payment in Stripe's 2025-03-31 shape: the cost of finding the subscription it paid.

Since API 2025-03-31 a renewal's `payment_intent.succeeded` names no invoice; its InvoicePayment
(`invoice_payment.paid`) is the link. One customer with `--renewals` renewals stored (each an
`invoice.paid` and an `invoice_payment.paid`, applied through `ingest.apply` as the endpoint
applies them), then, interleaved so that a shared machine's load moves them alike:

- handler: `ingest.apply` of a new `payment_intent.succeeded` that names its invoice (the shape
  before 2025-03-31), of one found by its link (payments of renewals spread over the history,
  oldest to newest), and of one nothing links (answered `ignored`);
- invoice events: a new renewal's `invoice.paid` and `invoice_payment.paid` applied with the
  trigger that writes the links (revision 0022) enabled and disabled, alternately;
- lookup: the lookup statement alone, as the superuser, for a linked payment and an unlinked one:
  `stripe_invoice_payments` by the payment's id (revision 0022), against the search it replaced
  (`BEFORE_SQL`: the customer's stored invoice events read newest first until one names the
  payment anywhere in its object, as commit e649beb left it).

`python -m bench.invoice_payments [--renewals N] [--samples S]`. Results go to
bench/results/invoice_payments.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import psycopg
from sqlalchemy import Engine
from tests.billing.providers import (
    CLERK_SECRET,
    STRIPE_SECRET,
    Delivery,
    clerk_delivery,
    clerk_user,
    invoice,
    invoice_payment,
    stock_catalog,
    stripe_delivery,
    subscription,
)

from afilo_db.billing import verify_clerk, verify_stripe
from afilo_db.billing.events import ProviderEvent
from afilo_db.billing.ingest import apply
from afilo_db.billing.stripe_handlers import _PAID_SUBSCRIPTION_SQL
from afilo_db.db.engine import create_app_engine
from afilo_db.db.urls import libpq_url
from afilo_db.security.roles import SERVICE_ROLE, login_password_sql
from bench.common import fresh_database, report, scratch_server

LINK_TRIGGER = "webhook_events_link_invoice_payments"
USER, CUSTOMER, SUB = "user_bench0000001", "cus_bench0000001", "sub_bench0000001"
DAY = 86400

# The lookup before revision 0022 (stripe_handlers._PAID_INVOICE_SQL at commit e649beb), kept
# here as the baseline the link table is measured against.
BEFORE_SQL = """
WITH naming AS (
  SELECT CAST(newest.payload AS jsonb) -> 'data' -> 'object' AS obj FROM (
    SELECT e.payload FROM webhook_events e
    WHERE e.provider = 'stripe' AND e.event_type LIKE 'invoice%%'
      AND e.user_id IN (SELECT id FROM user_profiles WHERE stripe_customer_id = %(customer)s)
    ORDER BY e.occurred_at DESC OFFSET 0) newest
  WHERE jsonb_path_query_array(CAST(newest.payload AS jsonb) -> 'data' -> 'object', 'strict $.**')
        ?| CAST(%(payments)s AS text[])
  LIMIT 1
)
SELECT coalesce((
  SELECT CAST(i.payload AS jsonb) -> 'data' -> 'object' FROM webhook_events i, naming
  WHERE i.provider = 'stripe' AND i.subject = naming.obj ->> 'invoice'
  ORDER BY i.occurred_at DESC LIMIT 1), (SELECT obj FROM naming))
"""


def verified(sent: Delivery) -> ProviderEvent:
    if sent.provider == "stripe":
        return verify_stripe(sent.body, sent.headers["Stripe-Signature"], STRIPE_SECRET)
    return verify_clerk(sent.body, sent.headers, CLERK_SECRET)


def renewal(number: int, start: int) -> tuple[Delivery, Delivery]:
    """Renewal `number`'s invoice.paid and invoice_payment.paid."""
    invoice_id, payment_id = f"in_bench{number:08d}", f"pi_bench{number:08d}"
    at = start + number * 30 * DAY
    paid = invoice(invoice_id, SUB, CUSTOMER, (at, at + 30 * DAY), 1900)
    linked = invoice_payment(
        f"inpay_bench{number:06d}", invoice_id, 1900, payment_intent=payment_id
    )
    return (
        stripe_delivery(f"evt_benchinv{number:06d}", "invoice.paid", at, paid),
        stripe_delivery(f"evt_benchinp{number:06d}", "invoice_payment.paid", at + 1, linked),
    )


def payment(payment_id: str, event_id: str, at: int, **extra: Any) -> Delivery:
    obj = {"id": payment_id, "object": "payment_intent", "amount_received": 1900,
           "currency": "usd", "customer": CUSTOMER, "metadata": {}, **extra}  # fmt: skip
    return stripe_delivery(event_id, "payment_intent.succeeded", at, obj)


def milliseconds(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p90_ms": round(ordered[max(0, int(len(ordered) * 0.9) - 1)] * 1000, 2),
    }


def first_row(connection: psycopg.Connection[Any], sql: str, values: dict[str, Any]) -> Any:
    return connection.execute(sql, values).fetchone()


def apply_all(engine: Engine, events: list[ProviderEvent]) -> None:
    for event in events:
        apply(engine, event)


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--renewals", type=int, default=120)
    parser.add_argument("--samples", type=int, default=40)
    options = parser.parse_args()
    renewals, samples = options.renewals, options.samples
    start = int(time.time()) - (renewals + 2) * 30 * DAY
    handler: dict[str, list[float]] = {"names_its_invoice": [], "linked": [], "not_linked": []}
    trigger: dict[str, list[float]] = {"trigger_on": [], "trigger_off": []}
    lookup: dict[str, list[float]] = {
        "before_linked": [],
        "after_linked": [],
        "before_not_linked": [],
        "after_not_linked": [],
    }
    with scratch_server("invoice-payments") as server:
        url = fresh_database(server, "bench_invoice_payments")
        stock_catalog(url)
        with psycopg.connect(server.url("postgres"), autocommit=True) as admin:
            password = server.role_password(SERVICE_ROLE)
            admin.execute(login_password_sql(admin, password, SERVICE_ROLE))
        engine = create_app_engine(
            libpq_url(server.role_url(SERVICE_ROLE, "bench_invoice_payments"))
        )
        try:
            signed_up = clerk_delivery("msg_bench0000001", "user.created", start * 1000,
                                       clerk_user(USER, "bench@example.com", start * 1000))  # fmt: skip
            apply(engine, verified(signed_up))
            created = subscription(SUB, USER, "active", "professional", start,
                                   start + 30 * DAY, customer=CUSTOMER)  # fmt: skip
            apply(engine, verified(stripe_delivery("evt_benchsub0001",
                                                   "customer.subscription.created", start,
                                                   created)))  # fmt: skip
            for number in range(renewals):
                for sent in renewal(number, start):
                    apply(engine, verified(sent))
            now = int(time.time())
            with psycopg.connect(url) as owner:
                for sample in range(samples):
                    # Payments of renewals spread over the history, the oldest first.
                    linked = f"pi_bench{sample * (renewals - 1) // max(1, samples - 1):08d}"
                    unlinked = f"pi_benchnone{sample:06d}"
                    invoice_id = f"in_bench{sample % renewals:08d}"
                    runs = {
                        "names_its_invoice": payment(f"pi_benchnamed{sample:05d}",
                                                     f"evt_benchnamed{sample:05d}", now,
                                                     invoice=invoice_id),
                        "linked": payment(linked, f"evt_benchlinked{sample:05d}", now),
                        "not_linked": payment(unlinked, f"evt_benchnone{sample:05d}", now),
                    }  # fmt: skip
                    for name, sent in runs.items():
                        event = verified(sent)
                        handler[name].append(timed(partial(apply, engine, event)))
                    for shape, payment_id in (("linked", linked), ("not_linked", unlinked)):
                        values = {"customer": CUSTOMER, "payments": [payment_id]}
                        for when, sql in (
                            ("before", BEFORE_SQL),
                            ("after", _PAID_SUBSCRIPTION_SQL),
                        ):
                            lookup[f"{when}_{shape}"].append(
                                timed(partial(first_row, owner, sql, values))
                            )
                    owner.rollback()
                    # A new renewal's two invoice events, with and without the link trigger.
                    for offset, enabled in enumerate((True, False)):
                        toggle = "ENABLE" if enabled else "DISABLE"
                        owner.execute(f"ALTER TABLE webhook_events {toggle} TRIGGER {LINK_TRIGGER}")
                        owner.commit()
                        events = [
                            verified(sent)
                            for sent in renewal(renewals + 2 * sample + offset, start)
                        ]
                        trigger[f"trigger_{'on' if enabled else 'off'}"].append(
                            timed(partial(apply_all, engine, events))
                        )
                owner.execute(f"ALTER TABLE webhook_events ENABLE TRIGGER {LINK_TRIGGER}")
                owner.commit()
        finally:
            engine.dispose()
    with open("/proc/loadavg") as loadavg:
        load = loadavg.read().split()[:3]
    report(
        "invoice_payments",
        {
            "renewals": renewals,
            "samples": samples,
            "load_average": load,
            "handler": {name: milliseconds(found) for name, found in handler.items()},
            "lookup": {name: milliseconds(found) for name, found in lookup.items()},
            "invoice_and_invoice_payment": {
                name: milliseconds(found) for name, found in trigger.items()
            },
        },
    )


if __name__ == "__main__":
    main()
