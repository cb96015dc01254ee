"""Random small shops fed through the real webhook endpoint (signed Stripe and Clerk events), and
every money report compared figure by figure with an independent computation, in plain Python,
from the lifecycles that were generated (not from anything afilo-db stored).

Bounded here (a few shops of a few customers); `bench/analytics.py` measures scale."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from afilo_db.analytics import rollups
from afilo_db.analytics.reports import REPORTS, DateRange
from tests.billing.conftest import Shop, client, post, service_engine, shop
from tests.billing.providers import (
    ONE_OFF_PRICE,
    Delivery,
    clerk_delivery,
    clerk_user,
    stripe_delivery,
)

__all__ = ["client", "service_engine", "shop"]

MRR_STATUSES = ("active", "past_due")
DAYS = 150
CUSTOMERS = 5


def month_of(moment: datetime) -> date:
    return moment.date().replace(day=1)


@dataclass
class Script:
    """What happened, in Stripe's time: the deliveries to post, and the facts to compute from."""

    deliveries: list[tuple[int, Delivery]] = field(default_factory=list)
    # subscription -> [(time, customer, status, amount, currency)]
    states: dict[str, list[tuple[int, str, str, Decimal, str]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # (kind, time, amount, currency)
    payments: list[tuple[str, int, Decimal, str]] = field(default_factory=list)


def generate(seed: int, now: int) -> Script:
    rng = random.Random(seed)
    script = Script()
    clock = now - DAYS * 86_400
    for number in range(CUSTOMERS):
        add_customer(script, rng, f"o{seed}x{number:04d}", clock, now)
    script.deliveries.sort(key=lambda delivery: delivery[0])
    return script


def add_customer(script: Script, rng: random.Random, key: str, clock: int, now: int) -> None:
    """One customer's lifecycle: sign-up, one or two subscriptions (a trial or not, a change of
    price, a cancellation, each maybe), a one-off purchase refunded in parts or not."""
    user, customer = f"user_{key}", f"cus_{key}"
    joined = clock + rng.randrange(0, 20 * 86_400)
    script.deliveries.append((joined, clerk_delivery(
        f"msg_{key}", "user.created", joined * 1000,
        clerk_user(user, f"{key}@example.com", joined * 1000))))  # fmt: skip
    currency = rng.choice(("usd", "eur"))
    step = iter(range(1, 1000))

    def stripe(moment: int, event_type: str, obj: dict[str, Any]) -> None:
        event_id = f"evt_{key}n{next(step):03d}"
        script.deliveries.append((moment, stripe_delivery(event_id, event_type, moment, obj)))

    for subscription_number in range(rng.choice((1, 1, 2))):
        sub = f"sub_{key}s{subscription_number}"
        at = joined + 60 + rng.randrange(0, 30 * 86_400)
        cents = rng.choice((1000, 2000, 3500))
        trial = rng.random() < 0.4

        def state(status: str, amount: int, moment: int, sub: str = sub) -> dict[str, Any]:
            return {
                "id": sub, "object": "subscription", "customer": customer, "status": status,
                "metadata": {"clerk_user_id": user}, "cancel_at_period_end": False,
                "canceled_at": moment if status == "canceled" else None,
                "items": {"data": [{
                    "current_period_start": moment, "current_period_end": moment + 30 * 86_400,
                    "price": {"id": f"price_{amount:08d}", "unit_amount": amount,
                              "currency": currency, "metadata": {"tier": "starter"}}}]},
            }  # fmt: skip

        def record(moment: int, status: str, amount: int, sub: str = sub) -> None:
            script.states[sub].append(
                (moment, user, status, Decimal(amount) / 100, currency.upper())
            )

        status = "trialing" if trial else "active"
        stripe(at, "customer.subscription.created", state(status, cents, at))
        record(at, status, cents)
        paid_at = at + (14 * 86_400 if trial else 1)
        invoice = {"id": f"in_{key}s{subscription_number}", "object": "invoice",
                   "customer": customer, "amount_paid": cents, "currency": currency,
                   "subscription": sub,
                   "status_transitions": {"paid_at": paid_at}}  # fmt: skip
        if paid_at < now:
            if trial:  # Stripe ends a trial by updating the subscription; the invoice is money
                stripe(paid_at, "customer.subscription.updated", state("active", cents, paid_at))
            stripe(paid_at + 5, "invoice.paid", invoice)
            record(paid_at, "active", cents)
            script.payments.append(("recurring", paid_at, Decimal(cents) / 100, currency.upper()))
        moment = paid_at + 10 + rng.randrange(0, 40 * 86_400)
        if rng.random() < 0.5 and moment < now:
            cents = rng.choice((500, 5000))
            stripe(moment, "customer.subscription.updated", state("active", cents, moment))
            record(moment, "active", cents)
        moment += 10 + rng.randrange(0, 40 * 86_400)
        if rng.random() < 0.5 and moment < now:
            stripe(moment, "customer.subscription.deleted", state("canceled", cents, moment))
            record(moment, "canceled", cents)
    if rng.random() < 0.6:
        moment = joined + 30 + rng.randrange(0, 60 * 86_400)
        cents = rng.choice((4900, 1250))
        pi = f"pi_{key}"
        stripe(moment, "checkout.session.completed", {
            "id": f"cs_{key}", "object": "checkout.session", "mode": "payment",
            "payment_status": "paid", "payment_intent": pi, "amount_total": cents,
            "currency": currency, "customer": customer, "client_reference_id": user,
            "metadata": {"stripe_price_id": ONE_OFF_PRICE}})  # fmt: skip
        script.payments.append(("one_off", moment, Decimal(cents) / 100, currency.upper()))
        refunded = 0
        for _ in range(rng.choice((0, 1, 2))):
            moment += 3600 + rng.randrange(0, 20 * 86_400)
            total = min(cents, refunded + rng.choice((250, cents)))
            if moment >= now or total == refunded:
                break
            # Stripe sends the charge's running total; the refund is what it adds.
            stripe(moment, "charge.refunded", {
                "id": f"ch_{key}", "object": "charge", "payment_intent": pi,
                "refunded": total == cents, "amount_refunded": total,
                "currency": currency})  # fmt: skip
            script.payments.append(
                ("refund", moment, Decimal(total - refunded) / 100, currency.upper())
            )
            refunded = total


def customer_mrr(script: Script, end: datetime) -> dict[tuple[str, str], Decimal]:
    """Each customer's MRR per currency at `end`: the newest state of each subscription before."""
    mrr: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for states in script.states.values():
        before = [state for state in states if state[0] < end.timestamp()]
        if not before:
            continue
        _, customer, status, amount, currency = max(before, key=lambda state: state[0])
        mrr[(customer, currency)] += amount if status in MRR_STATUSES else Decimal(0)
    return mrr


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_money_reports_agree_with_an_independent_computation(
    shop: Shop, client: TestClient, seed: int
) -> None:
    now = int(datetime.now(UTC).timestamp())
    script = generate(seed, now)
    for _, delivery in script.deliveries:
        status, body = post(client, delivery)
        assert status == 200, (delivery.event_id, body)
    today = datetime.now(UTC).date()
    date_range = DateRange(month_of(datetime.fromtimestamp(now - DAYS * 86_400, UTC)), today)
    months = []
    month = date_range.start
    while month <= today:
        months.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    with psycopg.connect(shop.owner_url) as connection:
        rollups.refresh(connection)
        tables = {
            name: REPORTS[name].run(connection, date_range) for name in ("mrr", "revenue", "churn")
        }

    revenue: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 3)
    for kind, moment, amount, currency in script.payments:
        key = (f"{month_of(datetime.fromtimestamp(moment, UTC)):%Y-%m}", currency)
        revenue[key][("one_off", "recurring", "refund").index(kind)] += amount
    currencies = sorted({currency for *_, currency in script.payments})
    assert {
        (r["month"], r["currency"]): (r["one_off"], r["recurring"], r["refunds"])
        for r in tables["revenue"].records()
    } == {(f"{m:%Y-%m}", c): tuple(revenue[(f"{m:%Y-%m}", c)]) for m in months for c in currencies}

    # MRR and its movements (ChartMogul's), per currency, from each month's end state.
    ends = [datetime(m.year, m.month, 1, tzinfo=UTC) for m in months[1:]]
    ends.append(datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC))
    before = customer_mrr(script, datetime(months[0].year, months[0].month, 1, tzinfo=UTC))
    paid_ever = {key for key, amount in before.items() if amount > 0}
    expected_mrr = {}
    customers_expected = {}
    for month, end in zip(months, ends, strict=True):
        after = customer_mrr(script, end)
        figures: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 6)
        for key in set(before) | set(after):
            old, new = before.get(key, Decimal(0)), after.get(key, Decimal(0))
            row = figures[key[1]]
            if old == 0 and new > 0:
                row[0 if key not in paid_ever else 4] += new
            elif old > 0 and new > old:
                row[1] += new - old
            elif old > new > 0:
                row[2] += old - new
            elif old > 0 and new == 0:
                row[3] += old
            row[5] += new
        for currency in {c for _, c in set(before) | set(after)}:
            expected_mrr[(f"{month:%Y-%m}", currency)] = tuple(figures[currency])
        # Customers (any currency): paying at the start, new, back, churned.
        paying_before = {c for (c, _), a in before.items() if a > 0}
        paying_after = {c for (c, _), a in after.items() if a > 0}
        ever_before = {c for c, _ in paid_ever}
        customers_expected[f"{month:%Y-%m}"] = (
            len(paying_before),
            len(paying_after - paying_before - ever_before),
            len((paying_after - paying_before) & ever_before),
            len(paying_before - paying_after),
        )
        paid_ever |= {key for key, amount in after.items() if amount > 0}
        before = after
    got_mrr = {
        (r["month"], r["currency"]): (r["new"], r["expansion"], r["contraction"], r["churn"],
                                      r["reactivation"], r["mrr"])
        for r in tables["mrr"].records()
    }  # fmt: skip
    assert any(value[5] for value in expected_mrr.values()), "a shop without MRR proves little"
    # The report lists every currency in every month; the oracle only those with a subscription.
    assert {key: value for key, value in got_mrr.items() if key in expected_mrr} == expected_mrr
    assert all(value == (0,) * 6 for key, value in got_mrr.items() if key not in expected_mrr)
    assert {
        r["month"]: (r["customers_at_start"], r["new"], r["reactivated"], r["churned"])
        for r in tables["churn"].records()
    } == customers_expected
