"""Events: the catalog's names and property shapes are enforced by track() and by the COPY path,
a bad event writes nothing, and a month with no partition never makes an insert fail."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from afilo_db.analytics import partitions
from afilo_db.analytics.events import EVENT_KINDS, ingest, track, validate_event
from afilo_db.data.seed import seed
from afilo_db.errors import ValidationError
from tests.analytics.conftest import insert

USER = uuid.UUID("0194f0b2-7c1e-7d3a-9f00-1a2b3c4d5e6f")
PRODUCT = uuid.UUID("0194f0b2-7c1e-7d3a-9f00-1a2b3c4d5e70")
STARTED = {"subscription_id": "sub_ABC123456", "tier": "starter", "mrr": "19.00",
           "currency": "USD"}  # fmt: skip
PAID = {"amount": "19.00", "currency": "USD"}


@pytest.fixture
def known(database_url: str) -> None:
    """USER and PRODUCT exist (events naming others are refused)."""
    with psycopg.connect(database_url) as connection:
        insert(connection, "user_profiles", id=USER, clerk_user_id="user_known000001",
               email="known@example.com")  # fmt: skip
        insert(connection, "products", id=PRODUCT, handle="known", title="Known", status="draft")
        connection.commit()


def count_events(connection: psycopg.Connection[Any]) -> int:
    row = connection.execute("SELECT count(*) FROM events").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(
    ("event", "field", "rule"),
    [
        ({"name": "page.viewed"}, "name", "must be one of"),
        ({"name": "product.viewed"}, "product_id", "is required"),
        ({"name": "checkout.completed", "product_id": PRODUCT,
          "properties": {**PAID, "amount": 19.5}}, "properties.amount", "never a float"),
        ({"name": "checkout.completed", "product_id": PRODUCT,
          "properties": {**PAID, "amount": "-1"}}, "properties.amount", ""),
        ({"name": "checkout.completed", "product_id": PRODUCT,
          "properties": {**PAID, "coupon": "FREE"}}, "properties.coupon", "not a known field"),
        ({"name": "cart.item_added", "product_id": PRODUCT, "properties": {"quantity": 0}},
         "properties.quantity", "greater than or equal to 1"),
        ({"name": "product.viewed", "product_id": "not-a-uuid"}, "product_id", "must be a UUID"),
        ({"name": "product.viewed", "product_id": PRODUCT, "session_id": "x" * 129},
         "session_id", "at most 128"),
        ({"name": "product.viewed", "product_id": PRODUCT,
          "occurred_at": datetime(2026, 1, 1)}, "occurred_at", "timezone"),
        ({"name": "product.viewed", "product_id": PRODUCT,
          "occurred_at": datetime.now(UTC) + timedelta(days=1)}, "occurred_at", "future"),
        ({"name": "product.viewed", "product_id": PRODUCT, "properties": {"source": "fax"}},
         "properties.source", "must be one of"),
        ({"name": "checkout.completed", "product_id": PRODUCT,
          "properties": {**PAID, "currency": "XXX"}}, "properties.currency", ""),
    ],
)  # fmt: skip
def test_bad_events_are_refused_naming_the_field_and_the_rule(
    event: dict[str, Any], field: str, rule: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_event(event)
    assert field in caught.value.problems, caught.value.problems
    assert rule.lower() in caught.value.problems[field].lower()


@pytest.mark.parametrize(
    ("name", "source"),
    [("subscription.started", "user_subscriptions"), ("subscription.canceled", "user_subscriptions"),
     ("invoice.paid", "analytics_payments"), ("purchase.refunded", "charge.refunded")],
)  # fmt: skip
def test_a_money_fact_is_refused_saying_where_it_comes_from(
    engine: Engine, database_url: str, known: None, name: str, source: str
) -> None:
    with Session(engine) as session, pytest.raises(ValidationError) as caught:
        track(session, name, USER, STARTED)
    assert "billing mirror" in caught.value.problems["name"]
    assert source in caught.value.problems["name"]
    with psycopg.connect(database_url) as connection:
        assert count_events(connection) == 0


def test_track_writes_one_validated_event(engine: Engine, database_url: str, known: None) -> None:
    with Session(engine) as session:
        event_id = track(session, "checkout.completed", USER, PAID, product=PRODUCT)
        session.commit()
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT event_type, user_id, properties FROM events WHERE id = %s", (event_id,)
        ).fetchone()
    assert row == ("checkout.completed", USER, PAID)


@pytest.mark.parametrize("field", ["user_id", "product_id"])
def test_track_refuses_a_user_or_product_that_does_not_exist(
    engine: Engine, database_url: str, known: None, field: str
) -> None:
    stranger = uuid.UUID("0194f0b2-7c1e-7d3a-9f00-000000000bad")
    user, product = (stranger, PRODUCT) if field == "user_id" else (USER, stranger)
    with Session(engine) as session, pytest.raises(ValidationError) as caught:
        track(session, "product.viewed", user, {}, product=product)
    assert caught.value.problems == {field: f"no {field[:-3]} has the id {stranger}"}
    with psycopg.connect(database_url) as connection:
        assert count_events(connection) == 0


def test_a_batch_naming_an_unknown_user_writes_nothing(database_url: str, known: None) -> None:
    stranger = uuid.UUID("0194f0b2-7c1e-7d3a-9f00-000000000bad")
    good: dict[str, Any] = {"name": "product.viewed", "product_id": PRODUCT, "user_id": USER}
    with psycopg.connect(database_url) as connection:
        with pytest.raises(ValidationError) as caught:
            ingest(connection, [good] * 3 + [{**good, "user_id": stranger}] * 2)
        assert caught.value.problems == {"events[3].user_id": f"no user has the id {stranger}"}
        connection.rollback()
        assert count_events(connection) == 0


def test_track_refuses_bad_input_and_writes_nothing(
    engine: Engine, database_url: str, known: None
) -> None:
    with Session(engine) as session, pytest.raises(ValidationError):
        track(session, "checkout.completed", USER, {**PAID, "amount": "abc"}, product=PRODUCT)
    with psycopg.connect(database_url) as connection:
        assert count_events(connection) == 0


def test_a_batch_with_one_bad_event_writes_nothing(database_url: str, known: None) -> None:
    good: dict[str, Any] = {"name": "product.viewed", "product_id": PRODUCT, "session_id": "s1"}
    with psycopg.connect(database_url) as connection:
        with pytest.raises(ValidationError) as caught:
            ingest(connection, [good] * 500 + [{**good, "name": "product.liked"}] + [good])
        assert caught.value.problems == {
            "events[500].name": caught.value.problems["events[500].name"]
        }
        connection.rollback()
        assert count_events(connection) == 0


def test_a_batch_is_written_with_its_properties_normalised(database_url: str, known: None) -> None:
    events: list[dict[str, Any]] = [
        {"name": "checkout.completed", "product_id": PRODUCT,
         "occurred_at": datetime(2026, 2, 3, tzinfo=UTC), "properties": {**PAID, "amount": 19}},
        {"name": "product.viewed", "product_id": str(PRODUCT), "session_id": "s1"},
    ]  # fmt: skip
    with psycopg.connect(database_url) as connection:
        result = ingest(connection, events)
        connection.commit()
        stored = connection.execute(
            "SELECT properties FROM events WHERE event_type = 'checkout.completed'"
        ).fetchone()
    assert result.events == 2
    assert stored is not None and stored[0]["amount"] == "19"


def test_an_event_in_a_month_without_partition_is_kept_and_moved_when_the_month_comes(
    database_url: str, known: None
) -> None:
    far = datetime(2019, 6, 15, tzinfo=UTC)
    with psycopg.connect(database_url) as connection:
        ingest(connection, [{"name": "product.viewed", "product_id": PRODUCT, "occurred_at": far}])
        connection.commit()
        assert connection.execute("SELECT count(*) FROM events_default").fetchone() == (1,)
        created = partitions.ensure_ahead(connection, 0, also=(far.date(),))
        connection.commit()
        assert created >= 1
        assert connection.execute("SELECT count(*) FROM events_default").fetchone() == (0,)
        assert connection.execute("SELECT count(*) FROM events_p201906").fetchone() == (1,)


def test_the_partitions_ahead_exist_after_a_refresh_and_inserts_there_succeed(
    database_url: str,
) -> None:
    with psycopg.connect(database_url) as connection:
        partitions.ensure_ahead(connection, 3)
        connection.commit()
        months = {partition.month for partition in partitions.list_partitions(connection)}
        today = datetime.now(UTC).date().replace(day=1)
        assert {partitions.add_months(today, step) for step in range(4)} <= months
        # A month nobody prepared (far ahead of any partition) is accepted all the same.
        connection.execute(
            "INSERT INTO events (event_type, occurred_at) VALUES ('product.viewed', '2099-01-01')"
        )


def test_every_event_the_seed_writes_is_in_the_catalog(database_url: str) -> None:
    with psycopg.connect(database_url) as connection:
        seed(connection, products=24)
        rows = connection.execute(
            "SELECT event_type, user_id, product_id, session_id, occurred_at, properties"
            " FROM events"
        ).fetchall()
    assert {row[0] for row in rows} <= set(EVENT_KINDS)
    for name, user, product, session, at, properties in rows:
        validate_event({"name": name, "user_id": user, "product_id": product,
                        "session_id": session, "occurred_at": at,
                        "properties": json.loads(json.dumps(properties))})  # fmt: skip
