"""A purchase's amount is what the buyer paid for all its units (Stripe's Checkout
`amount_total`: "Total of all items after discounts and taxes are applied"), in the purchase and
in the revenue report alike; and an event that waited (409) belongs to its user once applied, as
one applied at once does."""

from __future__ import annotations

from decimal import Decimal

from starlette.testclient import TestClient

from tests.billing.conftest import Shop, post
from tests.billing.providers import checkout_session, payment_intent, refund, stripe_delivery
from tests.billing.test_handlers import ADA, CUSTOMER, NOW, owner_rows, signed_up, sub_event
from tests.billing.test_invoice_payment_links import revenue_totals

UNIT_PRICE_CENTS = 4900  # the one-off kit's price (tests.billing.providers.stock_catalog)


def test_a_checkout_of_three_units_records_their_total_once(client: TestClient, shop: Shop) -> None:
    signed_up(client)
    checkout = checkout_session("cs_three00000001", "pi_three00000001", ADA, CUSTOMER)
    checkout["amount_total"] = 3 * UNIT_PRICE_CENTS
    checkout["metadata"] = {**checkout["metadata"], "quantity": "3"}
    delivery = stripe_delivery("evt_three0000001", "checkout.session.completed", NOW, checkout)
    assert post(client, delivery)[0] == 200
    total = Decimal(3 * UNIT_PRICE_CENTS) / 100
    assert owner_rows(shop, "SELECT quantity, amount FROM purchases") == [(3, total)]
    assert revenue_totals(shop.owner_url)["one_off"] == total


def test_events_that_waited_belong_to_their_user_once_applied(
    client: TestClient, shop: Shop
) -> None:
    # A subscription before its user, a refund before its payment: each waits (409).
    early_subscription = sub_event(1, "customer.subscription.created", "active", (NOW, NOW + 99))
    early_refund = stripe_delivery("evt_wait00000002", "charge.refunded", NOW + 5,
                                   refund("ch_wait000000001", "pi_wait000000001"))  # fmt: skip
    assert post(client, early_subscription)[0] == 409
    signed_up(client)
    assert post(client, early_refund)[0] == 409
    paid = stripe_delivery("evt_wait00000001", "payment_intent.succeeded", NOW,
                           payment_intent("pi_wait000000001", ADA, CUSTOMER))  # fmt: skip
    assert post(client, paid)[0] == 200
    for waited in (early_subscription, early_refund):
        assert post(client, waited)[1]["status"] == "applied"
    users = owner_rows(shop, "SELECT e.event_id, p.clerk_user_id FROM webhook_events e"
                             " LEFT JOIN user_profiles p ON p.id = e.user_id"
                             " WHERE e.provider = 'stripe' ORDER BY 1")  # fmt: skip
    assert users == [("evt_ada0000000001", ADA), ("evt_wait00000001", ADA),
                     ("evt_wait00000002", ADA)]  # fmt: skip
