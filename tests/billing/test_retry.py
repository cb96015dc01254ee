"""Parked events (`unresolved`) applied again by `afilo-db webhooks retry` once what they needed
is there: their provider was answered 200 and will never deliver them again."""

from __future__ import annotations

import json
import time

import psycopg
from starlette.testclient import TestClient

from afilo_db import rules
from tests.billing.conftest import Shop, parked_problems, post
from tests.billing.providers import checkout_session, refund, stripe_delivery
from tests.billing.test_handlers import ADA, CUSTOMER, downloadable, owner_rows, signed_up
from tests.billing.test_stripe_rules import afilo_db

NOW = int(time.time())
NEW_PRICE = "price_newkit000001"


def outcomes(shop: Shop) -> dict[str, str]:
    return dict(owner_rows(shop, "SELECT event_id, outcome FROM webhook_events"
                                 " WHERE provider = 'stripe'"))  # fmt: skip


def test_a_checkout_of_a_price_not_yet_in_the_catalog_applies_once_it_is(
    client: TestClient, shop: Shop
) -> None:
    signed_up(client)
    checkout = checkout_session("cs_test_newkit0001", "pi_newkit00000001", ADA, CUSTOMER)
    checkout["metadata"]["stripe_price_id"] = NEW_PRICE
    delivery = stripe_delivery("evt_newkit000001", "checkout.session.completed", NOW, checkout)
    assert "data.object.metadata.stripe_price_id" in parked_problems(post(client, delivery))
    # Answered 200: the provider does not deliver it again, and a delivery again is a duplicate.
    assert post(client, delivery)[1]["status"] == "duplicate"

    still = afilo_db(shop, "webhooks", "retry", "--all", "--json")
    assert still.returncode == 1, (still.stdout, still.stderr)
    (row,) = json.loads(still.stdout)
    assert (row["event_id"], row["outcome"]) == ("evt_newkit000001", "unresolved")
    assert "stripe_price_id" in row["reason"]
    assert owner_rows(shop, "SELECT count(*) FROM purchases") == [(0,)]

    with psycopg.connect(shop.owner_url) as owner:
        owner.execute(
            "WITH p AS (INSERT INTO products (handle, title, status) VALUES ('new-kit', 'New kit',"
            " 'active') RETURNING id) INSERT INTO product_variants (product_id, sku, title,"
            " license_type, price, seats, stripe_price_id) SELECT id, 'NEW-KIT', 'Personal',"
            " 'personal', 49, 1, %s FROM p",
            (NEW_PRICE,),
        )
    done = afilo_db(shop, "webhooks", "retry", "evt_newkit000001", "--json")
    assert done.returncode == 0, done.stderr
    assert [(r["event_id"], r["outcome"]) for r in json.loads(done.stdout)] == [
        ("evt_newkit000001", "applied")]  # fmt: skip
    assert owner_rows(shop, "SELECT status FROM purchases") == [("paid",)]
    assert downloadable(shop) == {"new-kit"}
    assert outcomes(shop)["evt_newkit000001"] == "applied"
    # Applied: no longer unresolved, so naming it again is refused and applies nothing twice.
    again = afilo_db(shop, "webhooks", "retry", "evt_newkit000001")
    assert again.returncode == 2 and "not an unresolved event" in again.stderr
    assert owner_rows(shop, "SELECT count(*) FROM purchases") == [(1,)]


def test_an_event_parked_past_the_bound_applies_when_its_dependency_arrives(
    client: TestClient, shop: Shop
) -> None:
    signed_up(client)
    late = stripe_delivery("evt_lateref00001", "charge.refunded", NOW,
                           refund("ch_lateref000001", "pi_lateref000001"))  # fmt: skip
    for _ in range(rules.WEBHOOK_DEFER_MAX_ATTEMPTS):
        post(client, late)
    assert outcomes(shop) == {"evt_lateref00001": "unresolved"}
    checkout = checkout_session("cs_test_lateref001", "pi_lateref000001", ADA, CUSTOMER)
    assert post(client, stripe_delivery("evt_latebuy00001", "checkout.session.completed", NOW - 60,
                                         checkout))[0] == 200  # fmt: skip
    retried = afilo_db(shop, "webhooks", "retry", "--all")
    assert retried.returncode == 0, retried.stderr
    assert "evt_lateref00001" in retried.stdout and "applied" in retried.stdout
    assert owner_rows(shop, "SELECT status FROM purchases") == [("refunded",)]
    assert outcomes(shop)["evt_lateref00001"] == "applied"


def test_retry_names_what_it_needs_and_applies_nothing_on_bad_input(shop: Shop) -> None:
    neither = afilo_db(shop, "webhooks", "retry")
    assert neither.returncode == 2 and "event_ids" in neither.stderr
    unknown = afilo_db(shop, "webhooks", "retry", "evt_neverstored01")
    assert unknown.returncode == 2 and "evt_neverstored01" in unknown.stderr
