"""A test database with pg_stat_statements, an Inspector on it, and thresholds that the tests
can cross in a second."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from afilo_db.db.embedded import STATEMENT_STATISTICS_EXTENSION, STATEMENT_STATISTICS_SCHEMA
from afilo_db.inspect.queries import Inspector, inspecting
from afilo_db.inspect.verdicts import Thresholds

TIMEOUT_MS = 10_000
QUICK = Thresholds(
    cache_hit_min=0.99,
    dead_tuples_max=0.20,
    transaction_max_seconds=0.5,
    blocked_max_seconds=0.0,
    min_table_scans=5,
    min_table_rows=100,
    replica_max_lag_seconds=0.5,
)


def create_statement_statistics(url: str) -> None:
    """What the embedded server does for its own database at start, in a test's database."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA IF NOT EXISTS {STATEMENT_STATISTICS_SCHEMA}")
        connection.execute(
            f"CREATE EXTENSION IF NOT EXISTS {STATEMENT_STATISTICS_EXTENSION}"
            f" SCHEMA {STATEMENT_STATISTICS_SCHEMA}"
        )


@pytest.fixture
def inspected_url(database_url: str) -> str:
    create_statement_statistics(database_url)
    return database_url


@pytest.fixture
def inspector(inspected_url: str) -> Iterator[Inspector]:
    with inspecting(inspected_url, TIMEOUT_MS) as opened:
        yield opened


@pytest.fixture
def session(inspected_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """Another session, the one whose activity the checks judge."""
    with psycopg.connect(inspected_url, autocommit=True) as connection:
        yield connection


def flush_statistics(connection: psycopg.Connection[tuple[object, ...]]) -> None:
    """Make this session's counters visible to the others now (they are flushed at most once a
    second otherwise)."""
    connection.execute("SELECT pg_stat_force_next_flush()")
