"""What a webhook event's handler is given (`Delivery`): apart from `ingest`, which calls the
handlers, so that the handlers need not import it back.

A handler's statements go straight to the transaction's psycopg connection (a Session's, or
one `ingest.apply` took from the pool): through SQLAlchemy each statement cost more of the
endpoint's CPU than the server spent running it (bench/webhooks.py). Prepared as the engine prepares (`prepare_threshold`, off
behind a pooler that cannot keep them). What only records what happened (the audit entries, the
event's user, its outcome) is held until the handler is done and written in one statement.

A statement whose result the handler does not read (a lock, an UPDATE) is held too and sent with
the next statement it reads, in the same round trip (a pipeline): each round trip is a wait for
the server and, on a loaded machine, for a core; the server runs them in order, so a lock so
taken holds for what follows. So is the statement that stores the event (`store_first`): it
goes first in the handler's first round trip, and a replay, which finds the event stored,
ends there (`AlreadyStoredError`) with what that round trip did rolled back.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.abc import PQGen
from psycopg.rows import namedtuple_row
from sqlalchemy.orm import Session

from afilo_db.billing.events import ProviderEvent, Result
from afilo_db.db.pipeline import pipeline
from afilo_db.security.context import context_forbidden
from afilo_db.security.roles import SERVICE_ROLE
from afilo_db.services.transaction import translated_errors

# An audit entry as `Delivery._entry` builds it, read from JSON.
_ENTRY_RECORD = (
    "user_id uuid, actor text, action text, entity_type text, entity_id text, details jsonb,"
    " event_id text"
)
_LOG_INSERT = (
    "INSERT INTO user_activity_log (user_id, actor, action, entity_type, entity_id, details,"
    " event_id)"
)

# The event's audit entries, inserted in the order they were logged (their ids are time-ordered
# to the millisecond only: `uuid_generate_v7`'s lower bits are random).
_ENTRIES_SQL = f"""
  {_LOG_INSERT}
  SELECT entry.user_id, entry.actor, entry.action, entry.entity_type, entry.entity_id,
         entry.details, entry.event_id
  FROM ROWS FROM (jsonb_to_recordset(CAST(%(entries)s AS jsonb)) AS ({_ENTRY_RECORD}))
       WITH ORDINALITY AS entry
  ORDER BY entry.ordinality
"""

# The entries, the event's user and, once the handler is done, its outcome: one statement. An
# outcome of NULL keeps the stored one (a write before the handler is done).
_WRITE_SQL = f"""
WITH logged AS ({_ENTRIES_SQL})
UPDATE webhook_events SET
  user_id = coalesce(CAST(%(user_id)s AS uuid), user_id),
  outcome = coalesce(CAST(%(outcome)s AS text), outcome),
  reason = CASE WHEN CAST(%(outcome)s AS text) IS NULL THEN reason ELSE %(reason)s END
WHERE id = %(id)s
"""


@lru_cache(maxsize=32)
def _logged_sql(sql: str, returned: tuple[str, ...], entity_given: bool) -> str:
    """`sql` (a write returning the row it wrote) and the audit entry naming that row, in one
    statement: the entry's entity is the row's `id` unless given, the columns `returned` join its
    details; no row, no entry."""
    details = "".join(
        f" || jsonb_build_object('{column}', written.{column})" for column in returned
    )
    return f"""
WITH written AS ({sql})
{_LOG_INSERT}
SELECT entry.user_id, entry.actor, entry.action, entry.entity_type,
       {"entry.entity_id" if entity_given else "written.id::text"}, entry.details{details},
       entry.event_id
FROM written, jsonb_to_record(CAST(%(logged_entry)s AS jsonb)) AS entry({_ENTRY_RECORD})
"""


def driver_connection(session: Session) -> psycopg.Connection[Any]:
    """The session's psycopg connection, in its transaction (begun if it was not)."""
    connection = session.connection().connection.driver_connection
    assert isinstance(connection, psycopg.Connection), "psycopg only"
    return connection


Statement = tuple[str, Mapping[str, Any] | Sequence[Any] | None]
"""SQL with psycopg placeholders (`%(name)s`, or `%s` with a sequence), and its values."""


def _queued(cursor: psycopg.Cursor[Any], sql: str, values: Any) -> PQGen[None]:
    """`cursor.execute(sql, values)` in a pipeline, up to where psycopg hands the statement to
    the pipeline's queue, without sending it (psycopg's `_execute_gen` less its communication)."""
    yield from cursor._start_query(sql)
    query = cursor._convert_query(sql, values)
    yield from cursor._maybe_prepare_gen(query)
    cursor._last_query = sql
    connection = cursor.connection
    yield from connection._prepared.maintain_gen(connection)


def run_together(
    connection: psycopg.Connection[Any], statements: Sequence[Statement], *, named: int = 0
) -> list[psycopg.Cursor[Any]]:
    """Run the statements in order in one round trip, and return their cursors; those of the
    last `named` give their rows as named tuples. Several go in a pipeline, sent in one write.

    psycopg sends each statement of a pipeline as it is executed (a poll and a write of the
    socket each, and a pass through its communication loop): on the endpoint that cost more
    of a delivery's CPU than building the statements (`bench.webhooks`). Here each is only
    queued as psycopg's `execute` would queue it (its prepared statements, its adaptation), all
    are handed to libpq together, and the pipeline's sync sends them in one write; psycopg then
    reads the results into the cursors and raises the first error, as for its own pipeline."""
    plain = len(statements) - named
    cursors = [
        connection.cursor(row_factory=namedtuple_row) if index >= plain else connection.cursor()
        for index in range(len(statements))
    ]
    if len(statements) == 1:
        cursors[0].execute(*statements[0])
        return cursors
    with pipeline(connection) as synced, connection.lock:
        for cursor, (sql, values) in zip(cursors, statements, strict=True):
            connection.wait(_queued(cursor, sql, values))
        # In pipeline mode libpq buffers what it is given until a sync or a flush.
        while synced.command_queue:
            synced.command_queue.popleft()()
    return cursors


def in_service_context(
    connection: psycopg.Connection[Any], statements: Sequence[Statement], *, named: int = 0
) -> list[psycopg.Cursor[Any]]:
    """`run_together` of statements that set the service context first: a login that may not
    act as the service role gets the error saying so, a broken rule the afilo error naming it."""
    try:
        with translated_errors():
            return run_together(connection, statements, named=named)
    except psycopg.errors.InsufficientPrivilege as error:
        raise context_forbidden(SERVICE_ROLE) from error


class AlreadyStoredError(Exception):
    """The event was stored by an earlier delivery (a replay): nothing of this one applies."""


class Delivery:
    """What a handler gets: the transaction's psycopg connection (in the service context), the
    event and its row."""

    def __init__(
        self,
        connection: psycopg.Connection[Any],
        event: ProviderEvent,
        row_id: uuid.UUID | None = None,
    ) -> None:
        self._connection = connection
        self.event = event
        self.row_id = row_id
        # How many times the event has been delivered, its first time included.
        self.attempts = 1
        self._entries: list[dict[str, Any]] = []
        self._user_id: uuid.UUID | None = None
        self._held: list[Statement] = []
        # Where the statement storing the event is among those held, until it is sent.
        self._store_at: int | None = None

    def store_first(self, statements: Sequence[Statement]) -> None:
        """Hold `statements` (the transaction's start, then the event's store, whose row is the
        event's id and deliveries, or none for a replay) to go first in the next round trip:
        the handler's first read, instead of a round trip of their own. That round trip raises
        AlreadyStoredError for a replay; the caller rolls it back."""
        self._held.extend(statements)
        self._store_at = len(self._held) - 1

    def stored(self) -> None:
        """Send what is held if the event's store is among it (a handler that read nothing):
        its row id and deliveries are known after, or AlreadyStoredError raised."""
        if self._store_at is not None:
            self._read()

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The transaction's psycopg connection, every statement held so far sent."""
        self._read()
        return self._connection

    def execute(self, sql: str, values: Mapping[str, Any] | None = None) -> None:
        """Run one statement whose result is not read (psycopg placeholders, `%(name)s`) in the
        transaction: sent with the next statement read (or `write`), before it. A constraint
        violation raises the afilo error naming it, then."""
        self._held.append((sql, values))

    def row(self, sql: str, values: Mapping[str, Any] | None = None) -> Any:
        """The statement's first row (a named tuple), or None when it has none."""
        return self._read((sql, values))[0].fetchone()

    def value(self, sql: str, values: Mapping[str, Any] | None = None) -> Any:
        """The first column of the statement's first row, or None when it has none."""
        (found,) = self.values((sql, values))
        return found

    def rows(self, *statements: Statement) -> list[Any]:
        """`row` of each statement, run in order in one round trip: a statement sees what the
        ones before it wrote, and waits for the locks they took."""
        return [cursor.fetchone() for cursor in self._read(*statements)]

    def values(self, *statements: Statement) -> list[Any]:
        """`value` of each statement, run in order in one round trip (as `rows`)."""
        return [None if row is None else row[0] for row in self.rows(*statements)]

    def _read(self, *statements: Statement) -> list[psycopg.Cursor[Any]]:
        """Run the statements held, then these, in order and in one round trip
        (`run_together`); the cursors of these, whose rows are named tuples."""
        held, self._held = self._held, []
        store_at, self._store_at = self._store_at, None
        if not held and not statements:
            return []
        if store_at is None:
            with translated_errors():
                cursors = run_together(
                    self._connection, [*held, *statements], named=len(statements)
                )
        else:
            cursors = in_service_context(
                self._connection, [*held, *statements], named=len(statements)
            )
            stored = cursors[store_at].fetchone()
            if stored is None:
                raise AlreadyStoredError
            self.row_id, self.attempts = stored
        return cursors[len(held) :]

    def log(
        self,
        action: str,
        *,
        user_id: uuid.UUID | None,
        entity_type: str,
        entity_id: Any,
        details: dict[str, Any] | None = None,
    ) -> None:
        """One audit entry per change, naming the event (written with the event's outcome, in
        the same transaction as the change)."""
        self._entries.append(self._entry(action, user_id, entity_type, str(entity_id), details))

    def execute_logged(
        self,
        statement: Statement,
        action: str,
        *,
        user_id: uuid.UUID | None,
        entity_type: str,
        entity_id: Any = None,
        details: dict[str, Any] | None = None,
        returned: tuple[str, ...] = (),
    ) -> None:
        """`execute` of a write returning the row it wrote (or no row), with its audit entry
        written by the same statement, so that nothing need be read back to log it: the entry's
        entity is the returned `id` unless `entity_id` is given, and the returned columns
        `returned` join its details; no entry when nothing was written. The entries logged
        before it are written before it, in their order."""
        sql, values = statement
        assert isinstance(values, Mapping), "named placeholders only"
        if self._entries:
            self.execute(_ENTRIES_SQL, {"entries": json.dumps(self._entries)})
            self._entries.clear()
        entity = None if entity_id is None else str(entity_id)
        entry = self._entry(action, user_id, entity_type, entity, details)
        self.execute(
            _logged_sql(sql, returned, entity is not None),
            {**values, "logged_entry": json.dumps(entry)},
        )

    def _entry(
        self,
        action: str,
        user_id: uuid.UUID | None,
        entity_type: str,
        entity_id: str | None,
        details: dict[str, Any] | None,
    ) -> dict[str, Any]:
        return {
            "user_id": None if user_id is None else str(user_id),
            "actor": self.event.provider,
            "action": action,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "details": {"event_type": self.event.event_type, **(details or {})},
            "event_id": self.event.event_id,
        }

    def link_user(self, user_id: uuid.UUID) -> None:
        """The event's row belongs to this user (an erasure blanks its payload)."""
        self._user_id = user_id

    def write(self, result: Result | None = None, *, commit: bool = False) -> None:
        """Write the statements, audit entries and user held so far, and `result` as the
        event's outcome (None: not yet, the handler goes on); `commit`: and commit, in the
        same round trip."""
        self.stored()
        values = {
            "entries": json.dumps(self._entries),
            "user_id": self._user_id,
            "outcome": None if result is None else result.outcome.value,
            "reason": None if result is None else result.reason,
            "id": self.row_id,
        }
        self._entries.clear()
        self._user_id = None
        if not commit:
            self._read((_WRITE_SQL, values))
            return
        self.execute(_WRITE_SQL, values)
        # A statement in the pipeline: psycopg's commit() there would wait for one more sync.
        self._read(("COMMIT", None))

    @property
    def pending(self) -> bool:
        """Whether anything is held that `write` has not written."""
        return bool(self._entries) or self._user_id is not None or bool(self._held)
