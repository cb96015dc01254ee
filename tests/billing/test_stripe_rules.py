"""Billing read the way Stripe writes: ids with Stripe's own underscores, a status only from the
subscription's own objects and only along Stripe's status machine, every ordinary event answered
2xx (recorded or ignored, with the reason), a dependency waited for only up to a bound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from afilo_db import rules
from tests.billing.conftest import Shop, parked_problems, post
from tests.billing.providers import (
    PRICE_IDS,
    checkout_session,
    clerk_delivery,
    deliver_all,
    invoice,
    payment_intent,
    refund,
    stripe_delivery,
    subscription,
)
from tests.billing.test_handlers import (
    ADA,
    CUSTOMER,
    SUB,
    downloadable,
    owner_rows,
    signed_up,
    tier,
)

NOW = int(time.time())
DAY = 86400
# The shape of a real Checkout Session id (test mode): more underscores than a prefix's.
REAL_SESSION_ID = "cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY"
REAL_PAYMENT_INTENT = "pi_3MtwBwLkdIwHu7ix28a3tqPa"


def at(offset: int) -> int:
    """A Stripe event time: 20 days ago, plus `offset` seconds (events are ordered by it)."""
    return NOW - 20 * DAY + offset


def sub_state(status: str, plan: str = "professional", **extra: Any) -> dict[str, Any]:
    period = extra.pop("period", (NOW - DAY, NOW + 29 * DAY))
    return subscription(SUB, ADA, status, plan, *period, customer=CUSTOMER, **extra)


def sub_delivery(event_id: str, event_type: str, offset: int, obj: dict[str, Any]) -> Any:
    return stripe_delivery(event_id, event_type, at(offset), obj)


def current(shop: Shop) -> tuple[Any, ...]:
    rows = owner_rows(
        shop,
        "SELECT status, tier FROM user_subscriptions WHERE stripe_subscription_id = %s"
        " AND is_current",
        SUB,
    )
    return rows[0] if rows else ()


def outcome(shop: Shop, event_id: str) -> tuple[Any, ...]:
    return owner_rows(
        shop, "SELECT outcome, reason, attempts FROM webhook_events WHERE event_id = %s", event_id
    )[0]


def test_a_real_checkout_session_id_buys_the_product(client: TestClient, shop: Shop) -> None:
    signed_up(client)
    checkout = checkout_session(REAL_SESSION_ID, REAL_PAYMENT_INTENT, ADA, CUSTOMER)
    delivery = stripe_delivery("evt_1NG8Du2eZvKYlo2CUI79vXWy", "checkout.session.completed", NOW,
                               checkout)  # fmt: skip
    assert post(client, delivery) == (
        200, {"status": "applied", "event_id": "evt_1NG8Du2eZvKYlo2CUI79vXWy"})  # fmt: skip
    assert owner_rows(shop, "SELECT status, stripe_checkout_session_id FROM purchases") == [
        ("paid", REAL_SESSION_ID)
    ]
    assert downloadable(shop) == {"one-off-kit"}


def test_an_id_breaking_stripes_rule_is_refused_naming_the_field(
    client: TestClient, shop: Shop
) -> None:
    signed_up(client)
    checkout = checkout_session("cs_test_a1", "pi_with space", ADA, CUSTOMER)
    answer = post(client, stripe_delivery("evt_badpi0000001", "checkout.session.completed",
                                          NOW, checkout))  # fmt: skip
    assert "data.object.payment_intent" in parked_problems(answer)
    assert owner_rows(shop, "SELECT count(*) FROM purchases") == [(0,)]


@pytest.mark.parametrize("quantity", ["two", "2.5", "0", "-1", "", "1001", "²"])
def test_a_quantity_that_is_no_whole_number_is_refused_naming_the_field(
    client: TestClient, shop: Shop, quantity: str
) -> None:
    # Stripe's metadata values are strings: a bad one is the event's fault (parked), never a 500.
    signed_up(client)
    checkout = checkout_session("cs_test_qty0000001", "pi_qty0000000001", ADA, CUSTOMER)
    checkout["metadata"]["quantity"] = quantity
    answer = post(client, stripe_delivery("evt_qty000000001", "checkout.session.completed",
                                          NOW, checkout))  # fmt: skip
    assert parked_problems(answer) == {
        "data.object.metadata.quantity": f"must be a whole number from 1 to {rules.CART_MAX_QUANTITY}"
    }
    assert owner_rows(shop, "SELECT count(*) FROM purchases") == [(0,)]


def test_a_purchase_keeps_the_quantity_its_metadata_names(client: TestClient, shop: Shop) -> None:
    signed_up(client)
    checkout = checkout_session("cs_test_qty0000002", "pi_qty0000000002", ADA, CUSTOMER)
    checkout["metadata"]["quantity"] = "3"
    assert post(client, stripe_delivery("evt_qty000000002", "checkout.session.completed", NOW,
                                        checkout))[0] == 200  # fmt: skip
    assert owner_rows(shop, "SELECT quantity, status FROM purchases") == [(3, "paid")]


def test_an_incomplete_subscription_whose_first_payment_fails_never_entitles(
    client: TestClient, shop: Shop
) -> None:
    signed_up(client)
    post(client, sub_delivery("evt_inc000000001", "customer.subscription.created", 1,
                              sub_state("incomplete")))  # fmt: skip
    assert current(shop) == ("incomplete", "professional")
    assert (tier(shop), downloadable(shop)) == ("free", set())
    failed = sub_delivery("evt_inc000000002", "invoice.payment_failed", 2,
                          invoice("in_inc000000001", SUB, CUSTOMER, (NOW - DAY, NOW + DAY), 0))  # fmt: skip
    status, body = post(client, failed)
    assert (status, body["status"]) == (200, "recorded")
    assert current(shop) == ("incomplete", "professional")
    assert (tier(shop), downloadable(shop)) == ("free", set())
    post(client, sub_delivery("evt_inc000000003", "customer.subscription.updated", 3,
                              sub_state("incomplete_expired")))  # fmt: skip
    assert current(shop) == ("incomplete_expired", "professional")
    assert (tier(shop), downloadable(shop)) == ("free", set())


@pytest.mark.parametrize("invoice_first", [True, False])
def test_the_tier_follows_an_upgrade_whatever_the_invoice_lists_or_when_it_comes(
    client: TestClient, shop: Shop, invoice_first: bool
) -> None:
    signed_up(client)
    post(client, sub_delivery("evt_upg000000001", "customer.subscription.created", 1,
                              sub_state("active", "starter")))  # fmt: skip
    assert tier(shop) == "starter"
    upgraded = sub_delivery("evt_upg000000003", "customer.subscription.updated", 3,
                            sub_state("active", "professional"))  # fmt: skip
    # Stripe's proration invoice lists the unused time on the old price first.
    proration = invoice("in_upg000000001", SUB, CUSTOMER, (NOW - DAY, NOW + 29 * DAY), 1200)
    proration["billing_reason"] = "subscription_update"
    proration["lines"]["data"] = [
        {"amount": -900, "proration": True, "period": {"start": NOW, "end": NOW + 29 * DAY},
         "price": {"id": PRICE_IDS["starter"], "unit_amount": 1900, "currency": "usd",
                   "metadata": {"tier": "starter"}}},
        {"amount": 2100, "proration": True, "period": {"start": NOW, "end": NOW + 29 * DAY},
         "price": {"id": PRICE_IDS["professional"], "unit_amount": 4900, "currency": "usd",
                   "metadata": {"tier": "professional"}}},
    ]  # fmt: skip
    paid = sub_delivery("evt_upg000000004", "invoice.paid", 4, proration)
    for delivery in (paid, upgraded) if invoice_first else (upgraded, paid):
        assert post(client, delivery)[0] == 200
    assert current(shop) == ("active", "professional")
    assert tier(shop) == "professional"
    assert downloadable(shop) == {"pro-kit", "starter-kit"}


def test_the_tier_comes_from_the_item_whose_price_sells_one(client: TestClient, shop: Shop) -> None:
    signed_up(client)
    obj = sub_state("active", "professional")
    add_on = {"id": "si_addon0000001", "current_period_start": NOW - DAY,
              "current_period_end": NOW + 29 * DAY, "quantity": 3,
              "price": {"id": "price_1Qseats000001", "unit_amount": 500, "currency": "usd",
                        "metadata": {}}}  # fmt: skip
    obj["items"]["data"].insert(0, add_on)
    assert post(client, sub_delivery("evt_multi0000001", "customer.subscription.created", 1,
                                     obj))[0] == 200  # fmt: skip
    assert owner_rows(shop, "SELECT tier, stripe_price_id, amount FROM user_subscriptions") == [
        ("professional", PRICE_IDS["professional"], 19)
    ]


@pytest.mark.parametrize("late", ["invoice.paid", "customer.subscription.updated"])
def test_nothing_brings_a_canceled_subscription_back(
    client: TestClient, shop: Shop, late: str
) -> None:
    signed_up(client)
    post(client, sub_delivery("evt_can000000001", "customer.subscription.created", 1,
                              sub_state("active")))  # fmt: skip
    post(client, sub_delivery("evt_can000000002", "customer.subscription.deleted", 2,
                              sub_state("canceled", canceled_at=at(2))))  # fmt: skip
    # Stripe sends the invoice of the period and the last update of the same second late, and
    # an event id orders nothing: canceled is terminal.
    if late == "invoice.paid":
        obj = invoice("in_can000000001", SUB, CUSTOMER, (NOW - DAY, NOW + 29 * DAY), 1900)
    else:
        obj = sub_state("active")
    assert post(client, sub_delivery("evt_can000000009", late, 2, obj))[0] == 200
    assert current(shop) == ("canceled", "professional")
    assert (tier(shop), downloadable(shop)) == ("free", set())


def test_a_subscription_payment_and_its_refund_are_recorded_not_refused(
    client: TestClient, shop: Shop
) -> None:
    signed_up(client)
    post(client, sub_delivery("evt_rec000000001", "customer.subscription.created", 1,
                              sub_state("active")))  # fmt: skip
    renewal = invoice("in_rec000000001", SUB, CUSTOMER, (NOW, NOW + 30 * DAY), 1900)
    assert post(client, sub_delivery("evt_rec000000002", "invoice.paid", 2, renewal))[0] == 200
    # Every renewal's PaymentIntent: none of afilo-db's purchase metadata.
    paid = {"id": "pi_rec000000001", "object": "payment_intent", "amount_received": 1900,
            "currency": "usd", "customer": CUSTOMER, "invoice": "in_rec000000001",
            "metadata": {}}  # fmt: skip
    status, body = post(client, sub_delivery("evt_rec000000003", "payment_intent.succeeded", 3,
                                             paid))  # fmt: skip
    assert (status, body["status"]) == (200, "recorded"), body
    refunded = refund("ch_rec000000001", "pi_rec000000001")
    refunded["customer"], refunded["invoice"] = CUSTOMER, "in_rec000000001"
    status, body = post(client, sub_delivery("evt_rec000000004", "charge.refunded", 4, refunded))
    assert (status, body["status"]) == (200, "recorded"), body
    recorded = owner_rows(
        shop,
        "SELECT action, entity_id FROM user_activity_log WHERE entity_type = 'user_subscriptions'"
        " AND action LIKE 'subscription.%%' AND action <> 'subscription.state_recorded'"
        " ORDER BY event_id",
    )
    assert recorded == [("subscription.invoice.paid", SUB),
                        ("subscription.payment_succeeded", SUB),
                        ("subscription.payment_refunded", SUB)]  # fmt: skip
    assert owner_rows(shop, "SELECT count(*) FROM purchases") == [(0,)]
    assert current(shop) == ("active", "professional")


def test_a_one_off_invoice_and_an_unknown_type_are_stored_and_ignored_with_the_reason(
    client: TestClient, shop: Shop
) -> None:
    signed_up(client)
    one_off = {"id": "in_oneoff0000001", "object": "invoice", "customer": CUSTOMER,
               "amount_paid": 500, "parent": None, "subscription": None}  # fmt: skip
    status, body = post(client, stripe_delivery("evt_oneoff000001", "invoice.paid", NOW, one_off))
    assert (status, body["status"]) == (200, "ignored") and "one-off invoice" in str(body["reason"])
    other = {"id": "cus_ada000000001", "object": "customer"}
    status, body = post(client, stripe_delivery("evt_other0000001", "customer.created", NOW, other))
    assert (status, body["status"]) == (200, "ignored")
    assert body["reason"] == "afilo-db does not act on stripe customer.created"
    assert outcome(shop, "evt_other0000001")[:2] == ("ignored", body["reason"])


def test_events_after_clerk_deleted_the_user_are_stored_and_acknowledged(
    client: TestClient, shop: Shop
) -> None:
    signed_up(client)
    post(client, sub_delivery("evt_del000000001", "customer.subscription.created", 1,
                              sub_state("active")))  # fmt: skip
    deleted = clerk_delivery("msg_deleted000001", "user.deleted", NOW * 1000,
                             {"id": ADA, "object": "user", "deleted": True})  # fmt: skip
    assert post(client, deleted)[1]["status"] == "applied"
    late = [
        sub_delivery("evt_del000000002", "customer.subscription.deleted", 2,
                     sub_state("canceled", canceled_at=at(2))),
        sub_delivery("evt_del000000003", "invoice.paid", 3,
                     invoice("in_del000000001", SUB, CUSTOMER, (NOW, NOW + DAY), 1900)),
        stripe_delivery("evt_del000000004", "checkout.session.completed", NOW,
                        checkout_session("cs_del000000001", "pi_del000000001", ADA, CUSTOMER)),
    ]  # fmt: skip
    for delivery in late:
        status, body = post(client, delivery)
        assert (status, body["status"]) == (200, "ignored"), body
        assert "deleted in Clerk" in str(body["reason"])
    assert owner_rows(shop, "SELECT count(*) FROM purchases") == [(0,)]
    assert owner_rows(
        shop,
        "SELECT count(*) FROM webhook_events WHERE event_id LIKE 'evt_del%%'"
        " AND outcome = 'ignored'",
    ) == [(3,)]


@pytest.mark.parametrize("payment_first", [False, True])
def test_a_delayed_checkout_payment_completes_its_purchase(
    client: TestClient, shop: Shop, payment_first: bool
) -> None:
    signed_up(client)
    checkout = checkout_session("cs_test_b2SEPA_delayed0001", "pi_sepa000000001", ADA, CUSTOMER)
    checkout["payment_status"] = "unpaid"
    completed = stripe_delivery("evt_sepa00000001", "checkout.session.completed", NOW - 60,
                                checkout)  # fmt: skip
    # The PaymentIntent of a Checkout carries none of the session's metadata.
    succeeded = stripe_delivery("evt_sepa00000002", "payment_intent.succeeded", NOW, {
        "id": "pi_sepa000000001", "object": "payment_intent", "amount_received": 4900,
        "currency": "eur", "customer": CUSTOMER, "metadata": {}})  # fmt: skip
    if not payment_first:
        assert post(client, completed)[0] == 200
        assert owner_rows(shop, "SELECT status FROM purchases") == [("pending",)]
        assert downloadable(shop) == set()
    for delivery in (succeeded, completed) if payment_first else (succeeded,):
        assert post(client, delivery)[0] == 200
    assert owner_rows(shop, "SELECT status FROM purchases") == [("paid",)]
    assert downloadable(shop) == {"one-off-kit"}


def test_a_delayed_checkout_completed_by_its_async_event(client: TestClient, shop: Shop) -> None:
    signed_up(client)
    checkout = checkout_session("cs_test_async0000001", "pi_async00000001", ADA, CUSTOMER)
    checkout["payment_status"] = "unpaid"
    post(client, stripe_delivery("evt_async0000001", "checkout.session.completed", NOW - 60,
                                 checkout))  # fmt: skip
    checkout["payment_status"] = "paid"
    status, body = post(client, stripe_delivery(
        "evt_async0000002", "checkout.session.async_payment_succeeded", NOW, checkout))  # fmt: skip
    assert (status, body["status"]) == (200, "applied")
    assert owner_rows(shop, "SELECT status FROM purchases") == [("paid",)]


def test_a_dependency_is_waited_for_only_up_to_the_bound(client: TestClient, shop: Shop) -> None:
    signed_up(client)
    orphan = stripe_delivery("evt_orphan000001", "charge.refunded", NOW,
                             refund("ch_orphan0000001", "pi_orphan0000001"))  # fmt: skip
    for attempt in range(1, rules.WEBHOOK_DEFER_MAX_ATTEMPTS):
        status, body = post(client, orphan)
        assert (status, body["status"]) == (409, "deferred"), (attempt, body)
        assert outcome(shop, "evt_orphan000001")[::2] == ("deferred", attempt)
    status, body = post(client, orphan)
    assert (status, body["status"]) == (200, "unresolved")
    assert "no purchase for this payment" in str(body["reason"])
    # Parked: a later delivery is a duplicate, not retried forever.
    assert post(client, orphan)[1]["status"] == "duplicate"
    assert outcome(shop, "evt_orphan000001")[::2] == (
        "unresolved", rules.WEBHOOK_DEFER_MAX_ATTEMPTS)  # fmt: skip


def test_a_deferred_event_older_than_the_time_bound_is_parked(
    client: TestClient, shop: Shop
) -> None:
    orphan = stripe_delivery("evt_orphan000002", "customer.subscription.created", NOW,
                             subscription("sub_orphan000002", "user_nobody00001", "active",
                                          "starter", NOW, NOW + DAY))  # fmt: skip
    assert post(client, orphan)[0] == 409
    with psycopg.connect(shop.owner_url) as owner:
        owner.execute(
            "UPDATE webhook_events SET received_at = now() - make_interval(hours => %s + 1)",
            (rules.WEBHOOK_DEFER_MAX_HOURS,),
        )
    assert post(client, orphan)[1]["status"] == "unresolved"


def test_a_legacy_plan_and_the_period_on_the_subscription_are_read(
    client: TestClient, shop: Shop
) -> None:
    signed_up(client)
    obj = sub_state("active", "starter")
    item = obj["items"]["data"][0]
    # Before 2025-03-31 the period is the subscription's; before Prices, the item has a plan.
    obj["current_period_start"] = item.pop("current_period_start")
    obj["current_period_end"] = item.pop("current_period_end")
    price = item.pop("price")
    item["plan"] = {"id": "starter-monthly", "object": "plan", "amount": 1900,
                    "currency": "usd", "interval": "month", "metadata": price["metadata"]}  # fmt: skip
    assert post(client, sub_delivery("evt_legacy000001", "customer.subscription.created", 1,
                                     obj))[0] == 200  # fmt: skip
    stored = owner_rows(
        shop,
        "SELECT stripe_price_id, tier, amount, extract(epoch FROM current_period_end)::bigint"
        " FROM user_subscriptions",
    )
    assert stored == [("starter-monthly", "starter", 19, obj["current_period_end"])]
    assert tier(shop) == "starter"


def test_payment_intent_of_a_one_off_sale_still_needs_its_price(client: TestClient) -> None:
    signed_up(client)
    paid = payment_intent("pi_oneoff0000001", ADA, CUSTOMER)
    paid["metadata"]["stripe_price_id"] = "price_unknown0001"
    answer = post(client, stripe_delivery("evt_oneoffpi0001", "payment_intent.succeeded",
                                          NOW, paid))  # fmt: skip
    assert "data.object.metadata.stripe_price_id" in parked_problems(answer)


def afilo_db(shop: Shop, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DATABASE_URL": shop.owner_url, "DIRECT_URL": shop.owner_url,
                   "SERVICE_DATABASE_URL": shop.service_url, "COLUMNS": "200"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "afilo_db", *args],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_unresolved_command_shows_the_parked_and_the_refused(
    client: TestClient, shop: Shop
) -> None:
    waiting = stripe_delivery("evt_waiting00001", "charge.refunded", NOW,
                              refund("ch_waiting000001", "pi_waiting000001"))  # fmt: skip
    assert post(client, waiting)[0] == 409
    # Deferred only: listed with --deferred, and nothing unresolved (exit code 0).
    deferred = afilo_db(shop, "webhooks", "unresolved", "--deferred", "--json")
    assert deferred.returncode == 0, deferred.stderr
    assert [(row["event_id"], row["outcome"]) for row in json.loads(deferred.stdout)] == [
        ("evt_waiting00001", "deferred")]  # fmt: skip
    for _ in range(rules.WEBHOOK_DEFER_MAX_ATTEMPTS - 1):
        post(client, waiting)
    parked = afilo_db(shop, "webhooks", "unresolved", "--json")
    assert parked.returncode == 1
    (row,) = json.loads(parked.stdout)
    assert (row["event_id"], row["event_type"], row["outcome"], row["attempts"]) == (
        "evt_waiting00001", "charge.refunded", "unresolved", rules.WEBHOOK_DEFER_MAX_ATTEMPTS)  # fmt: skip
    assert "no purchase for this payment" in row["reason"]

    post(client, stripe_delivery("evt_forged000001", "charge.refunded", NOW,
                                 refund("ch_x0000001", "pi_x0000001"), secret="whsec_other"))  # fmt: skip
    refused = json.loads(afilo_db(shop, "webhooks", "refusals", "--json").stdout)
    assert [(r["provider"], r["status"], r["reason"], r["deliveries"]) for r in refused] == [
        ("stripe", 400, "stripe.signature", 1)]  # fmt: skip


def test_a_delayed_checkout_and_its_payment_delivered_at_once_end_paid(
    served: str, client: TestClient, shop: Shop
) -> None:
    signed_up(client)
    pairs = []
    for number in range(6):
        checkout = checkout_session(f"cs_test_race{number:08d}", f"pi_race{number:08d}", ADA,
                                    CUSTOMER)  # fmt: skip
        checkout["payment_status"] = "unpaid"
        pairs += [
            stripe_delivery(f"evt_racecs{number:06d}", "checkout.session.completed", NOW - 60,
                            checkout),
            stripe_delivery(f"evt_racepi{number:06d}", "payment_intent.succeeded", NOW, {
                "id": f"pi_race{number:08d}", "object": "payment_intent",
                "amount_received": 4900, "currency": "eur", "customer": CUSTOMER,
                "metadata": {}}),
        ]  # fmt: skip
    deliver_all(served, pairs, workers=2)
    assert owner_rows(shop, "SELECT status, count(*) FROM purchases GROUP BY 1") == [("paid", 6)]
