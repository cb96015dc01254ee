"""The demo shop's story: six months of a small marketplace, ending today.

What the customers did is told as the providers report it: Clerk's user.created for each
sign-up, Stripe's events for each subscription (trials, conversions, monthly renewals with their
invoices, upgrades, a downgrade, a cancellation, a trial that lapsed, a failed renewal and its
recovery, a customer who leaves and comes back), one-off purchases and a refund. Their behaviour
(views, carts, checkouts) is told as analytics events; what has no provider and no event (the
carts still open, downloads, chats) as rows. Every time is relative to `now`, so that the
reports, `user show` and the studio agree on any day the shop is made: MRR over several months
ending this month, a funnel with carts and purchases, subscriptions in force today.

Nothing here writes billing state itself: `afilo_db.demo` replays the messages through the
webhook path (signed, verified, ingested) and the behaviour through analytics' `ingest`.
"""

from __future__ import annotations

import calendar
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from afilo_db.data import provider_events as pe
from afilo_db.data.ids import deterministic_uuid7
from afilo_db.data.seed import (
    CHAT_TOPICS,
    DEMO_PRODUCTS,
    DEMO_SEED,
    TIER_PRICES,
    ProductPlan,
    product_plan,
)

# How far back the story begins: long enough for several months of MRR, cohorts and churn.
HISTORY_DAYS = 182
TRIAL_DAYS = 14
# A failed renewal is paid on Stripe's retry this many days later.
RETRY_DAYS = 3
CURRENCY = "usd"
PRICE_IDS = {tier: f"price_demo{tier}monthly" for tier in TIER_PRICES}


def _cents(amount: Decimal) -> int:
    return int(amount * 100)


def add_months(moment: datetime, months: int) -> datetime:
    """The same day `months` later (the month's last day when it has no such day), as Stripe
    anchors a monthly billing cycle."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(
        year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1])
    )


@dataclass(frozen=True)
class Subscription:
    """One subscription's life, in days after the shop opened."""

    tier: str
    started: int
    trial: bool = False
    converts: bool = True
    changes: tuple[tuple[int, str], ...] = ()  # (day, the tier it moves to)
    failed_renewal: int | None = None  # the renewal (1 = the first) whose payment fails once
    canceled: int | None = None


@dataclass(frozen=True)
class Persona:
    first_name: str
    last_name: str
    joined: int
    subscriptions: tuple[Subscription, ...] = ()
    purchases: tuple[tuple[int, int], ...] = ()  # (day, product index)
    refunded: tuple[int, ...] = ()  # which of the purchases are refunded, four days later
    browses: int = 3  # product views besides those that led to a purchase


PERSONAS = (
    Persona("Ada", "Lovelace", 0, (Subscription("starter", 1, trial=True,
            changes=((100, "professional"),)),), purchases=((30, 2),)),
    Persona("Grace", "Hopper", 3, (Subscription("professional", 3, failed_renewal=4),)),
    Persona("Alan", "Turing", 8, (Subscription("starter", 9, trial=True, canceled=95),)),
    Persona("Linus", "Torvalds", 15, (Subscription("enterprise", 16),)),
    Persona("Frances", "Allen", 20, purchases=((25, 5), (110, 9))),
    Persona("Ken", "Thompson", 30, (Subscription("starter", 30, canceled=80),
                                    Subscription("professional", 140))),
    Persona("Margaret", "Hamilton", 35, (Subscription("professional", 36, trial=True,
                                                      converts=False),)),
    Persona("Dennis", "Ritchie", 50, (Subscription("starter", 51),),
            purchases=((60, 7),), refunded=(0,)),
    Persona("Barbara", "Liskov", 70, (Subscription("professional", 71, trial=True,
                                                   changes=((150, "starter"),)),)),
    Persona("Edsger", "Dijkstra", 90, purchases=((140, 11),)),
    Persona("Guido", "Rossum", 120, (Subscription("professional", 121),)),
    Persona("Hedy", "Lamarr", 160, browses=6),
    Persona("Radia", "Perlman", HISTORY_DAYS - 8,
            (Subscription("starter", HISTORY_DAYS - 7, trial=True),)),
)  # fmt: skip
# Visitors who never sign up: sessions that view, some add to a cart, none buy.
ANONYMOUS_VISITORS = 24


@dataclass(frozen=True)
class ProviderMessage:
    """One event as its provider sends it, not yet signed."""

    provider: str
    event_id: str
    event_type: str
    at: datetime
    obj: dict[str, Any]

    def signed(self, secret: str, signed_at: datetime) -> pe.Delivery:
        if self.provider == "clerk":
            return pe.clerk_delivery(
                self.event_id, self.event_type, int(self.at.timestamp() * 1000), self.obj,
                secret=secret, signed_at=signed_at,
            )  # fmt: skip
        return pe.stripe_delivery(
            self.event_id, self.event_type, int(self.at.timestamp()), self.obj,
            secret=secret, signed_at=int(signed_at.timestamp()),
        )  # fmt: skip


@dataclass(frozen=True)
class Behaviour:
    """An analytics event, its user named by Clerk id (None: a visitor not signed in)."""

    event_type: str
    at: datetime
    clerk_user_id: str | None
    product_id: uuid.UUID
    session_id: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class Download:
    clerk_user_id: str
    product_id: uuid.UUID
    at: datetime
    stripe_subscription_id: str | None = None
    stripe_payment_intent_id: str | None = None


@dataclass(frozen=True)
class OpenCart:
    clerk_user_id: str
    variant_id: uuid.UUID
    at: datetime


@dataclass(frozen=True)
class Conversation:
    clerk_user_id: str
    topic: int
    at: datetime
    resolved: bool
    satisfaction: int | None


@dataclass
class DemoShop:
    opened: datetime
    messages: list[ProviderMessage] = field(default_factory=list)
    behaviour: list[Behaviour] = field(default_factory=list)
    downloads: list[Download] = field(default_factory=list)
    carts: list[OpenCart] = field(default_factory=list)
    conversations: list[Conversation] = field(default_factory=list)

    @property
    def clerk_user_ids(self) -> list[str]:
        return [m.obj["id"] for m in self.messages if m.event_type == "user.created"]


def _body(rng: random.Random, length: int) -> str:
    return "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                               k=length))  # fmt: skip


class _Teller:
    """Writes one persona's messages, each with an id of its own."""

    def __init__(self, shop: DemoShop, now: datetime, key: str, clerk_user_id: str) -> None:
        self.shop, self.now, self.key = shop, now, key
        self.clerk_user_id, self.customer = clerk_user_id, f"cus_{key}"
        self.count = 0

    def day(self, offset: float) -> datetime:
        return self.shop.opened + timedelta(days=offset)

    def stripe(self, at: datetime, event_type: str, obj: dict[str, Any]) -> None:
        self.count += 1
        self.shop.messages.append(
            ProviderMessage("stripe", f"evt_{self.key}{self.count:03d}", event_type, at, obj)
        )

    def subscription(self, number: int, plan: Subscription) -> None:
        """created, then at each period's end a renewal (or the trial's end), the changes of
        price between, and the cancellation: up to now."""
        sub_id = f"sub_{self.key}{number}"
        created = self.day(plan.started)
        tier, status = plan.tier, "trialing" if plan.trial else "active"
        trial = (created, created + timedelta(days=TRIAL_DAYS)) if plan.trial else None
        period_end = trial[1] if trial else add_months(created, 1)
        invoices = 0

        def state(moment: datetime, start: datetime, canceled: bool = False) -> dict[str, Any]:
            cents = _cents(TIER_PRICES[tier])
            return pe.subscription(
                sub_id, self.customer, self.clerk_user_id, status,
                pe.price(PRICE_IDS[tier], cents, CURRENCY, tier),
                (_unix(start), _unix(period_end)), created=_unix(created),
                trial=(_unix(trial[0]), _unix(trial[1])) if trial else None,
                canceled_at=_unix(moment) if canceled else None,
            )  # fmt: skip

        def bill(moment: datetime, start: datetime, reason: str, paid: datetime | None) -> None:
            nonlocal invoices
            invoices += 1
            amount = 0 if status == "trialing" else _cents(TIER_PRICES[tier])
            self.stripe(paid or moment, "invoice.paid" if paid else "invoice.payment_failed",
                        pe.invoice(f"in_{self.key}{number}n{invoices:02d}", sub_id, self.customer,
                                   amount=amount, currency=CURRENCY,
                                   period=(_unix(start), _unix(period_end)),
                                   billing_reason=reason,
                                   paid_at=_unix(paid) if paid else None))  # fmt: skip

        self.stripe(created, "customer.subscription.created", state(created, created))
        bill(created, created, "subscription_create", created)
        ends = self.day(plan.canceled) if plan.canceled is not None else None
        changes = [(self.day(day), to) for day, to in plan.changes]
        renewals = 0
        start = created
        while True:
            moment = min([period_end, *(at for at, _ in changes), *([ends] if ends else [])])
            if moment >= self.now:
                return
            if ends is not None and moment == ends:
                status = "canceled"
                self.stripe(moment, "customer.subscription.deleted", state(moment, start, True))
                return
            if changes and moment == changes[0][0]:
                tier = changes.pop(0)[1]
                self.stripe(moment, "customer.subscription.updated", state(moment, start))
                continue
            if status == "trialing" and not plan.converts:
                # No payment method by the trial's end: Stripe cancels the subscription.
                status = "canceled"
                self.stripe(moment, "customer.subscription.deleted", state(moment, start, True))
                return
            renewals += int(status != "trialing")
            start, period_end = period_end, add_months(period_end, 1)
            reason = "subscription_cycle"
            if renewals == plan.failed_renewal:
                status = "past_due"
                self.stripe(moment, "customer.subscription.updated", state(moment, start))
                bill(moment, start, reason, None)
                moment += timedelta(days=RETRY_DAYS)
                if moment >= self.now:
                    return
            status = "active"
            self.stripe(moment, "customer.subscription.updated", state(moment, start))
            bill(moment, start, reason, moment + timedelta(seconds=5))


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


def _sellable(plan: ProductPlan) -> bool:
    return plan.status == "active"


def demo_shop(now: datetime, seed_value: int = DEMO_SEED) -> DemoShop:
    """The whole story up to `now` (aware), the same for the same `now` and seed."""
    now = now.astimezone(UTC)
    shop = DemoShop(opened=now - timedelta(days=HISTORY_DAYS))
    plans = [product_plan(seed_value, index) for index in range(DEMO_PRODUCTS)]
    sellable = [plan for plan in plans if _sellable(plan)]
    for index, persona in enumerate(PERSONAS):
        rng = random.Random(f"{seed_value}:demo persona:{index}")
        key = f"demo{index:02d}{_body(rng, 10)}"
        clerk_user_id = f"user_{key}"
        teller = _Teller(shop, now, key, clerk_user_id)
        joined = teller.day(persona.joined)
        email = f"{persona.first_name}.{persona.last_name}@example.com".lower()
        shop.messages.append(ProviderMessage(
            "clerk", f"msg_{key}", "user.created", joined,
            pe.clerk_user(clerk_user_id, email, int(joined.timestamp() * 1000),
                          first_name=persona.first_name, last_name=persona.last_name)))  # fmt: skip
        for number, plan in enumerate(persona.subscriptions):
            teller.subscription(number, plan)
        _purchases(shop, teller, persona, sellable)
        _browsing(shop, rng, teller, persona, sellable, plans)
    _visitors(shop, now, seed_value, sellable)
    shop.messages.sort(key=lambda message: message.at)
    shop.behaviour.sort(key=lambda event: event.at)
    return shop


def _purchases(
    shop: DemoShop, teller: _Teller, persona: Persona, sellable: list[ProductPlan]
) -> None:
    """Each purchase as the visitor lived it (a view, the cart, the checkout) and as Stripe
    reported it (the session, its payment), then its download; some refunded."""
    user, session = teller.clerk_user_id, f"demo-{teller.key}"
    for number, (day, product_index) in enumerate(persona.purchases):
        plan = sellable[product_index % len(sellable)]
        variant = plan.variants[0]
        price_id, cents = variant.column("stripe_price_id"), _cents(variant.price)
        at = teller.day(day)
        payment = f"pi_{teller.key}{number}"
        for event_type, offset, properties in (
            ("product.viewed", 0, {"source": "web"}),
            ("cart.item_added", 3, {"source": "web", "quantity": 1}),
            ("checkout.completed", 9, {"source": "web", "amount": str(variant.price),
                                       "currency": CURRENCY.upper()}),
        ):  # fmt: skip
            shop.behaviour.append(Behaviour(event_type, at + timedelta(minutes=offset), user,
                                            plan.id, session, properties))  # fmt: skip
        paid = at + timedelta(minutes=9)
        teller.stripe(paid, "checkout.session.completed", pe.checkout_session(
            f"cs_{teller.key}{number}", payment, user, teller.customer, amount=cents,
            currency=CURRENCY, stripe_price_id=price_id, created=_unix(at)))  # fmt: skip
        teller.stripe(paid + timedelta(seconds=2), "payment_intent.succeeded", pe.payment_intent(
            payment, user, teller.customer, amount=cents, currency=CURRENCY,
            stripe_price_id=price_id, created=_unix(at)))  # fmt: skip
        if number in persona.refunded:
            teller.stripe(paid + timedelta(days=4), "charge.refunded", pe.refunded_charge(
                f"ch_{teller.key}{number}", payment, amount=cents, refunded=cents,
                currency=CURRENCY))  # fmt: skip
        else:
            shop.downloads.append(Download(user, plan.id, paid + timedelta(minutes=5),
                                           stripe_payment_intent_id=payment))  # fmt: skip


def _browsing(
    shop: DemoShop,
    rng: random.Random,
    teller: _Teller,
    persona: Persona,
    sellable: list[ProductPlan],
    plans: list[ProductPlan],
) -> None:
    """Views besides the purchases; a cart left open; what a subscription lets them download;
    a question to the bot."""
    user, session = teller.clerk_user_id, f"demo-{teller.key}"
    now_day = (teller.now - shop.opened).days
    for _ in range(persona.browses):
        at = teller.day(rng.uniform(persona.joined, now_day))
        if at < teller.now:
            plan = rng.choice(sellable)
            shop.behaviour.append(Behaviour("product.viewed", at, user, plan.id, session,
                                            {"source": rng.choice(("web", "app", "email"))}))  # fmt: skip
    plan = rng.choice(sellable)
    at = teller.now - timedelta(days=rng.uniform(1, 10))
    if at > teller.day(persona.joined):
        shop.behaviour.append(Behaviour("product.viewed", at, user, plan.id, session,
                                        {"source": "web"}))  # fmt: skip
        shop.behaviour.append(Behaviour("cart.item_added", at + timedelta(minutes=2), user,
                                        plan.id, session, {"source": "web", "quantity": 1}))  # fmt: skip
        shop.carts.append(OpenCart(user, plan.variants[0].column("id"), at + timedelta(minutes=2)))
    for number, subscription in enumerate(persona.subscriptions):
        included = [plan for plan in plans if plan.included_in_tier == subscription.tier]
        at = teller.day(subscription.started + 1)
        if included and at < teller.now:
            shop.downloads.append(Download(user, rng.choice(included).id, at,
                                           stripe_subscription_id=f"sub_{teller.key}{number}"))  # fmt: skip
    if rng.random() < 0.6:
        at = teller.day(rng.uniform(persona.joined, now_day))
        if at < teller.now:
            shop.conversations.append(Conversation(user, rng.randrange(len(CHAT_TOPICS)), at,
                                                   rng.random() < 0.7, rng.choice((None, 4, 5))))  # fmt: skip


def _visitors(shop: DemoShop, now: datetime, seed_value: int, sellable: list[ProductPlan]) -> None:
    """Visitors not signed in: each views a product or two; some put one in a cart."""
    for visitor in range(ANONYMOUS_VISITORS):
        rng = random.Random(f"{seed_value}:demo visitor:{visitor}")
        session = f"demo-visitor-{visitor:03d}"
        at = now - timedelta(days=rng.uniform(0.5, HISTORY_DAYS))
        plan = rng.choice(sellable)
        for view in range(rng.randint(1, 2)):
            shop.behaviour.append(Behaviour("product.viewed", at + timedelta(minutes=view), None,
                                            plan.id, session, {"source": "web"}))  # fmt: skip
        if rng.random() < 0.4:
            shop.behaviour.append(Behaviour("cart.item_added", at + timedelta(minutes=4), None,
                                            plan.id, session, {"source": "web", "quantity": 1}))  # fmt: skip


def behaviour_events(shop: DemoShop, user_ids: dict[str, uuid.UUID]) -> Iterator[dict[str, Any]]:
    """The behaviour as analytics `ingest` takes it: users by their id in user_profiles."""
    for event in shop.behaviour:
        yield {
            "name": event.event_type,
            "occurred_at": event.at,
            "user_id": user_ids[event.clerk_user_id] if event.clerk_user_id else None,
            "product_id": event.product_id,
            "session_id": event.session_id,
            "properties": event.properties,
        }


def user_ids(
    connection: psycopg.Connection[Any], clerk_user_ids: list[str]
) -> dict[str, uuid.UUID]:
    """The profiles Clerk's events created, by Clerk id."""
    rows = connection.execute(
        "SELECT clerk_user_id, id FROM user_profiles WHERE clerk_user_id = ANY(%s)",
        (clerk_user_ids,),
    ).fetchall()
    return {clerk_user_id: user_id for clerk_user_id, user_id in rows}


def write_rows(
    connection: psycopg.Connection[Any], shop: DemoShop, users: dict[str, uuid.UUID]
) -> None:
    """What no provider reports and no event records: the carts still open, the downloads (of
    what the mirror says each user may download), the chats with the bot."""
    rng = random.Random(f"{DEMO_SEED}:demo rows")
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO cart_items (id, user_id, variant_id, quantity, created_at, updated_at)"
            " VALUES (%s, %s, %s, 1, %s, %s)",
            [(deterministic_uuid7(cart.at, rng), users[cart.clerk_user_id], cart.variant_id,
              cart.at, cart.at) for cart in shop.carts],
        )  # fmt: skip
        cursor.executemany(
            "INSERT INTO downloads (id, user_id, product_id, subscription_id, purchase_id,"
            " ip_address, created_at) VALUES (%s, %s, %s,"
            " (SELECT id FROM user_subscriptions WHERE stripe_subscription_id = %s"
            "  ORDER BY state_as_of LIMIT 1),"
            " (SELECT id FROM purchases WHERE stripe_payment_intent_id = %s),"
            " '203.0.113.7', %s)",
            [(deterministic_uuid7(download.at, rng), users[download.clerk_user_id],
              download.product_id, download.stripe_subscription_id,
              download.stripe_payment_intent_id, download.at) for download in shop.downloads],
        )  # fmt: skip
        for chat in shop.conversations:
            _, question, answer = CHAT_TOPICS[chat.topic]
            conversation_id = deterministic_uuid7(chat.at, rng)
            cursor.execute(
                "INSERT INTO chat_conversations (id, user_id, title, status, created_at,"
                " updated_at) VALUES (%s, %s, %s, %s, %s, %s)",
                (conversation_id, users[chat.clerk_user_id], question,
                 "resolved" if chat.resolved else "open", chat.at, chat.at),
            )  # fmt: skip
            answered = chat.at + timedelta(seconds=2)
            cursor.executemany(
                "INSERT INTO chat_messages (id, conversation_id, role, content, created_at)"
                " VALUES (%s, %s, %s, %s, %s)",
                [(deterministic_uuid7(chat.at, rng), conversation_id, "user", f"Hi! {question}?",
                  chat.at),
                 (deterministic_uuid7(answered, rng), conversation_id, "assistant", answer,
                  answered)],
            )  # fmt: skip
            cursor.execute(
                "INSERT INTO bot_analytics (id, conversation_id, day, messages, answered,"
                " resolved, avg_latency_ms, satisfaction, created_at)"
                " VALUES (%s, %s, %s, 2, 1, %s, %s, %s, %s)",
                (deterministic_uuid7(chat.at, rng), conversation_id, chat.at.date(),
                 chat.resolved, rng.randint(400, 2500), chat.satisfaction, chat.at),
            )  # fmt: skip
