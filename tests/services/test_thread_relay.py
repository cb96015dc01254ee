"""Hot reads on an Engine from many threads: a read hands its connection straight to the next
one waiting, instead of returning it to SQLAlchemy's pool, and nothing is lost, starved or
left waiting longer than the pool's timeout (the threads' twin of test_async_relay)."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, event, exc, text
from sqlalchemy.orm import Session

from afilo_db.config import Settings
from afilo_db.db import hot
from afilo_db.db.engine import create_app_engine

READS = 96
POOL_SIZE = 2
THREADS = 16


def small_engine(database_url: str, timeout_seconds: float = 3) -> Engine:
    return create_app_engine(
        database_url,
        Settings(
            db_pool_size=POOL_SIZE, db_max_overflow=0, db_pool_timeout_seconds=timeout_seconds
        ),
    )


def count_checkouts(engine: Engine) -> list[int]:
    checkouts: list[int] = []
    event.listen(engine.pool, "checkout", lambda *_: checkouts.append(1))
    return checkouts


def in_threads(call: Callable[[int], Any], count: int) -> list[Any]:
    with ThreadPoolExecutor(THREADS) as threads:
        return list(threads.map(call, range(count)))


def test_reads_waiting_for_the_pool_get_connections_handed_on(database_url: str) -> None:
    engine = small_engine(database_url)
    checkouts = count_checkouts(engine)
    try:
        results = in_threads(
            lambda number: hot.fetch(
                engine, hot.Read("SELECT %s::int FROM pg_sleep(0.002)", (number,))
            ),
            READS,
        )
        still_out = engine.pool.checkedout()  # type: ignore[attr-defined]
    finally:
        engine.dispose()
    assert results == [[(number,)] for number in range(READS)]
    # One checkout a read without the hand-over; with it, the reads wait for the one connection
    # they may hold (the other is left for Sessions) and pass it along.
    assert len(checkouts) <= READS // 4, len(checkouts)
    assert still_out == 0


def test_a_session_waiting_for_the_pool_gets_its_turn_under_endless_reads(
    database_url: str,
) -> None:
    engine = small_engine(database_url)
    stop = threading.Event()

    def reader(_: int) -> None:
        while not stop.is_set():
            hot.fetch(engine, hot.Read("SELECT 1", ()))

    with ThreadPoolExecutor(8) as threads:
        readers = [threads.submit(reader, number) for number in range(8)]
        try:
            time.sleep(0.2)  # the pool is busy with reads handed from one to the next
            started = time.perf_counter()
            with Session(engine) as session:
                session.execute(text("SELECT 1"))
            waited = time.perf_counter() - started
        finally:
            stop.set()
            for read in readers:
                read.result()
            engine.dispose()
    assert waited < 2, f"the session waited {waited:.1f} s for a connection"


def test_a_read_waits_no_longer_than_the_pools_timeout(database_url: str) -> None:
    engine = small_engine(database_url, timeout_seconds=0.3)
    try:
        with ThreadPoolExecutor(2) as threads:
            slow = threads.submit(hot.fetch, engine, hot.Read("SELECT 1 FROM pg_sleep(1.5)", ()))
            time.sleep(0.2)  # the slow read holds all the pool lends hot reads
            started = time.perf_counter()
            with pytest.raises(exc.TimeoutError, match="DB_POOL_TIMEOUT_SECONDS"):
                hot.fetch(engine, hot.Read("SELECT 2", ()))
            waited = time.perf_counter() - started
            assert slow.result() == [(1,)]
        assert 0.25 < waited < 1.2, waited
        assert hot.fetch(engine, hot.Read("SELECT 3", ())) == [(3,)]
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_connections_lost_under_load_are_replaced(database_url: str) -> None:
    engine = small_engine(database_url)
    try:
        first = in_threads(lambda _: hot.fetch(engine, hot.Read("SELECT pg_backend_pid()", ())), 20)
        killed = {rows[0][0] for rows in first}
        with psycopg.connect(database_url, autocommit=True) as admin:
            for pid in killed:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

        def outcome(_: int) -> object:
            try:
                return hot.fetch(engine, hot.Read("SELECT pg_backend_pid()", ()))
            except psycopg.OperationalError as error:
                return error

        outcomes = in_threads(outcome, 20)
        again = in_threads(lambda _: hot.fetch(engine, hot.Read("SELECT pg_backend_pid()", ())), 20)
    finally:
        engine.dispose()
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert len(failures) <= POOL_SIZE  # each lost connection fails the one read that found it
    now = {rows[0][0] for rows in again}
    assert now and not now & killed


def test_connections_go_back_to_the_pool_out_of_autocommit(database_url: str) -> None:
    """Reads keep autocommit on while they hand a connection along; a Session that gets one
    afterwards must still be in a transaction after its first statement."""
    engine = small_engine(database_url)
    try:
        in_threads(lambda _: hot.fetch(engine, hot.Read("SELECT pg_sleep(0.002)", ())), 40)
        barrier = threading.Barrier(POOL_SIZE)

        def first_statement(_: int) -> tuple[bool, object]:
            with Session(engine) as session:
                session.execute(text("SELECT 1"))
                driver = session.connection().connection.driver_connection
                assert isinstance(driver, psycopg.Connection)
                barrier.wait(timeout=5)  # both Sessions hold one: every connection is checked
                return driver.autocommit, driver.pgconn.transaction_status

        with ThreadPoolExecutor(POOL_SIZE) as threads:
            states = list(threads.map(first_statement, range(POOL_SIZE)))
    finally:
        engine.dispose()
    assert states == [(False, psycopg.pq.TransactionStatus.INTRANS)] * POOL_SIZE


def test_an_engine_read_through_is_not_kept_alive(database_url: str) -> None:
    def read_and_dispose() -> weakref.ref[Engine]:
        engine = small_engine(database_url)
        in_threads(lambda _: hot.fetch(engine, hot.Read("SELECT 1", ())), 8)
        engine.dispose()
        return weakref.ref(engine)

    reference = read_and_dispose()
    gc.collect()
    assert reference() is None
