"""Hot reads on an AsyncEngine under load: a read hands its connection straight to the next one
waiting, instead of returning it to SQLAlchemy's pool, and nothing is lost or starved."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, exc, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from afilo_db.config import Settings
from afilo_db.db import hot
from afilo_db.db.engine import create_async_app_engine
from tests.conftest import run_coroutine

READS = 96
POOL_SIZE = 2


def small_engine(database_url: str, timeout_seconds: float = 3) -> AsyncEngine:
    return create_async_app_engine(
        database_url,
        Settings(
            db_pool_size=POOL_SIZE, db_max_overflow=0, db_pool_timeout_seconds=timeout_seconds
        ),
    )


def count_checkouts(engine: AsyncEngine) -> list[int]:
    checkouts: list[int] = []
    event.listen(engine.sync_engine.pool, "checkout", lambda *_: checkouts.append(1))
    return checkouts


def test_reads_waiting_for_the_pool_get_connections_handed_on(database_url: str) -> None:
    async def scenario() -> tuple[list[Any], int, int]:
        engine = small_engine(database_url)
        checkouts = count_checkouts(engine)
        try:
            results = await asyncio.gather(
                *(
                    hot.fetch_async(engine, hot.Read("SELECT %s::int", (number,)))
                    for number in range(READS)
                )
            )
            return results, len(checkouts), engine.sync_engine.pool.checkedout()  # type: ignore[attr-defined]
        finally:
            await engine.dispose()

    results, checkouts, still_out = run_coroutine(scenario())
    assert results == [[(number,)] for number in range(READS)]
    # One checkout a read without the hand-over; with it, the reads wait for the one
    # connection they may hold (the other is left for Sessions) and pass it along.
    assert checkouts <= 2, checkouts
    assert still_out == 0


def test_a_session_waiting_for_the_pool_gets_its_turn_under_endless_reads(
    database_url: str,
) -> None:
    async def scenario() -> float:
        engine = small_engine(database_url)
        stop = asyncio.Event()

        async def reader() -> None:
            while not stop.is_set():
                await hot.fetch_async(engine, hot.Read("SELECT 1", ()))

        readers = [asyncio.create_task(reader()) for _ in range(8)]
        try:
            await asyncio.sleep(0.2)  # the pool is busy with reads handed from one to the next
            started = time.perf_counter()
            async with AsyncSession(engine) as session:
                await session.execute(text("SELECT 1"))
            return time.perf_counter() - started
        finally:
            stop.set()
            await asyncio.gather(*readers)
            await engine.dispose()

    waited = run_coroutine(scenario())
    assert waited < 2, f"the session waited {waited:.1f} s for a connection"


def test_a_read_waits_no_longer_than_the_pools_timeout(database_url: str) -> None:
    async def scenario() -> tuple[float, list[Any], list[Any], int]:
        engine = small_engine(database_url, timeout_seconds=0.3)
        try:
            slow = asyncio.create_task(
                hot.fetch_async(engine, hot.Read("SELECT 1 FROM pg_sleep(1.5)", ()))
            )
            await asyncio.sleep(0.2)  # the slow read holds all the pool lends hot reads
            started = time.perf_counter()
            with pytest.raises(exc.TimeoutError, match="DB_POOL_TIMEOUT_SECONDS"):
                await hot.fetch_async(engine, hot.Read("SELECT 2", ()))
            waited = time.perf_counter() - started
            slow_rows = await slow
            after = await hot.fetch_async(engine, hot.Read("SELECT 3", ()))
            return waited, slow_rows, after, engine.sync_engine.pool.checkedout()  # type: ignore[attr-defined]
        finally:
            await engine.dispose()

    waited, slow_rows, after, still_out = run_coroutine(scenario())
    assert 0.25 < waited < 1.2, waited
    assert slow_rows == [(1,)] and after == [(3,)]
    assert still_out == 0


def test_cancelled_reads_leave_no_connection_behind(database_url: str) -> None:
    async def scenario() -> tuple[list[BaseException | list[Any]], int, list[Any]]:
        engine = small_engine(database_url)
        try:
            reads = [
                asyncio.create_task(
                    hot.fetch_async(
                        engine, hot.Read("SELECT %s::int FROM pg_sleep(0.02)", (number,))
                    )
                )
                for number in range(40)
            ]
            await asyncio.sleep(0.05)
            for read in reads[::2]:
                read.cancel()
            outcomes = await asyncio.gather(*reads, return_exceptions=True)
            still_out = engine.sync_engine.pool.checkedout()  # type: ignore[attr-defined]
            after = await asyncio.gather(
                *(
                    hot.fetch_async(engine, hot.Read("SELECT %s::int", (number,)))
                    for number in range(20)
                )
            )
            return outcomes, still_out, after
        finally:
            await engine.dispose()

    outcomes, still_out, after = run_coroutine(scenario())
    for number, outcome in enumerate(outcomes):
        # A read cancelled after it had finished returns its rows all the same.
        assert outcome == [(number,)] or (
            number % 2 == 0 and isinstance(outcome, asyncio.CancelledError)
        ), (number, outcome)
    assert still_out == 0
    assert after == [[(number,)] for number in range(20)]


def test_connections_lost_under_load_are_replaced(database_url: str) -> None:
    async def scenario() -> tuple[list[Any], set[int], set[int]]:
        engine = small_engine(database_url)
        try:
            first = await asyncio.gather(
                *(
                    hot.fetch_async(engine, hot.Read("SELECT pg_backend_pid()", ()))
                    for _ in range(20)
                )
            )
            killed = {rows[0][0] for rows in first}
            async with await psycopg.AsyncConnection.connect(database_url) as admin:
                for pid in killed:
                    await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            outcomes = await asyncio.gather(
                *(
                    hot.fetch_async(engine, hot.Read("SELECT pg_backend_pid()", ()))
                    for _ in range(20)
                ),
                return_exceptions=True,
            )
            again = await asyncio.gather(
                *(
                    hot.fetch_async(engine, hot.Read("SELECT pg_backend_pid()", ()))
                    for _ in range(20)
                )
            )
            return outcomes, killed, {rows[0][0] for rows in again}
        finally:
            await engine.dispose()

    outcomes, killed, now = run_coroutine(scenario())
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert all(isinstance(failure, psycopg.OperationalError) for failure in failures), failures
    assert len(failures) <= POOL_SIZE  # each lost connection fails the one read that found it
    assert now and not now & killed


@pytest.mark.parametrize("reads", [1, 3])
def test_reads_below_the_pool_size_check_out_as_usual(database_url: str, reads: int) -> None:
    async def scenario() -> int:
        engine = small_engine(database_url)
        checkouts = count_checkouts(engine)
        try:
            for _ in range(reads):
                await hot.fetch_async(engine, hot.Read("SELECT 1", ()))
            return len(checkouts)
        finally:
            await engine.dispose()

    assert run_coroutine(scenario()) == reads


def test_an_engine_read_through_is_not_kept_alive(database_url: str) -> None:
    async def scenario() -> weakref.ref[Any]:
        engine = small_engine(database_url)
        await asyncio.gather(*(hot.fetch_async(engine, hot.Read("SELECT 1", ())) for _ in range(8)))
        await engine.dispose()
        return weakref.ref(engine.sync_engine)

    engine = run_coroutine(scenario())
    gc.collect()
    assert engine() is None


def test_connections_go_back_to_the_pool_out_of_autocommit(database_url: str) -> None:
    """Reads keep autocommit on while they hand a connection along; a Session that gets one
    afterwards must still be in a transaction after its first statement."""

    async def scenario() -> list[tuple[bool, object]]:
        engine = small_engine(database_url)
        try:
            reads = [
                asyncio.create_task(hot.fetch_async(engine, hot.Read("SELECT pg_sleep(0.01)", ())))
                for _ in range(30)
            ]
            await asyncio.sleep(0.03)
            for read in reads[::3]:
                read.cancel()
            await asyncio.gather(*reads, return_exceptions=True)
            await asyncio.gather(
                *(hot.fetch_async(engine, hot.Read("SELECT 1", ())) for _ in range(30))
            )

            async def first_statement() -> tuple[bool, object]:
                async with AsyncSession(engine) as session:
                    await session.execute(text("SELECT 1"))
                    raw = await (await session.connection()).get_raw_connection()
                    driver = raw.driver_connection
                    assert isinstance(driver, psycopg.AsyncConnection)
                    await asyncio.sleep(0.05)  # hold it: the other Session takes the other one
                    return driver.autocommit, driver.pgconn.transaction_status

            return await asyncio.gather(*(first_statement() for _ in range(POOL_SIZE)))
        finally:
            await engine.dispose()

    assert run_coroutine(scenario()) == [(False, psycopg.pq.TransactionStatus.INTRANS)] * POOL_SIZE
