"""Every event stored once and applied in the same transaction as the changes it causes.

The event row goes in first (`INSERT ... ON CONFLICT` on the provider's event id): a replay finds
it there and is a no-op, and a replay delivered at the same moment waits on the unique index until
the first commits, then finds it. An event that waits for another (deferred) is stored as such
in a transaction of its own and taken up again when its provider delivers it again, up to a bound
(rules.WEBHOOK_DEFER_MAX_ATTEMPTS, WEBHOOK_DEFER_MAX_HOURS), after which it is parked as
unresolved. Handlers then take a lock on what the event
is about (the user's profile row, or the Clerk user id) so that two events of one user apply one
after the other, each seeing what the other wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from afilo_db import rules
from afilo_db.billing import clerk_handlers, stripe_handlers
from afilo_db.billing.delivery import (
    AlreadyStoredError,
    Delivery,
    Statement,
    driver_connection,
    in_service_context,
)
from afilo_db.billing.events import NotYetKnownError, Outcome, ProviderEvent, Result, ignored
from afilo_db.db.engine import PER_TRANSACTION_TIMEOUT_MS
from afilo_db.db.hot.shapes import TIMEOUT_SQL
from afilo_db.errors import ValidationError
from afilo_db.security.context import SERVICE_CONTEXT

Handler = Callable[[Delivery], Result]

HANDLERS: dict[tuple[str, str], Handler] = {
    **{("stripe", name): handler for name, handler in stripe_handlers.HANDLERS.items()},
    **{("clerk", name): handler for name, handler in clerk_handlers.HANDLERS.items()},
}


# A new event is inserted; one stored as `taken_up` (a deferred one delivered again, or an
# unresolved one an operator retries) is taken up again (its delivery counted); any other stored
# one is a duplicate (no row returned). The row lock taken by either makes a concurrent delivery
# of the same event wait for this transaction's end.
def _store_sql(taken_up: str) -> str:
    return f"""
INSERT INTO webhook_events (provider, event_id, event_type, subject, payload, occurred_at)
VALUES (%(provider)s, %(event_id)s, %(event_type)s, %(subject)s, %(payload)s, %(occurred_at)s)
ON CONFLICT (provider, event_id) DO UPDATE SET attempts = webhook_events.attempts + 1
WHERE webhook_events.outcome = '{taken_up}'
RETURNING id, attempts
"""


_STORE_SQL = _store_sql("deferred")
_RETAKE_SQL = _store_sql("unresolved")

# The deferral bound: a deferred event delivered again that still waits becomes unresolved once
# it has been delivered WEBHOOK_DEFER_MAX_ATTEMPTS times or first arrived WEBHOOK_DEFER_MAX_HOURS
# ago (Stripe retries for three days, Svix for about a day: neither should exhaust its schedule,
# which disables the endpoint). An event whose content breaks a rule (`park`) is unresolved at
# once: no delivery again can change it, an operator can (`retry`).
_DEFER_SQL = f"""
INSERT INTO webhook_events (provider, event_id, event_type, subject, payload, occurred_at,
                            outcome, reason)
VALUES (%(provider)s, %(event_id)s, %(event_type)s, %(subject)s, %(payload)s, %(occurred_at)s,
        CASE WHEN %(park)s THEN 'unresolved' ELSE 'deferred' END, %(reason)s)
ON CONFLICT (provider, event_id) DO UPDATE SET
  attempts = webhook_events.attempts + 1, reason = excluded.reason,
  outcome = CASE WHEN %(park)s
                   OR webhook_events.attempts + 1 >= {rules.WEBHOOK_DEFER_MAX_ATTEMPTS}
                   OR webhook_events.received_at
                      < now() - interval '{rules.WEBHOOK_DEFER_MAX_HOURS} hours'
            THEN 'unresolved' ELSE 'deferred' END
WHERE webhook_events.outcome = 'deferred'
RETURNING outcome
"""


def _event_row(event: ProviderEvent) -> dict[str, Any]:
    return {
        "provider": event.provider,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "subject": event.subject,
        "payload": event.payload,
        "occurred_at": event.occurred_at,
    }


def _service_statements(
    connection: psycopg.Connection[Any],
    sql: str,
    values: dict[str, Any],
    timeout_ms: int | None = None,
) -> list[Statement]:
    """The statements that run `sql` in the service context, behind the statement timeout
    `timeout_ms` if given, to be sent in one round trip (a pipeline). On a connection in
    autocommit (`apply`'s) the transaction's BEGIN goes with them; else psycopg sends its own
    first and waits for its answer alone."""
    statements: list[Statement] = []
    if connection.autocommit:
        statements.append(("BEGIN", None))
    if timeout_ms:
        statements.append((TIMEOUT_SQL, (str(timeout_ms),)))
    return [*statements, SERVICE_CONTEXT, (sql, values)]


def ingest(session: Session, event: ProviderEvent) -> Result:
    """Store the event once and apply it, in the caller's transaction (the caller commits), in
    the service context. Raises ValidationError for an event whose content breaks a rule (the
    caller rolls back: nothing of it is stored), and NotYetKnownError for one that refers to
    something not received yet (the caller rolls back and calls `defer`)."""
    return _ingest(driver_connection(session), event, commit=False)


def defer(session: Session, event: ProviderEvent, reason: str) -> Result:
    """Store an event that waits for something not received yet, in the caller's transaction
    (after `ingest` raised NotYetKnownError and was rolled back): deferred (the provider is
    answered 409 and delivers it again), or unresolved once past the bound (answered 200)."""
    outcome = _defer(driver_connection(session), event, reason)
    return Result(outcome, None if outcome == Outcome.DUPLICATE else reason)


def apply(engine: Engine, event: ProviderEvent, *, retake: bool = False) -> Result:
    """`ingest` in a transaction of its own on a connection of `engine`'s pool, committed; an
    event that waits for something not received yet is stored by `defer` in another, and one
    whose content breaks a rule is parked as unresolved, naming the fields and rules (no
    delivery again can change it, so its provider is answered 200 and stops retrying). What the
    endpoint runs: no Session, and the event's last writes go with the COMMIT.

    `retake`: the event is one stored as unresolved, applied again (`parked.retry`); if it still
    waits or still breaks a rule, it stays as it was stored and the result says why."""
    timeout_ms = PER_TRANSACTION_TIMEOUT_MS.get(engine)
    pooled = engine.raw_connection()
    connection = pooled.driver_connection
    assert isinstance(connection, psycopg.Connection), "psycopg only"
    # The transactions are begun by hand, each BEGIN in the round trip of its first statements.
    connection.autocommit = True
    try:
        try:
            return _ingest(
                connection,
                event,
                commit=True,
                timeout_ms=timeout_ms,
                store_sql=_RETAKE_SQL if retake else _STORE_SQL,
            )
        except (NotYetKnownError, ValidationError) as error:
            connection.rollback()
            unresolved = _unresolved(error)
            if retake:
                return unresolved
            try:
                outcome = _defer(
                    connection,
                    event,
                    unresolved.reason or "",
                    timeout_ms=timeout_ms,
                    park=isinstance(error, ValidationError),
                )
                connection.commit()
            except BaseException:
                # Not even storable as waiting (a column's own rule): the caller refuses it.
                if not connection.closed:
                    connection.rollback()
                raise
            if outcome == Outcome.UNRESOLVED:
                return unresolved
            return Result(outcome, None if outcome == Outcome.DUPLICATE else unresolved.reason)
        except BaseException:
            if not connection.closed:
                connection.rollback()
            raise
    finally:
        if connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            connection.autocommit = False
        else:  # lost mid-transaction: not one to give back as the pool's others are
            pooled.invalidate()
        pooled.close()


def _unresolved(error: NotYetKnownError | ValidationError) -> Result:
    """What an event comes to that cannot be applied yet: still waiting, or breaking a rule."""
    if isinstance(error, ValidationError):
        return Result(Outcome.UNRESOLVED, f"breaks a rule: {error}", error.problems)
    return Result(Outcome.UNRESOLVED, str(error))


def _ingest(
    connection: psycopg.Connection[Any],
    event: ProviderEvent,
    *,
    commit: bool,
    timeout_ms: int | None = None,
    store_sql: str = _STORE_SQL,
) -> Result:
    # The row's lock is what makes a concurrent delivery of the same event wait, so its
    # statement is the transaction's first. It goes with the handler's first read (a round
    # trip less an event); what that round trip did for a replay is rolled back. In a caller's
    # transaction, which this cannot roll back, it goes alone, before the handler runs.
    delivery = Delivery(connection, event)
    delivery.store_first(_service_statements(connection, store_sql, _event_row(event), timeout_ms))
    try:
        if not commit:
            delivery.stored()
        handler = HANDLERS.get((event.provider, event.event_type))
        if handler is None:
            result = ignored(f"afilo-db does not act on {event.provider} {event.event_type}")
        else:
            result = handler(delivery)
        delivery.stored()
    except AlreadyStoredError:
        if commit:
            connection.rollback()
        return Result(Outcome.DUPLICATE)
    # Applied is the column's default: an event applied at its first delivery that changed
    # nothing to record needs no more.
    if delivery.pending or result.outcome != Outcome.APPLIED or delivery.attempts > 1:
        delivery.write(result, commit=commit)
    elif commit:
        connection.commit()
    return result


def _defer(
    connection: psycopg.Connection[Any],
    event: ProviderEvent,
    reason: str,
    timeout_ms: int | None = None,
    *,
    park: bool = False,
) -> Outcome:
    statements = _service_statements(
        connection, _DEFER_SQL, {**_event_row(event), "reason": reason, "park": park}, timeout_ms
    )
    stored = in_service_context(connection, statements)[-1].fetchone()
    if stored is None:
        # Applied by a concurrent delivery meanwhile.
        return Outcome.DUPLICATE
    return Outcome(stored[0])
