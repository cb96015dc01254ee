"""The behaviour afilo-db overrides or reads from psycopg's and SQLAlchemy's internals, checked
against the versions installed (pyproject.toml caps both below their next minor version): a
new version that changes them fails here, not in production."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import QueuePool

from afilo_db.billing.delivery import run_together
from afilo_db.db.engine import (
    PREPARE_THRESHOLD,
    PreparedKeepingAsyncConnection,
    PreparedKeepingConnection,
)
from afilo_db.db.pipeline import async_pipeline, pipeline
from afilo_db.db.urls import sqlalchemy_url
from tests.conftest import run_coroutine
from tests.services.test_catalog import sent_messages

READ = "SELECT %s::int + 1"


@pytest.fixture
def keeping(database_url: str) -> Iterator[PreparedKeepingConnection]:
    with PreparedKeepingConnection.connect(
        database_url, prepare_threshold=PREPARE_THRESHOLD
    ) as connection:
        yield connection


def server_prepared(connection: psycopg.Connection[Any]) -> int:
    row = connection.execute(
        "SELECT count(*) FROM pg_prepared_statements", prepare=False
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_rollback_keeps_the_prepared_statements(keeping: PreparedKeepingConnection) -> None:
    for number in range(PREPARE_THRESHOLD + 1):
        keeping.execute(READ, (number,))
    assert server_prepared(keeping) == 1
    keeping.rollback()
    assert keeping.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    # psycopg still knows the statement is prepared: it sends no second Parse of it.
    keeping.execute(READ, (1,))
    assert server_prepared(keeping) == 1
    keeping.rollback()


def test_statements_queued_in_a_pipeline_run_as_psycopgs_own(
    keeping: PreparedKeepingConnection,
) -> None:
    """`billing.delivery.run_together` queues statements through psycopg's private execute
    steps and hands them to libpq itself: their results, prepared statements and errors must
    stay psycopg's."""
    named = "SELECT %(a)s::text AS a"
    for _ in range(PREPARE_THRESHOLD + 1):
        first, second = run_together(keeping, [(READ, (1,)), (named, {"a": "x"})], named=1)
        assert first.fetchone() == (2,)
        row = second.fetchone()
        assert row is not None and row.a == "x"
    assert server_prepared(keeping) == 2  # as psycopg prepares the statements that recur
    with pytest.raises(psycopg.errors.DivisionByZero):
        run_together(keeping, [("SELECT 1 / %s", (0,)), (READ, (1,))])
    keeping.rollback()
    assert keeping.execute(READ, (2,)).fetchone() == (3,)
    keeping.rollback()


def test_plain_psycopg_forgets_them_on_rollback(database_url: str) -> None:
    """The reason for the override: if psycopg stops forgetting, it can go."""
    with psycopg.connect(database_url, prepare_threshold=PREPARE_THRESHOLD) as plain:
        for number in range(PREPARE_THRESHOLD + 1):
            plain.execute(READ, (number,))
        plain.rollback()
        assert server_prepared(plain) == 0


def test_a_rollback_in_psycopgs_own_blocks_is_psycopgs(keeping: PreparedKeepingConnection) -> None:
    with keeping.transaction(), pytest.raises(psycopg.ProgrammingError):
        keeping.rollback()  # psycopg's own check: not inside a transaction() block
    with keeping.pipeline():
        keeping.execute(READ, (1,))
        keeping.rollback()
    assert keeping.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_the_async_rollback_keeps_them_too(database_url: str) -> None:
    async def scenario() -> tuple[int, psycopg.pq.TransactionStatus]:
        async with await PreparedKeepingAsyncConnection.connect(
            database_url, prepare_threshold=PREPARE_THRESHOLD
        ) as connection:
            for number in range(PREPARE_THRESHOLD + 1):
                await connection.execute(READ, (number,))
            await connection.rollback()
            cursor = await connection.execute(
                "SELECT count(*) FROM pg_prepared_statements", prepare=False
            )
            row = await cursor.fetchone()
            assert row is not None
            status = connection.info.transaction_status
            await connection.rollback()
            return int(row[0]), status

    assert run_coroutine(scenario()) == (1, psycopg.pq.TransactionStatus.INTRANS)


@pytest.mark.parametrize(("max_overflow", "private"), [(0, 0), (3, 3), (-1, -1)])
def test_the_queue_pool_attributes_the_relay_reads(
    database_url: str, max_overflow: int, private: int
) -> None:
    """The relay (`afilo_db.db.hot.relay`) reads QueuePool's `_max_overflow` (no public name)
    and counts with size(), checkedin() and overflow() as below."""
    engine = create_engine(
        sqlalchemy_url(database_url), pool_size=2, max_overflow=max_overflow, pool_timeout=1
    )
    try:
        pool = engine.pool
        assert isinstance(pool, QueuePool)
        assert pool._max_overflow == private
        held = [engine.raw_connection() for _ in range(2)]
        assert (pool.size(), pool.checkedin(), pool.overflow()) == (2, 0, 0)
        if max_overflow:
            held.append(engine.raw_connection())
            assert pool.overflow() == 1
        for connection in held:
            connection.close()
        assert pool.checkedin() == 2
    finally:
        engine.dispose()


TIMEOUT_THEN_DIVIDE = ("SELECT set_config('statement_timeout', '5s', true)", "SELECT 1 / %s")


def pipelined(connection: psycopg.Connection[Any], divisor: int) -> str:
    """The messages a pipeline of two statements sent (the second divides by `divisor`),
    and the error it raised, if any."""
    raised = ""
    with sent_messages(connection.pgconn) as sent:
        try:
            with pipeline(connection):
                connection.execute(TIMEOUT_THEN_DIVIDE[0])
                connection.execute(TIMEOUT_THEN_DIVIDE[1], (divisor,))
        except psycopg.Error as error:
            raised = type(error).__name__
    return " ".join([*sent, raised]).strip()


async def pipelined_async(connection: psycopg.AsyncConnection[Any], divisor: int) -> str:
    raised = ""
    with sent_messages(connection.pgconn) as sent:
        try:
            async with async_pipeline(connection):
                await connection.execute(TIMEOUT_THEN_DIVIDE[0])
                await connection.execute(TIMEOUT_THEN_DIVIDE[1], (divisor,))
        except psycopg.Error as error:
            raised = type(error).__name__
    return " ".join([*sent, raised]).strip()


SENT = "Parse Bind Describe Execute Parse Bind Describe Execute Sync"


@pytest.mark.parametrize(("divisor", "raised"), [(1, ""), (0, " DivisionByZero")])
def test_a_pipeline_ends_with_its_sync_alone(database_url: str, divisor: int, raised: str) -> None:
    """`afilo_db.db.pipeline`: no Flush after the Sync, which a transaction-mode pooler would
    answer by lending the client a server connection that nothing gives back (psycopg's own
    pipeline sends one whenever results are still on their way as it ends)."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        assert pipelined(connection, divisor) == SENT + raised
        # Left as psycopg leaves it: out of pipeline mode, usable.
        assert connection.execute(READ, (1,)).fetchone() == (2,)

    async def scenario() -> str:
        async with await psycopg.AsyncConnection.connect(
            database_url, autocommit=True
        ) as connection:
            sent = await pipelined_async(connection, divisor)
            cursor = await connection.execute(READ, (1,))
            assert await cursor.fetchone() == (2,)
            return sent

    assert run_coroutine(scenario()) == SENT + raised


def test_statements_run_together_end_with_their_sync(keeping: PreparedKeepingConnection) -> None:
    with sent_messages(keeping.pgconn) as sent:
        run_together(keeping, [(READ, (1,)), (READ, (2,))])
        with pytest.raises(psycopg.errors.DivisionByZero):
            run_together(keeping, [("SELECT 1 / %s", (0,)), (READ, (1,))])
    assert "Flush" not in sent and sent[-1] == "Sync", sent
    keeping.rollback()
