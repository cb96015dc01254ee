"""psycopg's pipeline mode, ended by its Sync alone.

psycopg ends a pipeline with a Sync and then, to read the results still on their way, a Flush.
A transaction-mode pooler (PgBouncer, every version) returns the server connection to its pool
at the ReadyForQuery that answers a Sync outside a transaction; a Flush that reaches it after
that borrows a server connection for the client again, and nothing answers a Flush with a
ReadyForQuery: the server connection stays with that client until it next sends a query. With a
client busy elsewhere, or idle in an application's pool, other clients wait for it
(`query_wait_timeout`). Whether the Flush comes before or after the answer is a race that a
loaded client loses.

So the pipelines here end as psycopg's own `Pipeline.sync()` does: the Sync, then every result
read without a Flush. After a Sync the server sends everything it holds, so nothing more is
needed. The exit is psycopg's private step (`_exit_gen`); psycopg is capped below its next minor
version in pyproject.toml, and tests/db/test_overrides.py reads the messages sent, with and
without an error, for threads and asyncio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
from psycopg.abc import PQGen


class _SyncedPipeline(psycopg.Pipeline):
    def _exit_gen(self) -> PQGen[None]:
        try:
            self._enqueue_sync()
            yield from self._communicate_gen()
        finally:  # every result read, also after an error, or libpq cannot leave pipeline mode
            yield from self._fetch_gen(flush=False)


class _SyncedAsyncPipeline(psycopg.AsyncPipeline):
    _exit_gen = _SyncedPipeline._exit_gen


@contextmanager
def pipeline(connection: psycopg.Connection[Any]) -> Iterator[psycopg.Pipeline]:
    """`connection.pipeline()`, ended by its Sync alone (see the module). Inside a pipeline
    already open, psycopg's own nested pipeline (a Sync at its end, in the outer one)."""
    if connection._pipeline is not None:
        with connection.pipeline() as nested:
            yield nested
        return
    with connection.lock:
        connection._check_connection_ok()
        synced = connection._pipeline = _SyncedPipeline(connection)
    try:
        with synced:
            yield synced
    finally:
        with connection.lock:
            connection._pipeline = None


@asynccontextmanager
async def async_pipeline(
    connection: psycopg.AsyncConnection[Any],
) -> AsyncIterator[psycopg.AsyncPipeline]:
    """`pipeline` for asyncio."""
    if connection._pipeline is not None:
        async with connection.pipeline() as nested:
            yield nested
        return
    async with connection.lock:
        connection._check_connection_ok()
        synced = connection._pipeline = _SyncedAsyncPipeline(connection)
    try:
        async with synced:
            yield synced
    finally:
        async with connection.lock:
            connection._pipeline = None
