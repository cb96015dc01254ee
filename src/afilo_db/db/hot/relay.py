"""The relay: under load, a hot read that ends hands its connection straight to the next read
waiting, instead of returning it to SQLAlchemy's pool.

SQLAlchemy's pool is costly per checkout and return (events, reset, its queue's condition; on
an AsyncEngine a greenlet each, and a waiting checkout waits in a task with a timer), and under
load the client's CPU is what limits throughput (`bench.hot_paths`, concurrency 32 on a pool of
10). So a read that would wait for the pool while other hot reads hold connections waits here,
and a read that ends hands its connection on, still checked out and in autocommit.

One `Relay` serves threads and asyncio alike: its state (how many connections reads hold, who
waits) and its decisions (wait or check out, hand on or return) are made under one lock; only
the waiting primitive differs (`_ThreadWaiter`, a lock; `_TaskWaiter`, a future), and both wait
no longer than the pool's own timeout. The rules:

- only a healthy connection (idle, no transaction) is handed on, still in autocommit; with
  nobody waiting it goes back to the pool, autocommit off again (a connection that cannot be
  switched back is discarded);
- hot reads hold at most all of the pool's connections but one: however many reads wait, a
  Session waiting in the pool gets the connection left. A pool of one connection, or one that
  may always open another, gets no relay.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy import Engine, exc
from sqlalchemy.pool import PoolProxiedConnection, QueuePool
from sqlalchemy.util import greenlet_spawn

from afilo_db.db.hot.shapes import Steps


class _Waiter(Protocol):
    """A read's place in a relay's queue."""

    accepted: bool
    """Whether it was handed something: `handed`, a connection, or None for a turn at the pool."""
    handed: PoolProxiedConnection | None
    timed_out: bool

    def accept(self, connection: PoolProxiedConnection | None) -> bool:
        """Take `connection` (or a turn at the pool); False if the read no longer waits."""

    def wait(self, timeout: float, give_up: Callable[[], bool]) -> Any:
        """Until handed something, or `timeout` seconds: then `give_up()` says whether the read
        left the queue (timed out) or was handed something just then. A value for threads, an
        awaitable for asyncio."""


class _ThreadWaiter:
    __slots__ = ("_done", "accepted", "handed", "timed_out")

    def __init__(self) -> None:
        self.accepted = False
        self.handed: PoolProxiedConnection | None = None
        self.timed_out = False
        self._done = threading.Lock()
        self._done.acquire()

    def accept(self, connection: PoolProxiedConnection | None) -> bool:
        self.accepted, self.handed = True, connection
        self._done.release()
        return True

    def wait(self, timeout: float, give_up: Callable[[], bool]) -> None:
        if self._done.acquire(timeout=timeout):
            return
        if give_up():
            self.timed_out = True
        else:
            self._done.acquire()  # handed something as the wait ended: released already


class _TaskWaiter:
    __slots__ = ("_future", "_loop", "accepted", "handed", "timed_out")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.accepted = False
        self.handed: PoolProxiedConnection | None = None
        self.timed_out = False
        self._loop = loop
        self._future: asyncio.Future[None] = loop.create_future()

    def accept(self, connection: PoolProxiedConnection | None) -> bool:
        if self._future.done():  # the read was cancelled
            return False
        self.accepted, self.handed = True, connection
        self._future.set_result(None)
        return True

    async def wait(self, timeout: float, give_up: Callable[[], bool]) -> None:
        # A timer rather than asyncio.timeout: that would cancel the future, which a read
        # ending at that moment could already be handing a connection.
        timer = self._loop.call_later(timeout, self._time_out, give_up)
        try:
            await self._future
        finally:
            timer.cancel()

    def _time_out(self, give_up: Callable[[], bool]) -> None:
        if not self._future.done() and give_up():
            self.timed_out = True
            self._future.set_result(None)


class Relay:
    """Hands an engine's connections from one hot read to the next (see the module)."""

    def __init__(self, engine: Engine, loop: asyncio.AbstractEventLoop | None) -> None:
        # Weakly: the relay is kept in a weak dictionary keyed by its engine, which a strong
        # reference from here would keep alive for ever.
        self._engine = weakref.ref(engine)
        self.loop = loop
        """The event loop of the reads it serves, None for threads."""
        self._lock = threading.Lock()
        self._held = 0
        """Connections hot reads hold or are checking out (each is handed on or returned)."""
        self._waiting: deque[_Waiter] = deque()

    def _new_waiter(self) -> _Waiter:
        return _ThreadWaiter() if self.loop is None else _TaskWaiter(self.loop)

    def _in_pool(self, call: Callable[..., Any], *arguments: Any) -> Any:
        """`call` on SQLAlchemy's pool, which is sync code: in a greenlet under asyncio."""
        return call(*arguments) if self.loop is None else greenlet_spawn(call, *arguments)

    def _should_wait(self, pool: object) -> bool:
        if not self._held or not isinstance(pool, QueuePool):
            return False
        # SQLAlchemy has no public name for it (-1: no limit); the version is capped in
        # pyproject.toml and tests/db/test_overrides.py checks the attribute's meaning.
        most_overflow = pool._max_overflow
        most_held = pool.size() + most_overflow - 1
        if most_overflow < 0 or most_held < 1:
            return False
        return self._held >= most_held or (
            pool.checkedin() == 0 and pool.overflow() >= most_overflow
        )

    def borrow(self) -> Steps[PoolProxiedConnection]:
        """A connection for a read: handed on by another read, or checked out of the pool.
        Raises sqlalchemy.exc.TimeoutError after the pool's timeout with neither."""
        engine = self._engine()
        assert engine is not None, "a relay is only used by reads of its engine"
        pool = engine.pool
        with self._lock:
            waiter = self._new_waiter() if self._should_wait(pool) else None
            if waiter is None:
                self._held += 1  # from now: a read that comes next waits for this one
            else:
                self._waiting.append(waiter)
        if waiter is not None:
            assert isinstance(pool, QueuePool), "only a QueuePool makes reads wait"
            timeout = pool.timeout()
            try:
                yield waiter.wait(timeout, lambda: self._give_up(waiter))
            except BaseException:  # cancelled: pass on what it was handed just then, if anything
                if not self._give_up(waiter) and waiter.accepted:
                    if waiter.handed is None:
                        self._release_turn()
                    else:
                        yield from self.give_back(waiter.handed, lost=False)
                raise
            if waiter.timed_out:
                raise exc.TimeoutError(
                    f"no connection for a hot read within {timeout:g} s: every connection of"
                    " the pool stayed in use (DB_POOL_SIZE, DB_POOL_TIMEOUT_SECONDS)"
                )
            if waiter.handed is not None:
                return waiter.handed
        try:
            connection: PoolProxiedConnection = yield self._in_pool(engine.raw_connection)
        except BaseException:
            self._release_turn()  # no connection to hand on: a waiting read tries the pool
            raise
        return connection

    def _give_up(self, waiter: _Waiter) -> bool:
        """Whether `waiter` left the queue without being handed anything."""
        with self._lock:
            if waiter in self._waiting:
                self._waiting.remove(waiter)
                return True
            return False

    def give_back(self, connection: PoolProxiedConnection, lost: bool) -> Steps[None]:
        """After a read: on to the next one, or back to the pool (invalidated if `lost`)."""
        # `_waiting` read unlocked first: a read that starts waiting just after is woken when
        # this connection is back in the pool.
        if self._waiting and not lost and _driver_idle(connection):
            with self._lock:
                while self._waiting:
                    if self._waiting.popleft().accept(connection):
                        return
        try:
            driver = connection.driver_connection
            if not lost and isinstance(driver, _DRIVERS) and driver.autocommit:
                try:
                    yield driver.set_autocommit(False)
                except psycopg.Error:
                    lost = True  # closed, or stopped in the middle of a query
            yield self._in_pool(_close, connection, lost)
        finally:
            self._release_turn()

    def _release_turn(self) -> None:
        """A connection is the pool's again: the longest waiting read tries there."""
        with self._lock:
            self._held -= 1
            while self._waiting:
                if self._waiting.popleft().accept(None):
                    self._held += 1  # counted from now, as a read that checks out itself is
                    return


_DRIVERS = (psycopg.Connection, psycopg.AsyncConnection)


def _driver_idle(connection: PoolProxiedConnection) -> bool:
    driver = connection.driver_connection
    return (
        isinstance(driver, _DRIVERS)
        and not driver.closed
        and driver.pgconn.transaction_status == TransactionStatus.IDLE
    )


def _close(connection: PoolProxiedConnection, invalidate: bool) -> None:
    if invalidate:
        connection.invalidate()  # lost: the pool opens a new one rather than hand this one out
    connection.close()


_THREAD_RELAYS: weakref.WeakKeyDictionary[Engine, Relay] = weakref.WeakKeyDictionary()
_TASK_RELAYS: weakref.WeakKeyDictionary[Engine, Relay] = weakref.WeakKeyDictionary()
_RELAYS_LOCK = threading.Lock()


def _forget_relays() -> None:
    _THREAD_RELAYS.clear()
    _TASK_RELAYS.clear()


# A child process does not inherit its parent's reads in flight, nor their connections.
os.register_at_fork(after_in_child=_forget_relays)


def thread_relay(engine: Engine) -> Relay:
    """The relay of an Engine's reads in threads."""
    relay = _THREAD_RELAYS.get(engine)
    if relay is None:
        with _RELAYS_LOCK:
            relay = _THREAD_RELAYS.get(engine)
            if relay is None:
                relay = _THREAD_RELAYS[engine] = Relay(engine, None)
    return relay


def task_relay(engine: Engine) -> Relay:
    """The relay of an AsyncEngine's reads (`engine` is its sync_engine) in this event loop."""
    loop = asyncio.get_running_loop()
    relay = _TASK_RELAYS.get(engine)
    if relay is None or relay.loop is not loop:
        with _RELAYS_LOCK:
            relay = _TASK_RELAYS.get(engine)
            if relay is None or relay.loop is not loop:
                relay = _TASK_RELAYS[engine] = Relay(engine, loop)
    return relay
