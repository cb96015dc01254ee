"""The endpoint's delivery threads: each result or exception back to the awaiting coroutine, at
most as many at once as there are threads, and what is queued finished before they end."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from afilo_db.billing.threads import LoopThreads
from tests.conftest import run_coroutine


def test_results_and_exceptions_come_back_to_the_awaiting_coroutine() -> None:
    threads = LoopThreads(2, "test-threads")

    def fail() -> None:
        raise ValueError("from the thread")

    async def both() -> tuple[str, ...]:
        result = await threads.run(lambda name: f"{name} on {threading.current_thread().name}", "x")
        with pytest.raises(ValueError, match="from the thread"):
            await threads.run(fail)
        return (result,)

    try:
        (result,) = run_coroutine(both())
    finally:
        threads.shutdown()
    assert result.startswith("x on test-threads_")


def test_at_most_one_work_a_thread_at_once_the_rest_queued() -> None:
    threads = LoopThreads(3, "test-threads")
    running, most = 0, 0
    lock = threading.Lock()

    def work(index: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return index

    async def many() -> list[int]:
        return list(await asyncio.gather(*(threads.run(work, index) for index in range(12))))

    try:
        assert run_coroutine(many()) == list(range(12))
    finally:
        threads.shutdown()
    assert most == 3


def test_shutdown_finishes_what_is_queued_then_ends_the_threads() -> None:
    # The loop that queued the work is closed before it is done: the threads go on regardless.
    threads = LoopThreads(1, "test-threads")
    done: list[int] = []

    def record(index: int) -> None:
        time.sleep(0.01)
        done.append(index)

    async def queue_three() -> None:
        # Tasks that are never awaited: the loop ends with them pending.
        tasks = [asyncio.ensure_future(threads.run(record, index)) for index in range(3)]
        await asyncio.sleep(0)  # the tasks put their work in the queue
        assert not any(task.done() for task in tasks)

    run_coroutine(queue_three())
    threads.shutdown()
    assert done == [0, 1, 2]
    assert not any(thread.name.startswith("test-threads") for thread in threading.enumerate())
