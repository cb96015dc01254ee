"""Deterministic marketplace data, written with COPY.

Every row is derived from (seed, kind, index) alone, so a table can be generated in its own pass
without holding the catalog in memory, and the same seed always gives the same data (ids and
timestamps included). `afilo-db up` takes its catalog at a small scale, without customers: the
demo shop's customers come through the webhooks (`data.demo_shop`, `afilo_db.demo`).
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from afilo_db import rules
from afilo_db.data.ids import deterministic_uuid7
from afilo_db.knowledge.embedders import get_embedder
from afilo_db.knowledge.ingestion import ingest
from afilo_db.knowledge.sample import SAMPLE_PREFIX, sample_documents

# A fixed epoch: the data does not depend on the day it is generated.
BASE_TIME = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
DEMO_PRODUCTS = 24
DEMO_SEED = 2026
# Users join over a few weeks and act for up to four months after: partitions for a year cover it.
EVENT_MONTHS_COVERED = 12

ProgressCallback = Callable[[str, int, bool], None]
"""progress(table, rows written into it so far, whether the table is complete)."""

# Every table the seed writes, in the order it writes them: the real total of a progress bar
# (the number of rows is known only once they are generated).
SEED_TABLES = (
    "products", "product_variants", "product_pricing_tiers", "product_collections",
    "product_collection_products", "user_profiles", "webhook_events", "user_activity_log",
    "user_subscriptions",
    "purchases", "cart_items", "downloads", "chat_conversations", "chat_messages",
    "bot_analytics", "events", "knowledge_base",
)  # fmt: skip
Row = tuple[Any, ...]

ADJECTIVES = (
    "Aurora", "Nimbus", "Quartz", "Atlas", "Helix", "Vertex", "Lumen", "Orbit", "Cobalt",
    "Summit", "Pulse", "Nova", "Ember", "Harbor", "Zenith", "Cascade", "Prism", "Meridian",
    "Solstice", "Granite",
)  # fmt: skip
KINDS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("SaaS Starter Kit", ("saas", "boilerplate", "billing"), ("nextjs", "typescript", "stripe", "postgresql")),
    ("Admin Dashboard", ("dashboard", "admin", "charts"), ("react", "tailwind", "typescript")),
    ("Landing Page Template", ("landing-page", "marketing"), ("astro", "tailwind")),
    ("UI Component Library", ("ui-kit", "components"), ("react", "radix-ui", "tailwind")),
    ("Email Template Pack", ("email", "marketing"), ("mjml", "html")),
    ("Icon Set", ("icons", "design"), ("svg", "figma")),
    ("Design System", ("design-system", "figma", "ui-kit"), ("figma",)),
    ("API Boilerplate", ("api", "backend", "boilerplate"), ("python", "fastapi", "postgresql")),
    ("Mobile App Template", ("mobile", "template"), ("react-native", "expo", "typescript")),
    ("Chrome Extension Starter", ("browser-extension", "starter"), ("typescript", "vite")),
    ("Analytics Plugin", ("analytics", "plugin"), ("javascript", "clickhouse")),
    ("Auth Module", ("auth", "security"), ("nextjs", "clerk", "typescript")),
)  # fmt: skip
COLLECTIONS = (
    ("starter-kits", "Starter kits", "Everything to launch a product this week."),
    ("design-resources", "Design resources", "Icons, design systems and UI kits."),
    ("developer-tools", "Developer tools", "Boilerplates, modules and plugins."),
    ("marketing", "Marketing", "Landing pages and email templates that convert."),
    ("staff-picks", "Staff picks", "What the Afilo team uses itself."),
)
FIRST_NAMES = ("Ada", "Grace", "Alan", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Radia",
               "Guido", "Frances", "Edsger", "Hedy", "Tim", "Katherine", "Donald")  # fmt: skip
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Ritchie", "Liskov",
              "Thompson", "Perlman", "Rossum", "Allen", "Dijkstra", "Lamarr", "Berners", "Johnson",
              "Knuth")  # fmt: skip
TIER_PRICES = {"starter": Decimal("19.00"), "professional": Decimal("49.00"),
               "enterprise": Decimal("199.00")}  # fmt: skip
# What the seeded conversations are about: (content type, question, the bot's answer).
CHAT_TOPICS = (
    ("policy", "Refund policy", "You can ask for a refund within 14 days of a purchase if you have not downloaded the product. Subscriptions can be canceled at any time and stay active until the end of the paid period."),
    ("policy", "Licence types explained", "A personal licence covers one person. A team licence covers 2 to 25 seats. A business licence is priced per seat with volume discounts. An enterprise licence has unlimited seats and allows redistribution."),
    ("faq", "How do I download a product I bought?", "Open your library, choose the product and press download. One-off purchases can be downloaded forever; subscription downloads are available while the subscription is active."),
    ("faq", "Can I upgrade my subscription tier?", "Yes. Upgrading from starter to professional or enterprise takes effect at once and is prorated on your next invoice."),
    ("faq", "Which payment methods do you accept?", "We accept cards, Apple Pay and Google Pay through Stripe. Invoices are available in your billing history."),
    ("guide", "Setting up a starter kit", "Clone the repository, copy the example environment file, set your database URL and run the migrations. The README of each kit lists its commands."),
    ("troubleshooting", "My download link expired", "Download links are valid for 24 hours. Open your library again to get a new link; your entitlement has not changed."),
    ("troubleshooting", "Payment failed", "If a payment fails, Stripe retries it for up to two weeks. Update your card in the billing portal to keep your subscription active."),
)  # fmt: skip


def _rng(seed: int, kind: str, index: int) -> random.Random:
    return random.Random(f"{seed}:{kind}:{index}")


def _external_id(prefix: str, rng: random.Random, length: int = 24) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "_" + "".join(rng.choices(alphabet, k=length))


def _money(value: float) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _slug(text: str) -> str:
    return "-".join(text.lower().replace(".", "").split())


@dataclass(frozen=True)
class VariantPlan:
    row: Row
    tiers: tuple[Row, ...]
    price: Decimal

    def column(self, name: str) -> Any:
        return self.row[VARIANT_COLUMNS.index(name)]


@dataclass(frozen=True)
class ProductPlan:
    id: uuid.UUID
    row: Row
    variants: tuple[VariantPlan, ...]
    status: str
    included_in_tier: str | None
    title: str
    description: str


PRODUCT_COLUMNS = ("id", "handle", "title", "description", "tags", "tech_stack", "status",
                   "stripe_product_id", "included_in_tier", "created_at", "updated_at")  # fmt: skip
VARIANT_COLUMNS = ("id", "product_id", "product_status", "sku", "title", "license_type", "price",
                   "currency", "stripe_price_id", "available_for_sale", "seats", "duration_days",
                   "redistribution", "created_at", "updated_at")  # fmt: skip
TIER_COLUMNS = ("id", "variant_id", "license_type", "min_quantity", "max_quantity", "unit_price",
                "created_at")  # fmt: skip


def product_plan(seed: int, index: int) -> ProductPlan:
    rng = _rng(seed, "product", index)
    adjective = ADJECTIVES[index % len(ADJECTIVES)]
    kind, tags, stack = KINDS[(index // len(ADJECTIVES)) % len(KINDS)]
    generation = index // (len(ADJECTIVES) * len(KINDS))
    title = f"{adjective} {kind}" + (f" {generation + 1}" if generation else "")
    created = BASE_TIME + timedelta(seconds=index * 7)
    product_id = deterministic_uuid7(created, rng)
    status = rng.choices(rules.PRODUCT_STATUSES, weights=(7, 90, 3))[0]
    tier = rng.choices((None, "starter", "professional", "enterprise"), weights=(3, 3, 3, 1))[0]
    description = (
        f"{title}: a production-ready {kind.lower()} built with {', '.join(stack)}. "
        f"Includes documentation, lifetime updates and examples for {rng.choice(tags)} projects."
    )
    base_price = _money(rng.choice((19, 29, 39, 49, 59, 79, 99, 129, 149)) - 0.01)
    variants: list[VariantPlan] = []
    licence_plan: list[tuple[str, int | None, Decimal]] = [("personal", 1, base_price)]
    if rng.random() < 0.6:
        licence_plan.append(("team", rng.choice((5, 10, 25)), _money(float(base_price) * 3)))
    if rng.random() < 0.35:
        licence_plan.append(("business", 1, _money(float(base_price) * 0.8)))
    if rng.random() < 0.15:
        licence_plan.append(("enterprise", None, _money(float(base_price) * 20)))
    for slot, (license_type, seats, price) in enumerate(licence_plan):
        variant_id = deterministic_uuid7(created, rng)
        tiers: list[Row] = []
        if license_type == "business":
            bounds = ((1, 9, 1.0), (10, 49, 0.9), (50, None, 0.8))
            for low, high, factor in bounds:
                tier_id = deterministic_uuid7(created, rng)
                tiers.append((tier_id, variant_id, license_type, low, high,
                              _money(float(price) * factor), created))  # fmt: skip
        variants.append(
            VariantPlan(
                row=(
                    variant_id,
                    product_id,
                    status,
                    f"AF-{index + 1:07d}-{license_type[:3].upper()}",
                    f"{license_type.capitalize()} licence",
                    license_type,
                    price,
                    "USD",
                    _external_id("price", rng),
                    rng.random() > 0.05 or slot == 0,
                    seats,
                    None if rng.random() < 0.8 else 365,
                    license_type == "enterprise",
                    created,
                    created,
                ),
                tiers=tuple(tiers),
                price=price,
            )
        )
    row = (
        product_id, _slug(title), title, description, list(tags), list(stack), status,
        _external_id("prod", rng), tier, created, created,
    )  # fmt: skip
    return ProductPlan(product_id, row, tuple(variants), status, tier, title, description)


@dataclass(frozen=True)
class SeedCounts:
    products: int
    users: int


def _users_for(products: int) -> int:
    return max(8, products // 20)


class _Writer:
    """COPY rows into one table, reporting progress every 1000 rows and when the table is done."""

    def __init__(self, connection: psycopg.Connection[Any], progress: ProgressCallback) -> None:
        self.connection = connection
        self.progress = progress

    def copy(self, table: str, columns: Sequence[str], rows: Iterator[Row]) -> int:
        count = 0
        statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        with self.connection.cursor().copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
                if count % 1000 == 0:
                    self.progress(table, count, False)
        self.progress(table, count, True)
        return count


def seed(
    connection: psycopg.Connection[Any],
    *,
    products: int,
    seed_value: int = DEMO_SEED,
    users: int | None = None,
    progress: ProgressCallback = lambda _table, _rows, _done: None,
) -> SeedCounts:
    """Write a catalog of `products` products and the users, billing, carts, chats and events that
    go with it, in the caller's transaction. `users`: how many (by default one per 20 products,
    at least 8); none for a catalog whose customers come another way (the demo shop's, through
    the webhooks)."""
    writer = _Writer(connection, progress)

    def plans() -> Iterator[ProductPlan]:
        return (product_plan(seed_value, index) for index in range(products))

    connection.execute(
        "SELECT ensure_event_partitions(%s, %s)", (BASE_TIME.date(), EVENT_MONTHS_COVERED)
    )

    writer.copy("products", PRODUCT_COLUMNS, (plan.row for plan in plans()))
    writer.copy("product_variants", VARIANT_COLUMNS,
                (v.row for plan in plans() for v in plan.variants))  # fmt: skip
    writer.copy("product_pricing_tiers", TIER_COLUMNS,
                (t for plan in plans() for v in plan.variants for t in v.tiers))  # fmt: skip
    _seed_collections(writer, seed_value, products)
    users = _users_for(products) if users is None else users
    _seed_users(writer, seed_value, users, products)
    _seed_knowledge_base(connection, seed_value, progress)
    return SeedCounts(products=products, users=users)


def _seed_collections(writer: _Writer, seed_value: int, products: int) -> None:
    collection_ids = []
    rows = []
    for index, (handle, title, description) in enumerate(COLLECTIONS):
        created = BASE_TIME + timedelta(minutes=index)
        collection_id = deterministic_uuid7(created, _rng(seed_value, "collection", index))
        collection_ids.append(collection_id)
        rows.append((collection_id, handle, title, description, created, created))
    writer.copy("product_collections",
                ("id", "handle", "title", "description", "created_at", "updated_at"),
                iter(rows))  # fmt: skip

    def memberships() -> Iterator[Row]:
        positions = [0] * len(COLLECTIONS)
        for index in range(products):
            plan = product_plan(seed_value, index)
            kind_index = (index // len(ADJECTIVES)) % len(KINDS)
            collection = (0, 2, 3, 1, 3, 1, 1, 2, 0, 2, 2, 2)[kind_index]
            targets = [collection] + ([4] if index % 11 == 0 else [])
            for target in targets:
                yield (collection_ids[target], plan.id, positions[target], BASE_TIME)
                positions[target] += 1

    writer.copy("product_collection_products",
                ("collection_id", "product_id", "position", "added_at"), memberships())  # fmt: skip


def _clerk_user_created(clerk_id: str, email: str, first: str, last: str, joined: datetime) -> str:
    """The body of Clerk's user.created event for a seeded user."""
    at = int(joined.timestamp() * 1000)
    address = {"id": "idn_" + clerk_id[5:], "email_address": email}
    data = {"id": clerk_id, "object": "user", "first_name": first, "last_name": last,
            "email_addresses": [address], "primary_email_address_id": address["id"],
            "created_at": at, "updated_at": at}  # fmt: skip
    return json.dumps({"object": "event", "type": "user.created", "timestamp": at, "data": data})


def _stripe_event(event_id: str, event_type: str, obj: dict[str, Any], at: datetime) -> str:
    """The body of a Stripe event about `obj`, created at `at`."""
    return json.dumps({"id": event_id, "object": "event", "type": event_type,
                       "created": int(at.timestamp()), "data": {"object": obj}})  # fmt: skip


def _seed_users(writer: _Writer, seed_value: int, users: int, products: int) -> None:
    profile_rows: list[Row] = []
    subscription_rows: list[Row] = []
    purchase_rows: list[Row] = []
    cart_rows: list[Row] = []
    download_rows: list[Row] = []
    conversation_rows: list[Row] = []
    message_rows: list[Row] = []
    analytics_rows: list[Row] = []
    event_rows: list[Row] = []
    activity_rows: list[Row] = []
    webhook_rows: list[Row] = []

    for index in range(users):
        rng = _rng(seed_value, "user", index)
        joined = BASE_TIME + timedelta(minutes=index * 7)
        user_id = deterministic_uuid7(joined, rng)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        tier = rng.choices(rules.SUBSCRIPTION_TIERS, weights=(5, 3, 2, 1))[0]
        clerk_id = _external_id("user", rng, 27)
        customer = _external_id("cus", rng, 14) if tier != "free" else None
        email = f"{first}.{last}{index + 1}@example.com".lower()
        # The profile as Clerk's user.created event set it.
        message_id = _external_id("msg", rng, 27)
        profile_rows.append((user_id, clerk_id, email, f"{first} {last}", tier, customer,
                             message_id, joined, joined, joined))  # fmt: skip
        webhook_rows.append((deterministic_uuid7(joined, rng), "clerk", message_id, "user.created",
                             clerk_id, user_id, _clerk_user_created(clerk_id, email, first, last,
                             joined), joined, joined))  # fmt: skip
        activity_rows.append((deterministic_uuid7(joined, rng), user_id, clerk_id, "user.signed_up",
                              "user_profiles", str(user_id), joined))  # fmt: skip

        subscription_id = None
        if tier != "free":
            subscription_id = deterministic_uuid7(joined, rng)
            start = joined + timedelta(days=1)
            stripe_subscription = _external_id("sub", rng, 14)
            subscription_rows.append((
                subscription_id, user_id, stripe_subscription, _external_id("price", rng),
                tier, "active", TIER_PRICES[tier], "USD", start, start + timedelta(days=30),
                False, None, start, start,
            ))  # fmt: skip
            # The subscription's first invoice as Stripe's event (the revenue report reads the
            # payment its trigger records), from a random stream of its own so that the rest of
            # the seed stays as it was.
            billing = _rng(seed_value, "billing", index)
            event_id = _external_id("evt", billing, 24)
            invoice = {"id": _external_id("in", billing, 14), "object": "invoice",
                       "customer": customer, "subscription": stripe_subscription,
                       "amount_paid": int(TIER_PRICES[tier] * 100), "currency": "usd",
                       "status_transitions": {"paid_at": int(start.timestamp())}}  # fmt: skip
            webhook_rows.append((deterministic_uuid7(start, billing), "stripe", event_id,
                                 "invoice.paid", stripe_subscription, user_id,
                                 _stripe_event(event_id, "invoice.paid", invoice, start),
                                 start, start))  # fmt: skip

        bought: set[int] = set()
        for _ in range(rng.randint(0, 3) if products else 0):
            product_index = rng.randrange(products)
            if product_index in bought:
                continue
            bought.add(product_index)
            plan = product_plan(seed_value, product_index)
            variant = plan.variants[0]
            at = joined + timedelta(days=rng.randint(1, 60))
            purchase_id = deterministic_uuid7(at, rng)
            payment_intent = _external_id("pi", rng, 24)
            purchase_rows.append((purchase_id, user_id, plan.id, variant.column("id"), 1,
                                  variant.price, "USD", "paid", payment_intent,
                                  _external_id("cs", rng, 24), at))  # fmt: skip
            # Stripe's event for the payment (the revenue report reads what its trigger
            # records), from a stream of its own so that the rest of the seed stays as it was.
            payments = _rng(seed_value, f"payment {product_index}", index)
            event_id = _external_id("evt", payments, 24)
            payment = {"id": payment_intent, "object": "payment_intent", "customer": customer,
                       "amount_received": int(variant.price * 100), "currency": "usd"}  # fmt: skip
            webhook_rows.append((deterministic_uuid7(at, payments), "stripe", event_id,
                                 "payment_intent.succeeded", payment_intent, user_id,
                                 _stripe_event(event_id, "payment_intent.succeeded", payment, at),
                                 at, at))  # fmt: skip
            download_rows.append((deterministic_uuid7(at, rng), user_id, plan.id, None,
                                  purchase_id, "203.0.113.7", at + timedelta(minutes=5)))  # fmt: skip
            event_rows.append((deterministic_uuid7(at, rng), at, "checkout.completed", user_id,
                               plan.id, f"s{index}", '{"source": "web"}'))  # fmt: skip

        in_cart: set[int] = set()
        for _ in range(rng.randint(0, 3) if products else 0):
            product_index = rng.randrange(products)
            if product_index in in_cart:
                continue
            in_cart.add(product_index)
            plan = product_plan(seed_value, product_index)
            variant = rng.choice(plan.variants)
            at = joined + timedelta(days=rng.randint(1, 90))
            quantity = (
                rng.randint(1, 3)
                if variant.column("license_type") in rules.TIERED_LICENSE_TYPES
                else 1
            )
            cart_rows.append(
                (deterministic_uuid7(at, rng), user_id, variant.column("id"), quantity, at, at)
            )
            event_rows.append((deterministic_uuid7(at, rng), at, "cart.item_added", user_id,
                               plan.id, f"s{index}", '{"source": "web"}'))  # fmt: skip

        if subscription_id is not None and products:
            rank = rules.SUBSCRIPTION_TIERS.index(tier)
            for _ in range(rng.randint(1, 3)):
                plan = product_plan(seed_value, rng.randrange(products))
                included = plan.included_in_tier
                if included is None or rules.SUBSCRIPTION_TIERS.index(included) > rank:
                    continue
                at = joined + timedelta(days=rng.randint(2, 25))
                download_rows.append((deterministic_uuid7(at, rng), user_id, plan.id,
                                      subscription_id, None, "198.51.100.20", at))  # fmt: skip

        for conversation in range(rng.randint(0, 2)):
            started = joined + timedelta(days=rng.randint(1, 30), minutes=conversation)
            conversation_id = deterministic_uuid7(started, rng)
            article = CHAT_TOPICS[rng.randrange(len(CHAT_TOPICS))]
            resolved = rng.random() < 0.7
            conversation_rows.append((conversation_id, user_id, article[1],
                                      "resolved" if resolved else "open", started, started))  # fmt: skip
            turns = ((f"Hi! {article[1]}?", article[2]),
                     ("Thanks, that helps.", "Glad to help. Anything else?"))  # fmt: skip
            for turn, (question, answer) in enumerate(turns[: rng.randint(1, 2)]):
                asked = started + timedelta(minutes=turn * 2)
                message_rows.append((deterministic_uuid7(asked, rng), conversation_id, "user",
                                     question, asked))  # fmt: skip
                answered = asked + timedelta(seconds=2)
                message_rows.append((deterministic_uuid7(answered, rng), conversation_id,
                                     "assistant", answer, answered))  # fmt: skip
            analytics_rows.append((deterministic_uuid7(started, rng), conversation_id,
                                   started.date(), 4, 2, resolved, rng.randint(400, 2500),
                                   rng.choice((None, 3, 4, 5)), started))  # fmt: skip

        for view in range(rng.randint(2, 6) if products else 0):
            at = joined + timedelta(days=rng.randint(0, 120), minutes=view)
            plan = product_plan(seed_value, rng.randrange(products))
            event_rows.append((deterministic_uuid7(at, rng), at, "product.viewed", user_id,
                               plan.id, f"s{index}", '{"source": "web"}'))  # fmt: skip

    writer.copy("user_profiles", ("id", "clerk_user_id", "email", "display_name",
                "subscription_tier", "stripe_customer_id", "state_event_id", "state_as_of",
                "created_at", "updated_at"), iter(profile_rows))  # fmt: skip
    writer.copy("webhook_events", ("id", "provider", "event_id", "event_type", "subject",
                "user_id", "payload", "occurred_at", "received_at"), iter(webhook_rows))  # fmt: skip
    writer.copy("user_activity_log", ("id", "user_id", "actor", "action", "entity_type",
                "entity_id", "created_at"), iter(activity_rows))  # fmt: skip
    writer.copy("user_subscriptions", ("id", "user_id", "stripe_subscription_id",
                "stripe_price_id", "tier", "status", "amount", "currency", "current_period_start",
                "current_period_end", "cancel_at_period_end", "canceled_at", "created_at",
                "updated_at"), iter(subscription_rows))  # fmt: skip
    writer.copy("purchases", ("id", "user_id", "product_id", "variant_id", "quantity", "amount",
                "currency", "status", "stripe_payment_intent_id", "stripe_checkout_session_id",
                "created_at"), iter(purchase_rows))  # fmt: skip
    writer.copy("cart_items", ("id", "user_id", "variant_id", "quantity", "created_at",
                "updated_at"), iter(cart_rows))  # fmt: skip
    writer.copy("downloads", ("id", "user_id", "product_id", "subscription_id", "purchase_id",
                "ip_address", "created_at"), iter(download_rows))  # fmt: skip
    writer.copy("chat_conversations", ("id", "user_id", "title", "status", "created_at",
                "updated_at"), iter(conversation_rows))  # fmt: skip
    writer.copy("chat_messages", ("id", "conversation_id", "role", "content", "created_at"),
                iter(message_rows))  # fmt: skip
    writer.copy("bot_analytics", ("id", "conversation_id", "day", "messages", "answered",
                "resolved", "avg_latency_ms", "satisfaction", "created_at"),
                iter(analytics_rows))  # fmt: skip
    writer.copy("events", ("id", "occurred_at", "event_type", "user_id", "product_id",
                "session_id", "properties"), iter(event_rows))  # fmt: skip


def _seed_knowledge_base(
    connection: psycopg.Connection[Any], seed_value: int, progress: ProgressCallback
) -> None:
    """The sample knowledge base, embedded by the real model (a process embeds each distinct
    text once). The products' own passages are queued by the catalog triggers as the products
    are written: `kb sync` (and `afilo-db up`, for the demo catalog) embeds them."""
    report = ingest(
        connection,
        sample_documents(),
        embedder=get_embedder(),
        remove_missing_under=[SAMPLE_PREFIX],
    )
    # Ids and times from the seed, as everywhere else: the same seed gives the same rows.
    rows = connection.execute(
        "SELECT id FROM knowledge_base WHERE starts_with(source, %s) ORDER BY source, chunk_index",
        (SAMPLE_PREFIX,),
    ).fetchall()
    with connection.cursor() as cursor:
        cursor.executemany(
            "UPDATE knowledge_base SET id = %s, created_at = %s, updated_at = %s WHERE id = %s",
            [
                (deterministic_uuid7(BASE_TIME, _rng(seed_value, "knowledge", index)),
                 BASE_TIME, BASE_TIME, row[0])
                for index, row in enumerate(rows)
            ],
        )  # fmt: skip
    connection.execute("UPDATE knowledge_sync_queue SET queued_at = %s", (BASE_TIME,))
    progress("knowledge_base", report.chunks, True)


def product_record(plan: ProductPlan) -> dict[str, Any]:
    """The product as a catalog-import record (ProductInput's shape, JSON-ready: money as text)."""
    product = dict(zip(PRODUCT_COLUMNS, plan.row, strict=True))
    variants = []
    for variant in plan.variants:
        values = dict(zip(VARIANT_COLUMNS, variant.row, strict=True))
        variants.append(
            {
                **{key: values[key] for key in ("sku", "title", "license_type", "currency",
                                               "stripe_price_id", "available_for_sale", "seats",
                                               "duration_days", "redistribution")},
                "price": str(values["price"]),
                "tiers": [
                    {"min_quantity": tier[3], "max_quantity": tier[4], "unit_price": str(tier[5])}
                    for tier in variant.tiers
                ],
            }
        )  # fmt: skip
    return {
        **{key: product[key] for key in ("handle", "title", "description", "tags", "tech_stack",
                                        "status", "stripe_product_id", "included_in_tier")},
        "variants": variants,
    }  # fmt: skip
