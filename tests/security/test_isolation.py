"""The isolation matrix: for every private table and every command, Alice acting on Bob's rows,
and the application with no user set, get nothing or a permission error, and Bob's rows stay as
they were. Run directly against the server and again through a real PgBouncer."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from afilo_db.security import as_user
from afilo_db.security.policies import ALL_COMMANDS, PRIVATE_TABLES, TABLES, Command
from tests.security.conftest import Marketplace, UserRows, app_engine, pooled_app_url
from tests.security.pgbouncer import PgBouncer

ROUTES = ("direct", "pgbouncer")
ACTORS = ("alice", "no user")


def update_column(table: str) -> str:
    """A column the application may update where it may update at all, so that the policy, not
    a missing column grant, is what refuses."""
    for security in TABLES:
        for rule in security.app:
            if security.table == table and rule.command == "UPDATE" and rule.columns:
                return rule.columns[0]
    return "id"


def row_of(table: str, owner: UserRows, market: Marketplace) -> dict[str, Any]:
    """A new row that would belong to `owner`."""
    conversation = owner.rows["chat_conversations"][0]
    rows: dict[str, dict[str, Any]] = {
        "user_profiles": {"clerk_user_id": "user_intruder01", "email": "intruder@example.com"},
        "user_subscriptions": {
            "user_id": owner.id, "stripe_subscription_id": "sub_intruder01",
            "stripe_price_id": "price_intruder01", "tier": "enterprise", "status": "active",
            "amount": 0, "current_period_start": "2026-11-01", "current_period_end": "2027-11-01"},
        "purchases": {"user_id": owner.id, "product_id": market.product_id, "amount": 0,
                      "status": "paid"},
        "user_activity_log": {"user_id": owner.id, "actor": owner.clerk_user_id,
                              "action": "forged"},
        "cart_items": {"user_id": owner.id, "variant_id": market.variant_ids[1]},
        "downloads": {"user_id": owner.id, "product_id": market.product_id,
                      "purchase_id": owner.rows["purchases"][0]},
        "chat_conversations": {"user_id": owner.id, "title": "forged"},
        "chat_messages": {"conversation_id": conversation, "role": "user", "content": "forged"},
        "bot_analytics": {"conversation_id": conversation, "day": "2026-11-21"},
        "events": {"event_type": "page.view", "user_id": owner.id},
        "webhook_events": {"provider": "stripe", "event_id": "evt_forged000001",
                           "event_type": "charge.refunded", "user_id": owner.id, "payload": "{}",
                           "occurred_at": "2026-11-01"},
    }  # fmt: skip
    return rows[table]


def statement(
    command: Command, table: str, victim: UserRows, market: Marketplace
) -> tuple[str, dict[str, Any]]:
    ids = {"ids": victim.rows[table]}
    if command == "SELECT":
        return f"SELECT id FROM {table} WHERE id = ANY(:ids)", ids
    if command == "UPDATE":
        column = update_column(table)
        return f"UPDATE {table} SET {column} = {column} WHERE id = ANY(:ids)", ids
    if command == "DELETE":
        return f"DELETE FROM {table} WHERE id = ANY(:ids)", ids
    values = row_of(table, victim, market)
    columns = ", ".join(values)
    placeholders = ", ".join(f":{name}" for name in values)
    return f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", values


def snapshot(owner: psycopg.Connection[Any]) -> dict[str, str]:
    """Every private table's content, as the owner sees it."""
    return {
        table: str(owner.execute(
            f"SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '')"
            f" FROM {table} t").fetchone())
        for table in PRIVATE_TABLES
    }  # fmt: skip


@pytest.fixture(scope="module")
def owner(marketplace: Marketplace) -> Iterator[psycopg.Connection[Any]]:
    """The owner's connection for the module's snapshots; autocommit, so that each snapshot sees
    what the tests before it committed."""
    with psycopg.connect(marketplace.owner_url, autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="module")
def app_engines() -> Iterator[Callable[[str], Engine]]:
    """The application role's engine for a route's URL, made once per module: the engine's pool
    is a NullPool, so each test still acts on a connection (a session) of its own."""
    made: dict[str, Engine] = {}

    def engine_for(url: str) -> Engine:
        if url not in made:
            made[url] = app_engine(url)
        return made[url]

    yield engine_for
    for engine in made.values():
        engine.dispose()


@pytest.fixture(params=ROUTES)
def app_url(request: pytest.FixtureRequest, marketplace: Marketplace, app_password: str) -> str:
    if request.param == "direct":
        return marketplace.app_url
    bouncer: PgBouncer = request.getfixturevalue("pgbouncer")
    return pooled_app_url(bouncer, app_password, marketplace.database)


@contextlib.contextmanager
def acting(connection: Connection, actor: str, market: Marketplace) -> Iterator[None]:
    if actor == "no user":
        yield
        return
    with as_user(connection, market.alice.clerk_user_id):
        yield


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("command", ALL_COMMANDS)
@pytest.mark.parametrize("table", PRIVATE_TABLES)
def test_nobody_reaches_another_users_rows(
    marketplace: Marketplace,
    owner: psycopg.Connection[Any],
    app_engines: Callable[[str], Engine],
    app_url: str,
    table: str,
    command: Command,
    actor: str,
) -> None:
    before = snapshot(owner)
    sql, parameters = statement(command, table, marketplace.bob, marketplace)
    try:
        with app_engines(app_url).connect() as connection:
            with acting(connection, actor, marketplace):
                result = connection.execute(text(sql), parameters)
                if command == "SELECT":
                    assert result.fetchall() == []
                else:
                    assert result.rowcount == 0
            connection.commit()
    except DBAPIError as error:
        # Refused: by a missing grant or by a policy (both SQLSTATE 42501), nothing else.
        if not isinstance(error.orig, psycopg.errors.InsufficientPrivilege):
            raise
    assert snapshot(owner) == before


def _own_commands(table: str) -> tuple[Command, ...]:
    return next(security.app_commands for security in TABLES if security.table == table)


@pytest.mark.parametrize(
    ("table", "command"),
    [(table, command) for table in PRIVATE_TABLES for command in _own_commands(table)],
)
def test_each_user_reaches_their_own_rows(
    marketplace: Marketplace,
    app_engines: Callable[[str], Engine],
    app_url: str,
    table: str,
    command: Command,
) -> None:
    """The other side of the matrix: the same statements on Bob's rows, as Bob, do their work
    (in a transaction rolled back, so the matrix's data stays)."""
    bob = marketplace.bob
    sql, parameters = statement(command, table, bob, marketplace)
    with app_engines(app_url).connect() as connection, as_user(connection, bob.clerk_user_id):
        result = connection.execute(text(sql), parameters)
        if command == "SELECT":
            assert sorted(row[0] for row in result) == sorted(bob.rows[table])
        else:
            assert result.rowcount >= 1
        connection.rollback()


def test_the_matrix_covers_every_private_table(marketplace: Marketplace) -> None:
    for table in PRIVATE_TABLES:
        assert marketplace.bob.rows[table], table
        assert all(isinstance(row, uuid.UUID) for row in marketplace.bob.rows[table])
