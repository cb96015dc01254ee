"""A renewal in Stripe's 2025-03-31 shape counted once in revenue and its refund attached to its
subscription, whatever the order its events arrive in: its `invoice.paid`, its InvoicePayment
(`invoice_payment.paid`, the only link from the payment to the invoice) and its
`payment_intent.succeeded`, which names no invoice.

The expected revenue is computed here from the amounts the events carry (an invoice's
`amount_paid` is recurring revenue, a Checkout's `amount_total` one-off, a charge's
`amount_refunded` a refund), not with the report's SQL."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from starlette.testclient import TestClient

from afilo_db.analytics.reports import REPORTS, DateRange
from afilo_db.billing.stripe_handlers import _PAID_SUBSCRIPTION_SQL
from afilo_db.migrate.revisions import deploy, downgrade
from tests.analytics.conftest import stripe_event
from tests.billing.conftest import Shop, post
from tests.billing.providers import checkout_session, invoice, invoice_payment
from tests.billing.test_handlers import ADA, CUSTOMER, SUB, owner_rows, signed_up
from tests.billing.test_invoice_payments import (
    CHARGE,
    PAYMENT,
    RENEWAL,
    answered,
    charge_refunded,
    invoice_payment_paid,
    payment_succeeded,
    recorded_against,
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


def revenue_totals(owner_url: str) -> dict[str, Decimal]:
    """The revenue report's one-off, recurring and refund totals over the last 60 days."""
    today = date.today()
    with psycopg.connect(owner_url) as connection:
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
    assert revenue_totals(shop.owner_url) == {
        "one_off": cents(sale["amount_total"]),
        "recurring": cents(sum(amounts)),
        "refunds": Decimal(0),
    }
    # Every renewal's payment is recorded against the subscription, by its link or by itself.
    linked = owner_rows(shop, "SELECT count(*) FROM user_activity_log"
                              " WHERE action = 'subscription.invoice_payment.paid'")  # fmt: skip
    assert linked == [(len(ORDERS),)]
    assert owner_rows(shop, "SELECT count(*) FROM purchases") == [(1,)]


def test_a_refund_between_a_payment_and_its_link_is_attached_when_the_link_arrives(
    client: TestClient, shop: Shop
) -> None:
    renewal_paid(client)
    assert answered(client, payment_succeeded(offset=3)) == (200, "ignored")
    # Nothing links the payment to an invoice yet: noted against no subscription.
    assert answered(client, charge_refunded()) == (200, "recorded")
    assert answered(client, invoice_payment_paid()) == (200, "recorded")
    refunds = [row for row in recorded_against(shop) if row[0] == "subscription.payment_refunded"]
    assert refunds == [("subscription.payment_refunded", "user_subscriptions", SUB)]
    details = owner_rows(shop, "SELECT details FROM user_activity_log"
                               " WHERE action = 'subscription.payment_refunded'")[0][0]  # fmt: skip
    assert details | {"refund_event": "evt_basil0000005", "charge": CHARGE,
                      "payment_intent": PAYMENT, "amount_refunded": 1900} == details  # fmt: skip
    # The payment's and the refund's events belong to the user now, as if they had come after.
    events = owner_rows(
        shop,
        "SELECT e.event_type, e.outcome, p.clerk_user_id, e.reason FROM webhook_events e"
        " LEFT JOIN user_profiles p ON p.id = e.user_id WHERE e.subject IN (%s, %s)"
        " ORDER BY e.event_type",
        PAYMENT, CHARGE,
    )  # fmt: skip
    assert [row[:3] for row in events] == [("charge.refunded", "recorded", ADA),
                                           ("payment_intent.succeeded", "recorded", ADA)]  # fmt: skip
    assert all(SUB in row[3] and "evt_basil0000003" in row[3] for row in events)
    # Once: the link delivered again is a duplicate and attaches nothing more.
    assert answered(client, invoice_payment_paid()) == (200, "duplicate")
    assert [row[0] for row in recorded_against(shop)].count("subscription.payment_refunded") == 1
    assert revenue_totals(shop.owner_url) == {"one_off": Decimal(0), "recurring": cents(1900),
                                    "refunds": cents(1900)}  # fmt: skip


def test_a_refund_of_a_charge_paid_invoice_before_its_link_is_attached_by_it(
    client: TestClient, shop: Shop
) -> None:
    renewal_paid(client)
    # A charge alone (no payment intent) that nothing links yet: not taken for anyone's.
    assert answered(client, charge_refunded(payment_intent=None)) == (200, "ignored")
    assert answered(client, invoice_payment_paid(charge=CHARGE)) == (200, "recorded")
    # Both noted by the link's event, in its transaction.
    assert sorted(row[0] for row in recorded_against(shop)) == [
        "subscription.invoice_payment.paid", "subscription.payment_refunded"]  # fmt: skip


def test_a_refund_deferred_before_its_payment_is_recorded_once_when_delivered_again(
    client: TestClient, shop: Shop
) -> None:
    renewal_paid(client)
    early = charge_refunded()
    assert answered(client, early) == (409, "deferred")
    assert answered(client, payment_succeeded(offset=3)) == (200, "ignored")
    # The link leaves the deferred refund to its own next delivery.
    assert answered(client, invoice_payment_paid()) == (200, "recorded")
    assert answered(client, early) == (200, "recorded")
    assert [row[0] for row in recorded_against(shop)].count("subscription.payment_refunded") == 1
    assert owner_rows(shop, "SELECT p.clerk_user_id FROM webhook_events e JOIN user_profiles p"
                            " ON p.id = e.user_id WHERE e.subject = %s", CHARGE) == [(ADA,)]  # fmt: skip


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


def invoiced_checkout_events(number: int, order: tuple[str, ...]) -> list[Any]:
    """Checkout `number`, made with an invoice (`invoice_creation`), its events in `order`: the
    session naming its invoice, the invoice (billing no subscription), its InvoicePayment and
    the payment intent (which, since 2025-03-31, names no invoice)."""
    key = f"{number:08d}"
    session = checkout_session(f"cs_invoiced{key}", f"pi_invoiced{key}", ADA, CUSTOMER)
    session["invoice"] = f"in_invoiced{key}"
    amount = session["amount_total"]
    objects = {
        "checkout.session.completed": session,
        "invoice.paid": {"id": f"in_invoiced{key}", "object": "invoice", "customer": CUSTOMER,
                         "amount_paid": amount, "currency": "usd", "parent": None},
        "invoice_payment.paid": invoice_payment(f"inpay_invoiced{key}", f"in_invoiced{key}",
                                                amount, payment_intent=f"pi_invoiced{key}"),
        "payment_intent.succeeded": {"id": f"pi_invoiced{key}", "object": "payment_intent",
                                     "amount_received": amount, "currency": "usd",
                                     "customer": CUSTOMER, "metadata": {}},
    }  # fmt: skip
    return [
        sub_delivery(f"evt_invoiced{number:02d}{step}", event_type, 10 * number + step,
                     objects[event_type])
        for step, event_type in enumerate(order)
    ]  # fmt: skip


def test_a_checkout_that_made_an_invoice_counts_once_as_a_one_off_sale(
    client: TestClient, shop: Shop
) -> None:
    signed_up(client)
    kinds = ("checkout.session.completed", "invoice.paid", "invoice_payment.paid",
             "payment_intent.succeeded")  # fmt: skip
    orders = list(itertools.permutations(kinds))
    for number, order in enumerate(orders, start=1):
        delivered(client, invoiced_checkout_events(number, order))
    sale = checkout_session("cs_invoiced00000000", "pi_invoiced00000000", ADA, CUSTOMER)
    assert revenue_totals(shop.owner_url) == {
        "one_off": cents(len(orders) * sale["amount_total"]),
        "recurring": Decimal(0),
        "refunds": Decimal(0),
    }
    assert owner_rows(shop, "SELECT count(*) FROM purchases WHERE status = 'paid'") == [
        (len(orders),)]  # fmt: skip


def test_the_revision_counts_the_events_stored_before_it_once(database_url: str) -> None:
    downgrade(database_url, "0021_renewals_counted_once")
    when = datetime.now(UTC) - timedelta(days=1)
    renewal = {
        "id": "in_stored0000001",
        "object": "invoice",
        "amount_paid": 1900,
        "currency": "usd",
        "parent": {"subscription_details": {"subscription": SUB}},
    }
    sale = checkout_session("cs_stored0000001", "pi_stored0000002", ADA, CUSTOMER)
    sale["invoice"] = "in_stored0000002"
    stored = [
        ("invoice.paid", renewal),
        ("payment_intent.succeeded", {"id": "pi_stored0000001", "object": "payment_intent",
                                      "amount_received": 1900, "currency": "usd"}),
        ("invoice_payment.paid", invoice_payment("inpay_stored00001", "in_stored0000001", 1900,
                                                 payment_intent="pi_stored0000001")),
        ("checkout.session.completed", sale),
        ("invoice.paid", {"id": "in_stored0000002", "object": "invoice", "currency": "usd",
                          "amount_paid": sale["amount_total"], "parent": None}),
    ]  # fmt: skip
    with psycopg.connect(database_url) as owner:
        for number, (event_type, obj) in enumerate(stored):
            stripe_event(owner, f"evt_stored{number:07d}", event_type, when, obj)
    deploy(database_url)
    assert revenue_totals(database_url) == {
        "one_off": cents(sale["amount_total"]),
        "recurring": cents(1900),
        "refunds": Decimal(0),
    }


def test_a_payments_link_is_read_by_its_index(database_url: str) -> None:
    # Whatever the number of stored events or links: a scan is not even considered.
    with psycopg.connect(database_url) as owner:
        owner.execute("SET enable_seqscan = off")
        plan = owner.execute(
            "EXPLAIN (FORMAT JSON) " + _PAID_SUBSCRIPTION_SQL, {"payments": [PAYMENT]}
        ).fetchone()
    assert plan is not None
    scans = [node for node in _plan_nodes(plan[0][0]["Plan"]) if "Index Name" in node]
    assert [(node["Index Name"], "(payment = ANY" in node.get("Index Cond", "")) for node in scans
            ] == [("pk_stripe_invoice_payments", True)]  # fmt: skip


def _plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(found for child in node.get("Plans", []) for found in _plan_nodes(child))]
