"""Two users with a row of their own in every private table, the application role's login, a
real PgBouncer in front of the test server, and engines that connect as the application role."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, make_url
from sqlalchemy.pool import NullPool

from afilo_db.db.embedded import EmbeddedServer
from afilo_db.db.urls import sqlalchemy_url
from afilo_db.security.roles import APP_ROLE, SERVICE_ROLE
from tests.conftest import create_database, drop_database
from tests.security.pgbouncer import PgBouncer

_numbers = itertools.count()


@dataclass
class UserRows:
    clerk_user_id: str
    id: uuid.UUID
    # table -> primary keys of this user's rows there
    rows: dict[str, list[uuid.UUID]] = field(default_factory=dict)


@dataclass
class Marketplace:
    database: str
    owner_url: str
    app_url: str
    service_url: str
    product_id: uuid.UUID
    variant_ids: list[uuid.UUID]
    alice: UserRows
    bob: UserRows


def _insert(connection: psycopg.Connection[Any], table: str, values: dict[str, Any]) -> uuid.UUID:
    columns = ", ".join(values)
    placeholders = ", ".join(["%s"] * len(values))
    row = connection.execute(
        f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) RETURNING id",
        tuple(values.values()),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def add_product(
    connection: psycopg.Connection[Any], handle: str, included_in_tier: str | None
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    product = _insert(
        connection,
        "products",
        {"handle": handle, "title": handle.title(), "status": "active",
         "included_in_tier": included_in_tier},
    )  # fmt: skip
    variants = [
        _insert(
            connection,
            "product_variants",
            {
                "product_id": product,
                "sku": f"{handle.upper()}-{kind.upper()}",
                "title": kind,
                "license_type": kind,
                "price": 49,
                "seats": seats,
            },
        )
        for kind, seats in (("personal", 1), ("team", 5))
    ]
    return product, variants


def add_user(
    connection: psycopg.Connection[Any],
    name: str,
    product: uuid.UUID,
    variants: list[uuid.UUID],
) -> UserRows:
    """A user with one row in every table that holds users' data."""
    clerk_user_id = f"user_{name}000001"
    user = _insert(
        connection,
        "user_profiles",
        {"clerk_user_id": clerk_user_id, "email": f"{name}@example.com",
         "subscription_tier": "professional", "display_name": name.title()},
    )  # fmt: skip
    rows = UserRows(clerk_user_id, user, {"user_profiles": [user]})

    def add(table: str, values: dict[str, Any]) -> uuid.UUID:
        row_id = _insert(connection, table, values)
        rows.rows.setdefault(table, []).append(row_id)
        return row_id

    add("user_subscriptions",
        {"user_id": user, "stripe_subscription_id": f"sub_{name}000001",
         "stripe_price_id": "price_pro000001", "tier": "professional", "status": "active",
         "amount": 49, "current_period_start": "2026-11-01", "current_period_end": "2026-12-01"})  # fmt: skip
    purchase = add("purchases",
        {"user_id": user, "product_id": product, "variant_id": variants[0], "amount": 49,
         "stripe_payment_intent_id": f"pi_{name}000001"})  # fmt: skip
    add("user_activity_log", {"user_id": user, "actor": clerk_user_id, "action": "signed_in"})
    add("cart_items", {"user_id": user, "variant_id": variants[0]})
    add("downloads", {"user_id": user, "product_id": product, "purchase_id": purchase})
    conversation = add("chat_conversations", {"user_id": user, "title": f"{name}'s question"})
    add("chat_messages", {"conversation_id": conversation, "role": "user", "content": "Hello"})
    add("bot_analytics", {"conversation_id": conversation, "day": "2026-11-20", "messages": 1})
    add("events", {"event_type": "page.view", "user_id": user, "product_id": product})
    add("webhook_events", {"provider": "clerk", "event_id": f"msg_{name}000001",
                           "event_type": "user.created", "subject": clerk_user_id,
                           "user_id": user, "payload": "{}", "occurred_at": "2026-11-01"})  # fmt: skip
    return rows


def app_engine(url: str) -> Engine:
    # PgBouncer 1.18 in transaction mode keeps no prepared statements between transactions.
    return create_engine(
        sqlalchemy_url(url), poolclass=NullPool, connect_args={"prepare_threshold": None}
    )


@pytest.fixture(scope="module")
def marketplace(
    server: EmbeddedServer, template_database: str, app_password: str, service_password: str
) -> Iterator[Marketplace]:
    """A database of this module's own with two users, Alice and Bob."""
    name = f"rls_{os.getpid()}_{next(_numbers)}"
    owner_url = create_database(server, name, template=template_database)
    with psycopg.connect(owner_url) as connection:
        product, variants = add_product(connection, "pro-kit", "professional")
        alice = add_user(connection, "alice", product, variants)
        bob = add_user(connection, "bob", product, variants)
    yield Marketplace(
        name,
        owner_url,
        server.role_url(APP_ROLE, name),
        server.role_url(SERVICE_ROLE, name),
        product,
        variants,
        alice,
        bob,
    )
    drop_database(server, name)


@pytest.fixture(scope="session")
def pgbouncer(server: EmbeddedServer, app_password: str) -> Iterator[PgBouncer]:
    with PgBouncer(server.port, {APP_ROLE: app_password}) as bouncer:
        yield bouncer


def as_app_role(owner_url: str, password: str, role: str = APP_ROLE) -> str:
    """The same database as `owner_url`, as the application role (or another login role)."""
    return (
        make_url(owner_url)
        .set(username=role, password=password)
        .render_as_string(hide_password=False)
    )


def pooled_app_url(bouncer: PgBouncer, password: str, database: str) -> str:
    return bouncer.url(APP_ROLE, quote(password, safe=""), database)
