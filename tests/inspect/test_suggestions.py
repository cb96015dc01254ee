"""A slow statement dominated by a sequential scan gets a suggested index, shown as the revision
that adds it concurrently; once the index exists, no suggestion."""

from __future__ import annotations

import psycopg
import pytest

from afilo_db.inspect.queries import Inspector
from afilo_db.inspect.suggestions import GENERIC_PLAN_VERSION, filter_columns, suggest_indexes

Session = psycopg.Connection[tuple[object, ...]]


def _slow_lookups(session: Session) -> None:
    session.execute(
        "CREATE TABLE orders_probe (id int PRIMARY KEY, region text, customer int, amount int)"
    )
    session.execute(
        "INSERT INTO orders_probe SELECT n, 'r' || n % 7, n % 500, n FROM generate_series(1, 5000) n"
    )
    session.execute("ANALYZE orders_probe")
    for customer in range(3):
        session.execute(
            "SELECT id FROM orders_probe WHERE amount > %s AND customer = %s", (100, customer)
        )


@pytest.fixture
def generic_plans(inspector: Inspector) -> None:
    if inspector.facts.version_num < GENERIC_PLAN_VERSION:
        pytest.skip("EXPLAIN (GENERIC_PLAN) needs PostgreSQL 16 (test_before_16_it_says_why)")


def test_before_16_it_says_why(inspector: Inspector, session: Session) -> None:
    _slow_lookups(session)
    suggestions, skipped = suggest_indexes(inspector, min_rows=1000)
    probe = [s for s in skipped if "orders_probe" in s.statement]
    if inspector.facts.version_num >= GENERIC_PLAN_VERSION:
        assert probe == [] and [s for s in suggestions if s.table == "orders_probe"]
    else:
        assert [s.reason for s in probe] == ["its generic plan needs PostgreSQL 16 or later"]


@pytest.mark.usefixtures("generic_plans")
def test_a_scan_dominated_statement_gets_an_index_then_none(
    inspector: Inspector, session: Session
) -> None:
    _slow_lookups(session)
    suggestions, _ = suggest_indexes(inspector, min_rows=1000)
    probe = [suggestion for suggestion in suggestions if suggestion.table == "orders_probe"]
    assert len(probe) == 1
    suggestion = probe[0]
    assert suggestion.columns == ("customer", "amount")  # equality first: it leads a b-tree
    assert suggestion.index_name == "ix_orders_probe_customer_amount"
    assert suggestion.create_sql == (
        'CREATE INDEX CONCURRENTLY "ix_orders_probe_customer_amount"'
        ' ON "orders_probe" ("customer", "amount")'
    )
    assert suggestion.migrate_command.startswith("afilo-db migrate new ")
    assert "$1" in suggestion.statement or "$2" in suggestion.statement

    session.execute(suggestion.create_sql)
    session.execute("ANALYZE orders_probe")
    suggestions, _ = suggest_indexes(inspector, min_rows=1000)
    assert [s for s in suggestions if s.table == "orders_probe"] == []


@pytest.mark.usefixtures("generic_plans")
def test_a_small_table_gets_no_index(inspector: Inspector, session: Session) -> None:
    _slow_lookups(session)
    suggestions, skipped = suggest_indexes(inspector, min_rows=100_000)
    assert [s for s in suggestions if s.table == "orders_probe"] == []
    assert any("fewer than 100,000" in item.reason for item in skipped)


def test_filter_columns_put_equality_first() -> None:
    columns = ["id", "status", "price", "created_at"]
    assert filter_columns("((price > $1) AND (status = $2))", columns) == ("status", "price")
    assert filter_columns("((status)::text = 'x'::text)", columns) == ("status",)
    assert filter_columns("(lower(title) = $1)", columns) == ()
