"""Every event stored once and applied in the same transaction as the changes it causes.

The event row goes in first (`INSERT ... ON CONFLICT DO NOTHING` on the provider's event id): a
replay finds it there and is a no-op, and a replay delivered at the same moment waits on the
unique index until the first commits, then finds it. Handlers then take a lock on what the event
is about (the user's profile row, or the Clerk user id) so that two events of one user apply one
after the other, each seeing what the other wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from sqlalchemy import text
from sqlalchemy.orm import Session

from afilo_db.billing import clerk_handlers, stripe_handlers
from afilo_db.billing.delivery import Delivery
from afilo_db.billing.events import ProviderEvent
from afilo_db.security import service_context
from afilo_db.services.transaction import translated_errors


class Outcome(StrEnum):
    APPLIED = "applied"
    """Stored and handled (which may have changed nothing: an older state than the one held)."""
    DUPLICATE = "duplicate"
    """Stored before: nothing done."""
    IGNORED = "ignored"
    """Stored; a type afilo-db does not handle."""


Handler = Callable[[Delivery], None]

HANDLERS: dict[tuple[str, str], Handler] = {
    **{("stripe", name): handler for name, handler in stripe_handlers.HANDLERS.items()},
    **{("clerk", name): handler for name, handler in clerk_handlers.HANDLERS.items()},
}

_STORE_SQL = text("""
INSERT INTO webhook_events (provider, event_id, event_type, subject, payload, occurred_at)
VALUES (:provider, :event_id, :event_type, :subject, :payload, :occurred_at)
ON CONFLICT (provider, event_id) DO NOTHING
RETURNING id
""")


def ingest(session: Session, event: ProviderEvent) -> Outcome:
    """Store the event once and apply it, in the caller's transaction (the caller commits), in
    the service context. Raises ValidationError for an event whose content breaks a rule, and
    NotYetKnownError for one that refers to something not received yet; either way the caller rolls
    back, so nothing of it is stored and the provider's retry can succeed later."""
    with translated_errors():
        service_context(session)
        row_id = session.execute(
            _STORE_SQL,
            {
                "provider": event.provider,
                "event_id": event.event_id,
                "event_type": event.event_type,
                "subject": event.subject,
                "payload": event.payload,
                "occurred_at": event.occurred_at,
            },
        ).scalar_one_or_none()
        if row_id is None:
            return Outcome.DUPLICATE
        handler = HANDLERS.get((event.provider, event.event_type))
        if handler is None:
            return Outcome.IGNORED
        handler(Delivery(session, event, row_id))
        return Outcome.APPLIED
