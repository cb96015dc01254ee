"""What the endpoint could not finish: events parked as unresolved (or still deferred, waiting
for their provider's next delivery), and the deliveries refused before anything was stored."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from afilo_db.models import WebhookEvent, WebhookRefusal


def waiting_events(session: Session, *, with_deferred: bool = False) -> Sequence[WebhookEvent]:
    """The unresolved events (and the deferred ones too, if asked), oldest first."""
    outcomes = ("unresolved", "deferred") if with_deferred else ("unresolved",)
    return session.scalars(
        select(WebhookEvent)
        .where(WebhookEvent.outcome.in_(outcomes))
        .order_by(WebhookEvent.received_at, WebhookEvent.event_id)
    ).all()


def refusal_counts(session: Session) -> Sequence[WebhookRefusal]:
    """Refused deliveries by provider, status and reason, the most recent first."""
    return session.scalars(
        select(WebhookRefusal).order_by(WebhookRefusal.last_at.desc(), WebhookRefusal.reason)
    ).all()
