"""What the endpoint could not finish: events parked as unresolved (or still deferred, waiting
for their provider's next delivery), applied again when an operator asks (`retry`), and the
deliveries refused before anything was stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from afilo_db.billing.events import Outcome, Result
from afilo_db.billing.ingest import apply
from afilo_db.billing.verification import clerk_event, stripe_event
from afilo_db.db.programs import Progress, no_progress
from afilo_db.errors import ValidationError
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


@dataclass(frozen=True)
class Retried:
    provider: str
    event_id: str
    event_type: str
    result: Result


def retry(
    engine: Engine, event_ids: Sequence[str] | None = None, progress: Progress = no_progress
) -> list[Retried]:
    """Apply the unresolved events again (those of `event_ids`, else all), oldest first, each in a
    transaction of its own as its provider's delivery would be: after an operator supplied what
    one waited for (a user, a variant's price) or what its content broke. One that still cannot
    apply stays unresolved, as stored, and its result says why. A ValidationError names the ids
    that are not unresolved events, before anything is applied."""
    with Session(engine) as session:
        parked = [
            (event.provider, event.event_id, event.event_type, event.payload)
            for event in waiting_events(session)
            if event_ids is None or event.event_id in event_ids
        ]
    unknown = sorted(set(event_ids or ()) - {event_id for _, event_id, _, _ in parked})
    if unknown:
        raise ValidationError({"event_id": f"not an unresolved event: {', '.join(unknown)}"})
    retried = []
    for done, (provider, event_id, event_type, payload) in enumerate(parked):
        progress("retrying", done, len(parked))
        try:
            event = (
                stripe_event(payload) if provider == "stripe" else clerk_event(payload, event_id)
            )
        except ValidationError as error:
            # An erased user's payload is blanked: nothing is left to apply.
            result = Result(Outcome.UNRESOLVED, f"payload unreadable: {error}", error.problems)
        else:
            result = apply(engine, event, retake=True)
        retried.append(Retried(provider, event_id, event_type, result))
    progress("retrying", len(parked), len(parked))
    return retried
