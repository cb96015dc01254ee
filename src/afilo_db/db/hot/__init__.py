"""Hot reads: the application's most frequent reads, each sent as one round trip, prepared once
per connection and kept (see `afilo_db.db.engine`), in no transaction when none is needed.

Three rooms: `shapes` (what a read sends: `Read`, `Alone`), `execution` (where it runs and how
its statements go, written once for threads and asyncio) and `relay` (connections handed from
read to read under load).

Where a read runs depends on what the caller passes to `fetch` (`fetch_async` for asyncio):

- a Session already in a transaction (or holding unflushed changes, bound to one Connection, or
  to an engine with an isolation level of its own): inside that transaction, on its connection,
  so it sees the caller's writes and context (`as_user`);
- a Session with nothing begun, or an Engine: on a connection borrowed from the engine's pool
  and switched to autocommit for the call: no BEGIN and no ROLLBACK, one round trip, and the
  Session is left untouched (closing it sends nothing). The read is one statement, so it sees
  one snapshot, as it would as the first statement of a transaction. Under load a read hands
  its connection straight to the next read waiting (see `relay`);
- the same for an AsyncSession or an AsyncEngine, awaiting psycopg's AsyncConnection directly;
- a psycopg connection, or a psycopg_pool pool (sync or async), for back ends that hold psycopg
  themselves: inside the connection's open transaction if it has one, else on its own (autocommit
  for the call, then as it was). No SQLAlchemy on the way: at concurrency 1 the fastest form
  (`bench.hot_paths`). The statement timeout is then the connection's own business.

Statements that must precede the query (the user context of row-level security, the statement
timeout behind a transaction-mode pooler) go in the same round trip, in a pipeline with one
Sync. Without an open transaction they share the implicit transaction that ends with that round
trip, so a transaction-local setting (`set_config(..., true)`) holds for the query and ends with
it. Values are always sent apart from the SQL, never bound into its text.
"""

from afilo_db.db.hot.execution import AsyncReadSource, ReadSource, fetch, fetch_async
from afilo_db.db.hot.shapes import TIMEOUT_SQL, Alone, Parameters, Read, Row, Statement

__all__ = [
    "TIMEOUT_SQL",
    "Alone",
    "AsyncReadSource",
    "Parameters",
    "Read",
    "ReadSource",
    "Row",
    "Statement",
    "fetch",
    "fetch_async",
]
