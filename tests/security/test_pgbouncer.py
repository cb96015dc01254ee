"""Two users' transactions interleaved on one server connection behind a real PgBouncer in
transaction mode: no user or role context survives into the next transaction."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text

from afilo_db.errors import ForbiddenError
from afilo_db.security import as_user, service_context
from afilo_db.security.policies import CLERK_USER_ID_SETTING
from tests.security.conftest import Marketplace, UserRows, app_engine, pooled_app_url
from tests.security.pgbouncer import PgBouncer

STATE_SQL = text(
    f"SELECT pg_backend_pid(), current_user::text,"
    f" coalesce(current_setting('{CLERK_USER_ID_SETTING}', true), ''),"
    f" ARRAY(SELECT id FROM cart_items ORDER BY id)"
)


@pytest.fixture
def pooled(pgbouncer: PgBouncer, app_password: str, marketplace: Marketplace) -> Engine:
    return app_engine(pooled_app_url(pgbouncer, app_password, marketplace.database))


def state(connection: Connection) -> tuple[Any, ...]:
    return tuple(connection.execute(STATE_SQL).one())


def test_alternating_users_share_one_server_connection_without_leaks(
    pooled: Engine, marketplace: Marketplace
) -> None:
    alice, bob = marketplace.alice, marketplace.bob
    with pooled.connect() as first, pooled.connect() as second:
        with as_user(first, alice.clerk_user_id):
            pid, role, user, cart = state(first)
            assert (role, user, cart) == (
                "afilo_app",
                alice.clerk_user_id,
                alice.rows["cart_items"],
            )
        first.commit()

        # The other client, on the same server connection, right after: nothing of Alice's.
        assert state(second) == (pid, "afilo_app", "", [])
        second.commit()

        with as_user(second, bob.clerk_user_id):
            assert state(second) == (pid, "afilo_app", bob.clerk_user_id, bob.rows["cart_items"])
        second.commit()

        # The service role is not the application's to take, pooled or not.
        with pytest.raises(ForbiddenError):
            service_context(second)
        second.rollback()

        # Neither Bob nor the attempt reaches the first client's next transaction.
        assert state(first) == (pid, "afilo_app", "", [])
        first.commit()

        # Nor does a transaction rolled back.
        with as_user(first, alice.clerk_user_id):
            first.execute(text("SELECT 1"))
        first.rollback()
        assert state(second) == (pid, "afilo_app", "", [])
        second.commit()


def test_concurrent_users_interleaved_on_one_server_connection(
    pooled: Engine, marketplace: Marketplace
) -> None:
    """Alice's and Bob's clients run transactions at the same time; PgBouncer hands them the one
    server connection turn by turn. Each always sees exactly its own cart."""
    seen: dict[str, set[int]] = {"alice": set(), "bob": set()}
    failures: list[str] = []
    start = threading.Barrier(2)

    def run(name: str, user: UserRows) -> None:
        chooser = random.Random(name)
        with pooled.connect() as connection:
            start.wait()
            for _ in range(40):
                if chooser.random() < 0.25:
                    # A transaction with no user between the user's own ones.
                    observed = state(connection)
                    expected: tuple[Any, ...] = ("afilo_app", "", [])
                else:
                    with as_user(connection, user.clerk_user_id):
                        observed = state(connection)
                    expected = ("afilo_app", user.clerk_user_id, user.rows["cart_items"])
                connection.commit()
                seen[name].add(observed[0])
                if observed[1:] != expected:
                    failures.append(f"{name}: {observed[1:]} instead of {expected}")

    threads = [
        threading.Thread(target=run, args=("alice", marketplace.alice)),
        threading.Thread(target=run, args=("bob", marketplace.bob)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(seen["alice"] | seen["bob"]) == 1, (
        "both clients must have used one server connection"
    )


def test_a_session_level_setting_would_leak(pooled: Engine, marketplace: Marketplace) -> None:
    """Why the context is transaction-local: a session-level set_config(..., false) survives
    into the other client's transaction. (This harness sees a leak when there is one.)"""
    with pooled.connect() as first, pooled.connect() as second:
        first.execute(
            text(f"SELECT set_config('{CLERK_USER_ID_SETTING}', :id, false)"),
            {"id": marketplace.alice.clerk_user_id},
        )
        first.commit()
        leaked = state(second)
        second.commit()
        first.execute(text(f"RESET {CLERK_USER_ID_SETTING}"))
        first.commit()
    assert leaked[2:] == (marketplace.alice.clerk_user_id, marketplace.alice.rows["cart_items"])
