"""The audit trail: who did what, on which record, from where (user_activity_log, append-only)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from afilo_db.models import UserActivityLog
from afilo_db.services.transaction import flush


def record_activity(
    session: Session,
    *,
    actor: str,
    action: str,
    entity_type: str | None = None,
    entity_id: str | None = None,
    details: dict[str, Any] | None = None,
    user_id: uuid.UUID | None = None,
    ip_address: str | None = None,
    user_agent: str | None = None,
    event_id: str | None = None,
) -> UserActivityLog:
    """One entry, written in the caller's transaction: it commits with the change it describes,
    or not at all. `details` must be JSON-serializable; `event_id` names the provider event
    (Stripe, Clerk) whose handling made the change."""
    entry = UserActivityLog(
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        details=details or {},
        user_id=user_id,
        ip_address=ip_address,
        user_agent=user_agent,
        event_id=event_id,
    )
    session.add(entry)
    flush(session)
    return entry
