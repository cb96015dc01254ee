"""Subscription payments and refunds in the shape of Stripe's API since 2025-03-31 ("basil"),
where neither a PaymentIntent nor a Charge names its invoice any more: an InvoicePayment
(`invoice_payment.paid`, or an invoice's `payments`) links a payment to its invoice, and through
it the payment and its refund are recorded against the subscription."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from afilo_db import rules
from tests.billing.conftest import Shop, parked_problems, post
from tests.billing.providers import invoice, invoice_payment, stripe_delivery
from tests.billing.test_handlers import ADA, CUSTOMER, SUB, owner_rows, signed_up
from tests.billing.test_stripe_rules import DAY, NOW, at, outcome, sub_delivery, sub_state

RENEWAL = "in_basil00000001"
PAYMENT = "pi_3RJz2bLkdIwHu7ix1Basil01"
CHARGE = "ch_3RJz2bLkdIwHu7ix1Basil01"


def renewal_paid(client: TestClient, invoice_id: str = RENEWAL, **extra: Any) -> None:
    """A subscription and its renewal invoice paid, in the 2025-03-31 shape (no payment_intent
    or charge on the invoice)."""
    signed_up(client)
    created = sub_delivery("evt_basil0000001", "customer.subscription.created", 1,
                           sub_state("active"))  # fmt: skip
    assert post(client, created)[0] == 200
    paid = {**invoice(invoice_id, SUB, CUSTOMER, (NOW, NOW + 30 * DAY), 1900), **extra}
    assert post(client, sub_delivery("evt_basil0000002", "invoice.paid", 2, paid))[0] == 200


def payment_succeeded(event_id: str = "evt_basil0000004", offset: int = 4) -> Any:
    """A renewal's PaymentIntent as the 2025-03-31 API sends it: no `invoice`, no metadata."""
    paid = {"id": PAYMENT, "object": "payment_intent", "amount_received": 1900,
            "currency": "usd", "customer": CUSTOMER, "latest_charge": CHARGE,
            "description": "Subscription update", "metadata": {}}  # fmt: skip
    return sub_delivery(event_id, "payment_intent.succeeded", offset, paid)


def charge_refunded(payment_intent: str | None = PAYMENT) -> Any:
    """A refund of the renewal's charge as the 2025-03-31 API sends it: no `invoice`."""
    refunded = {"id": CHARGE, "object": "charge", "amount": 1900, "amount_refunded": 1900,
                "currency": "usd", "customer": CUSTOMER, "payment_intent": payment_intent,
                "refunded": True, "metadata": {}}  # fmt: skip
    return sub_delivery("evt_basil0000005", "charge.refunded", 5, refunded)


def invoice_payment_paid(event_id: str = "evt_basil0000003", **payment: str) -> Any:
    paid = invoice_payment("inpay_basil0000001", RENEWAL, 1900, **(payment or
                                                                    {"payment_intent": PAYMENT}))  # fmt: skip
    return sub_delivery(event_id, "invoice_payment.paid", 3, paid)


def answered(client: TestClient, delivery: Any) -> tuple[int, Any]:
    status, body = post(client, delivery)
    return status, body.get("status")


def recorded_against(shop: Shop) -> list[tuple[Any, ...]]:
    """The audit entries noting a payment or refund, and what each is recorded against."""
    return owner_rows(
        shop,
        "SELECT action, entity_type, entity_id FROM user_activity_log"
        " WHERE action LIKE 'subscription.%%' AND action NOT IN"
        " ('subscription.state_recorded', 'subscription.invoice.paid')"
        " OR action = 'payment.refunded' ORDER BY event_id",
    )


def test_a_renewal_its_invoice_payment_and_its_refund_are_recorded_against_the_subscription(
    client: TestClient, shop: Shop
) -> None:
    renewal_paid(client)
    assert answered(client, invoice_payment_paid()) == (200, "recorded")
    assert answered(client, payment_succeeded()) == (200, "recorded")
    assert answered(client, charge_refunded()) == (200, "recorded")
    assert recorded_against(shop) == [
        ("subscription.invoice_payment.paid", "user_subscriptions", SUB),
        ("subscription.payment_succeeded", "user_subscriptions", SUB),
        ("subscription.payment_refunded", "user_subscriptions", SUB),
    ]
    details = owner_rows(shop, "SELECT details FROM user_activity_log"
                               " WHERE action = 'subscription.invoice_payment.paid'")  # fmt: skip
    assert details[0][0] | {"invoice": RENEWAL, "payment_intent": PAYMENT} == details[0][0]
    # Applied once: a replay of each is a duplicate and adds nothing.
    for delivery in (invoice_payment_paid(), payment_succeeded(), charge_refunded()):
        assert answered(client, delivery) == (200, "duplicate")
    assert len(recorded_against(shop)) == 3
    assert owner_rows(shop, "SELECT count(*) FROM purchases") == [(0,)]
    assert owner_rows(
        shop, "SELECT count(*) FROM webhook_events WHERE event_id LIKE 'evt_basil%%'"
        " AND user_id IS NULL"
    ) == [(0,)]  # fmt: skip


def test_a_payment_before_its_invoice_payment_is_answered_as_before_then_recorded_by_it(
    client: TestClient, shop: Shop
) -> None:
    renewal_paid(client)
    status, body = post(client, payment_succeeded(offset=2))
    assert (status, body["status"]) == (200, "ignored"), body
    assert answered(client, invoice_payment_paid()) == (200, "recorded")
    assert recorded_against(shop) == [
        ("subscription.invoice_payment.paid", "user_subscriptions", SUB)]  # fmt: skip


def test_an_invoice_listing_its_payments_links_a_payment_to_the_subscription(
    client: TestClient, shop: Shop
) -> None:
    listed = invoice_payment("inpay_basil0000002", RENEWAL, 1900, payment_intent=PAYMENT)
    renewal_paid(client, payments={"object": "list", "data": [listed], "has_more": False})
    assert answered(client, payment_succeeded()) == (200, "recorded")
    assert answered(client, charge_refunded()) == (200, "recorded")
    assert [row[0] for row in recorded_against(shop)] == [
        "subscription.payment_succeeded", "subscription.payment_refunded"]  # fmt: skip


def test_a_refund_of_an_invoice_paid_by_a_charge_alone_is_recorded_against_it(
    client: TestClient, shop: Shop
) -> None:
    renewal_paid(client)
    assert answered(client, invoice_payment_paid(charge=CHARGE)) == (200, "recorded")
    assert answered(client, charge_refunded(payment_intent=None)) == (200, "recorded")
    assert recorded_against(shop)[-1] == ("subscription.payment_refunded", "user_subscriptions",
                                          SUB)  # fmt: skip


def test_an_invoice_payment_waits_for_its_invoice_then_is_linked_to_its_user(
    client: TestClient, shop: Shop
) -> None:
    signed_up(client)
    assert post(client, sub_delivery("evt_basil0000001", "customer.subscription.created", 1,
                                     sub_state("active")))[0] == 200  # fmt: skip
    early = invoice_payment_paid()
    status, body = post(client, early)
    assert (status, body["status"]) == (409, "deferred"), body
    assert "invoice this payment paid" in outcome(shop, "evt_basil0000003")[1]
    paid = invoice(RENEWAL, SUB, CUSTOMER, (NOW, NOW + 30 * DAY), 1900)
    assert post(client, sub_delivery("evt_basil0000002", "invoice.paid", 2, paid))[0] == 200
    assert answered(client, early) == (200, "recorded")
    # Applied on its second delivery, it belongs to its user as one applied at once does.
    users = owner_rows(
        shop,
        "SELECT e.event_id, p.clerk_user_id FROM webhook_events e"
        " LEFT JOIN user_profiles p ON p.id = e.user_id WHERE e.provider = 'stripe'"
        " ORDER BY e.event_id",
    )
    assert users == [("evt_basil0000001", ADA), ("evt_basil0000002", ADA),
                     ("evt_basil0000003", ADA)]  # fmt: skip


def test_an_invoice_payment_whose_invoice_never_comes_is_parked_at_the_bound(
    client: TestClient, shop: Shop
) -> None:
    signed_up(client)
    early = invoice_payment_paid()
    for _ in range(1, rules.WEBHOOK_DEFER_MAX_ATTEMPTS):
        assert answered(client, early) == (409, "deferred")
    assert answered(client, early) == (200, "unresolved")


def test_a_payment_of_a_one_off_invoice_is_ignored_with_the_reason(
    client: TestClient, shop: Shop
) -> None:
    signed_up(client)
    one_off = {"id": RENEWAL, "object": "invoice", "customer": CUSTOMER, "amount_paid": 500,
               "parent": None}  # fmt: skip
    assert (
        post(client, stripe_delivery("evt_basil0000002", "invoice.paid", at(2), one_off))[0] == 200
    )
    status, body = post(client, invoice_payment_paid())
    assert (status, body["status"]) == (200, "ignored") and "one-off invoice" in str(body["reason"])


def test_an_invoice_payment_naming_no_valid_invoice_is_refused_naming_the_field(
    client: TestClient, shop: Shop
) -> None:
    signed_up(client)
    bad = invoice_payment("inpay_basil0000003", "in_with space", 1900, payment_intent=PAYMENT)
    answer = post(client, sub_delivery("evt_basil0000009", "invoice_payment.paid", 3, bad))
    assert "data.object.invoice" in parked_problems(answer)
    assert owner_rows(shop, "SELECT outcome FROM webhook_events WHERE event_id ="
                            " 'evt_basil0000009'") == [("unresolved",)]  # fmt: skip
    assert owner_rows(shop, "SELECT count(*) FROM user_activity_log WHERE event_id ="
                            " 'evt_basil0000009'") == [(0,)]  # fmt: skip
