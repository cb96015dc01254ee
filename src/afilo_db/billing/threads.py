"""Threads that run blocking work for an event loop: the webhook endpoint's deliveries, each a
transaction on a pooled connection.

Each result goes straight to a future of the awaiting loop (`call_soon_threadsafe`, one wake of
the loop). asyncio's `run_in_executor` makes a concurrent.futures Future per call (a Condition
and its lock), waits for it with a second, asyncio Future, and copies the first's state into the
second through callbacks on both threads: on the endpoint that bookkeeping cost more of a
delivery's CPU, and more of its time waiting for the GIL, than the hop itself
(docs/benchmarks.md, "Webhooks").
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Work = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


def _resolve(future: asyncio.Future[T], result: T) -> None:
    if not future.done():  # cancelled meanwhile: nobody waits for it
        future.set_result(result)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


class LoopThreads:
    """`count` threads, started at once, that run what `run` is given, in the order given: at
    most `count` at a time, the rest waiting in a queue (holding no thread)."""

    def __init__(self, count: int, name: str) -> None:
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._threads = [
            # Daemons, so that an app never shut down (a test's) does not keep a process alive.
            threading.Thread(target=self._work, name=f"{name}_{index}", daemon=True)
            for index in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            loop, future, work, arguments = item
            settle: Callable[[asyncio.Future[Any], Any], None]
            try:
                settle, value = _resolve, work(*arguments)
            except BaseException as error:  # the awaiting coroutine's to handle
                settle, value = _fail, error
            # A loop closed meanwhile (its app ended without shutting the threads down) has
            # nobody waiting: the thread goes on with the queue.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, future, value)

    async def run(self, work: Callable[..., T], *arguments: Any) -> T:
        """`work(*arguments)` on one of the threads; its result, or its exception raised here."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((loop, future, work, arguments))
        return await future

    def shutdown(self) -> None:
        """Let the work queued so far finish, then end the threads."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
