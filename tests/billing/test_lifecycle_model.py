"""Random subscription lifecycles, as Stripe would send them, delivered in random orders with
duplicates, and after every delivery compared with a small model of Stripe's rules written here
apart from the code under test: the user's document (what `afilo-db user show --json` prints)
and a real insert into `downloads` as the user, through the downloads policy.

The lifecycles: a start (trial, a first payment pending, or paid), then steps along Stripe's
status machine (conversion, a failed first payment expiring, past_due and recovery, unpaid,
pause and resumption, cancellation at period end and immediate), upgrades and downgrades with
their proration invoices, and around them the invoices, payments and refunds Stripe sends too.

Bounded in `make test` (MODEL_EXAMPLES, default 4 lifecycles); `make bench` runs it longer
(AFILO_MODEL_EXAMPLES)."""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from afilo_db.cli.user import _document
from afilo_db.db.urls import sqlalchemy_url
from afilo_db.security import as_user
from afilo_db.services.accounts import account
from tests.billing.conftest import Shop, post
from tests.billing.providers import (
    PRICE_IDS,
    Delivery,
    clerk_delivery,
    clerk_user,
    invoice,
    refund,
    stripe_delivery,
    subscription,
)
from tests.billing.test_handlers import NOW

MODEL_EXAMPLES = int(os.environ.get("AFILO_MODEL_EXAMPLES", "4"))
DAY = 86400
GRACE_DAYS = 3  # billing_settings' default past_due grace

# The model: Stripe's subscription statuses as its documentation describes them.
NEXT_STATUS = {
    "incomplete": ("active", "incomplete_expired"),
    "trialing": ("active", "past_due", "paused", "canceled"),
    "active": ("past_due", "canceled"),
    "past_due": ("active", "unpaid", "canceled"),
    "unpaid": ("active", "canceled"),
    "paused": ("active", "canceled"),
    "canceled": (),
    "incomplete_expired": (),
}
PLAN_PRODUCTS = {"starter": {"starter-kit"}, "professional": {"starter-kit", "pro-kit"}}


@dataclass(frozen=True)
class State:
    status: str
    plan: str
    period_end: int
    cancel_at_period_end: bool


def model_entitled(state: State | None) -> set[str]:
    """What the model says the user may download under this subscription state now."""
    if state is None:
        return set()
    if state.status in ("trialing", "active"):
        within = state.period_end > NOW
    elif state.status == "past_due":
        within = state.period_end + GRACE_DAYS * DAY > NOW
    else:
        within = False
    return PLAN_PRODUCTS[state.plan] if within else set()


def model_tier(state: State | None) -> str:
    """The profile's tier: the plan while the subscription is in force (past_due included)."""
    if state is None or state.status not in ("trialing", "active", "past_due"):
        return "free"
    return state.plan


def lifecycle(rng: random.Random) -> list[State]:
    status = rng.choice(("incomplete", "trialing", "active"))
    plan = rng.choice(("starter", "professional"))

    def period() -> int:
        # Ends well ahead, just ended (within the grace), or long past.
        return NOW + rng.choice((29 * DAY, DAY, -DAY, -10 * DAY))

    states = [State(status, plan, period(), False)]
    for _ in range(rng.randint(1, 6)):
        if not NEXT_STATUS[status]:
            break
        move = rng.random()
        cancel = states[-1].cancel_at_period_end
        if move < 0.25 and status in ("trialing", "active"):
            plan = "professional" if plan == "starter" else "starter"
        elif move < 0.35 and status in ("trialing", "active"):
            cancel = not cancel
        else:
            status = rng.choice(NEXT_STATUS[status])
        states.append(State(status, plan, period(), cancel))
    return states


_numbers = itertools.count()


@dataclass(frozen=True)
class World:
    clerk_user_id: str
    subscription_id: str
    customer: str
    deliveries: list[Delivery]
    state_of: dict[str, int]
    """Event id -> index of the state it carries (the subscription's own events only)."""
    states: list[State]


def world(rng: random.Random) -> World:
    number = next(_numbers)
    key = f"mdl{os.getpid()}x{number:06d}"
    clerk, sub, customer = f"user_{key}", f"sub_{key}", f"cus_{key}"
    states = lifecycle(rng)
    start = NOW - 30 * DAY
    deliveries: list[Delivery] = []
    state_of: dict[str, int] = {}
    at = start
    for index, state in enumerate(states):
        # Stripe may end a subscription in the same second as its last update; the event ids
        # of deletions sort first here, so that only the status machine can order the two.
        final = not NEXT_STATUS[state.status]
        at = at if index and final and rng.random() < 0.5 else start + index * 3600
        kind = "created" if index == 0 else "deleted" if state.status == "canceled" else "updated"
        obj = subscription(sub, clerk, state.status, state.plan, at, state.period_end,
                           customer=customer,
                           canceled_at=at if state.status == "canceled" else None)  # fmt: skip
        obj["cancel_at_period_end"] = state.cancel_at_period_end
        event_id = f"evt_{key}{'d' if kind == 'deleted' else 's'}{index:02d}"
        deliveries.append(stripe_delivery(event_id, f"customer.subscription.{kind}", at, obj))
        state_of[event_id] = index
        deliveries.extend(_side_events(rng, key, index, at, sub, customer, states))
    return World(clerk, sub, customer, deliveries, state_of, states)


def _side_events(
    rng: random.Random, key: str, index: int, at: int, sub: str, customer: str,
    states: list[State],
) -> Iterator[Delivery]:  # fmt: skip
    """What Stripe sends around a state: its invoice (paid or failed; a plan change's proration
    invoice lists the old price first), the invoice's payment, sometimes a refund of it, and
    sometimes at the very second of the state."""
    state = states[index]
    previous = states[index - 1] if index else None
    invoice_id, payment = f"in_{key}i{index:02d}", f"pi_{key}p{index:02d}"
    paid = state.status in ("active", "trialing")
    obj = invoice(invoice_id, sub, customer, (at, state.period_end), 1900 if paid else 0)
    if previous is not None and previous.plan != state.plan:
        obj["lines"]["data"] = [
            {"amount": -900, "proration": True, "period": {"start": at, "end": state.period_end},
             "price": {"id": PRICE_IDS[previous.plan], "unit_amount": 1900, "currency": "usd",
                       "metadata": {"tier": previous.plan}}},
            {"amount": 1900, "period": {"start": at, "end": state.period_end},
             "price": {"id": PRICE_IDS[state.plan], "unit_amount": 1900, "currency": "usd",
                       "metadata": {"tier": state.plan}}},
        ]  # fmt: skip
    when = at + rng.choice((0, 1, 1800))
    yield stripe_delivery(f"evt_{key}n{index:02d}",
                          "invoice.paid" if paid else "invoice.payment_failed", when, obj)  # fmt: skip
    if paid:
        yield stripe_delivery(f"evt_{key}q{index:02d}", "payment_intent.succeeded", when, {
            "id": payment, "object": "payment_intent", "amount_received": 1900,
            "currency": "usd", "customer": customer, "invoice": invoice_id, "metadata": {}})  # fmt: skip
        if rng.random() < 0.3:
            refunded = refund(f"ch_{key}r{index:02d}", payment)
            refunded["customer"], refunded["invoice"] = customer, invoice_id
            yield stripe_delivery(f"evt_{key}r{index:02d}", "charge.refunded", when + 60, refunded)


@dataclass(frozen=True)
class Observed:
    status: str | None
    plan: str | None
    tier: str
    entitled: set[str]
    downloadable: set[str]


def observe(shop: Shop, engines: Engines, clerk_user_id: str) -> Observed:
    """What `user show --json` says (its document, built in process) and what the downloads
    policy lets the user record, product by product."""
    with Session(engines.owner) as session:
        document = _document(account(session, clerk_user_id))
    current = [row for row in document["subscriptions"] if row["is_current"]]
    products = {row["product_id"]: row["product_handle"] for row in document["entitlements"]}
    allowed: set[str] = set()
    with psycopg.connect(shop.owner_url) as connection:
        candidates = connection.execute(
            "SELECT p.handle, p.id, (SELECT s.id FROM user_subscriptions s JOIN user_profiles u"
            " ON u.id = s.user_id WHERE u.clerk_user_id = %s AND s.is_current)"
            " FROM products p WHERE p.handle IN ('starter-kit', 'pro-kit')",
            (clerk_user_id,),
        ).fetchall()
    with Session(engines.app) as session:
        for handle, product_id, subscription_id in candidates:
            if subscription_id is None:
                continue
            try:
                with as_user(session, clerk_user_id):
                    session.execute(
                        text("INSERT INTO downloads (user_id, product_id, subscription_id)"
                             " VALUES (current_user_profile_id(), :p, :s)"),
                        {"p": product_id, "s": subscription_id},
                    )  # fmt: skip
                allowed.add(handle)
            except ProgrammingError as error:
                if not isinstance(error.orig, psycopg.errors.InsufficientPrivilege):
                    raise
            session.rollback()
    return Observed(
        status=current[0]["status"] if current else None,
        plan=current[0]["tier"] if current else None,
        tier=document["profile"]["subscription_tier"],
        entitled=set(products.values()),
        downloadable=allowed,
    )


@dataclass(frozen=True)
class Engines:
    owner: Engine
    app: Engine


@pytest.fixture
def engines(shop: Shop) -> Iterator[Engines]:
    both = Engines(
        create_engine(sqlalchemy_url(shop.owner_url)), create_engine(sqlalchemy_url(shop.app_url))
    )
    yield both
    both.owner.dispose()
    both.app.dispose()


@settings(
    max_examples=MODEL_EXAMPLES,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_random_lifecycles_in_random_orders_agree_with_the_model(
    client: TestClient, shop: Shop, engines: Engines, seed: int
) -> None:
    rng = random.Random(seed)
    lived = world(rng)
    signed_up = clerk_delivery(
        f"msg_{lived.clerk_user_id[5:]}",
        "user.created",
        (NOW - 40 * DAY) * 1000,
        clerk_user(lived.clerk_user_id, f"{lived.clerk_user_id[5:]}@example.com",
                   (NOW - 40 * DAY) * 1000),
    )  # fmt: skip
    assert post(client, signed_up)[0] == 200
    pending = lived.deliveries + rng.sample(lived.deliveries, len(lived.deliveries) // 4)
    rng.shuffle(pending)
    delivered: set[str] = set()
    posts = 0
    while pending:
        delivery = pending.pop(0)
        posts += 1
        assert posts < 10 * len(lived.deliveries)
        status, body = post(client, delivery)
        if status == 409:
            pending.append(delivery)  # the provider delivers it again later
            continue
        assert status == 200, (delivery.event_id, body)
        assert body["status"] != "unresolved", body
        delivered.add(delivery.event_id)
        indexes = [lived.state_of[e] for e in delivered if e in lived.state_of]
        expected = lived.states[max(indexes)] if indexes else None
        seen = observe(shop, engines, lived.clerk_user_id)
        context = (seed, delivery.event_id, lived.states, expected, seen)
        assert seen.status == (expected.status if expected else None), context
        assert seen.plan == (expected.plan if expected else None), context
        assert seen.tier == model_tier(expected), context
        assert seen.entitled == model_entitled(expected), context
        assert seen.downloadable == model_entitled(expected), context
