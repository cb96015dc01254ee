"""A renewal in Stripe's 2025-03-31 shape counted once in revenue, whatever the order its events
arrive in: its `invoice.paid`, its InvoicePayment
(`invoice_payment.paid`, the only link from the payment to the invoice) and its
`payment_intent.succeeded`, which names no invoice.

The expected revenue is computed here from the amounts the events carry (an invoice's
`amount_paid` is recurring revenue, a Checkout's `amount_total` one-off, a charge's
`amount_refunded` a refund), not with the report's SQL."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from starlette.testclient import TestClient

from afilo_db.analytics.reports import REPORTS, DateRange
from tests.billing.conftest import Shop, post
from tests.billing.providers import checkout_session, invoice, invoice_payment
from tests.billing.test_handlers import ADA, CUSTOMER, SUB, owner_rows, signed_up
from tests.billing.test_invoice_payments import (
    PAYMENT,
    RENEWAL,
    answered,
    payment_succeeded,
    renewal_paid,
)
from tests.billing.test_stripe_rules import DAY, NOW, sub_delivery, sub_state

# The three reports of one renewal, in every order they can arrive in.
REPORTED = ("invoice.paid", "invoice_payment.paid", "payment_intent.succeeded")
ORDERS = list(itertools.permutations(REPORTED))


def renewal_events(number: int, amount: int, order: tuple[str, ...]) -> list[Any]:
    """Renewal `number` of `amount` cents, its events in `order` (each a second after the one
    before, as Stripe dates them)."""
    invoice_id, payment_id = f"in_links{number:08d}", f"pi_links{number:08d}"
    objects = {
        "invoice.paid": invoice(invoice_id, SUB, CUSTOMER, (NOW, NOW + 30 * DAY), amount),
        "invoice_payment.paid": invoice_payment(
            f"inpay_links{number:06d}", invoice_id, amount, payment_intent=payment_id
        ),
        "payment_intent.succeeded": {
            "id": payment_id, "object": "payment_intent", "amount_received": amount,
            "currency": "usd", "customer": CUSTOMER, "metadata": {},
        },
    }  # fmt: skip
    return [
        sub_delivery(f"evt_links{number:02d}{step}", event_type, 10 * number + step,
                     objects[event_type])
        for step, event_type in enumerate(order)
    ]  # fmt: skip


def delivered(client: TestClient, deliveries: list[Any]) -> None:
    """Each delivered as Stripe does: again after a 409, once what it waits for has arrived."""
    waiting = []
    for delivery in deliveries:
        status, body = post(client, delivery)
        assert status in (200, 409), body
        if status == 409:
            waiting.append(delivery)
    for delivery in waiting:
        assert post(client, delivery)[0] == 200


def revenue_totals(shop: Shop) -> dict[str, Decimal]:
    """The revenue report's one-off, recurring and refund totals over the last 60 days."""
    today = date.today()
    with psycopg.connect(shop.owner_url) as connection:
        table = REPORTS["revenue"].run(
            connection, DateRange(today - timedelta(days=60), today + timedelta(days=1))
        )
    return {
        column: sum((record[column] for record in table.records()), Decimal(0))
        for column in ("one_off", "recurring", "refunds")
    }


def cents(amount: int) -> Decimal:
    return Decimal(amount) / 100


def test_a_renewal_counts_once_in_revenue_whatever_the_order_of_its_events(
    client: TestClient, shop: Shop
) -> None:
    signed_up(client)
    created = sub_delivery("evt_links000000", "customer.subscription.created", 1,
                           sub_state("active"))  # fmt: skip
    assert post(client, created)[0] == 200
    # A Checkout sale beside them: its PaymentIntent (no invoice, no link) stays a one-off sale.
    sale = checkout_session("cs_links00000001", "pi_linkssale0001", ADA, CUSTOMER)
    sale_payment = {"id": "pi_linkssale0001", "object": "payment_intent", "currency": "usd",
                    "amount_received": sale["amount_total"], "customer": CUSTOMER,
                    "metadata": {}}  # fmt: skip
    delivered(client, [sub_delivery("evt_linkssale01", "checkout.session.completed", 2, sale),
                       sub_delivery("evt_linkssale02", "payment_intent.succeeded", 3,
                                    sale_payment)])  # fmt: skip
    amounts = [1900 + 100 * number for number in range(1, len(ORDERS) + 1)]
    for number, (amount, order) in enumerate(zip(amounts, ORDERS, strict=True), start=1):
        delivered(client, renewal_events(number, amount, order))
    assert revenue_totals(shop) == {
        "one_off": cents(sale["amount_total"]),
        "recurring": cents(sum(amounts)),
        "refunds": Decimal(0),
    }
    # Every renewal's payment is recorded against the subscription, by its link or by itself.
    linked = owner_rows(shop, "SELECT count(*) FROM user_activity_log"
                              " WHERE action = 'subscription.invoice_payment.paid'")  # fmt: skip
    assert linked == [(len(ORDERS),)]
    assert owner_rows(shop, "SELECT count(*) FROM purchases") == [(1,)]


def test_a_payment_is_found_by_its_link_whatever_the_customers_history(
    client: TestClient, shop: Shop
) -> None:
    # The link, not a search of the customer's stored events: an invoice stored under another
    # invoice's payments list links its payment too.
    listed = invoice_payment("inpay_links0000001", RENEWAL, 1900, payment_intent=PAYMENT)
    renewal_paid(client, payments={"object": "list", "data": [listed], "has_more": False})
    links = owner_rows(shop, "SELECT payment, invoice, subscription FROM stripe_invoice_payments")
    assert links == [(PAYMENT, RENEWAL, SUB)]
    assert answered(client, payment_succeeded()) == (200, "recorded")
