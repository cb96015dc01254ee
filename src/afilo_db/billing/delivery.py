"""What a webhook event's handler is given (`Delivery`): apart from `ingest`, which calls the
handlers, so that the handlers need not import it back."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from afilo_db.billing.events import ProviderEvent
from afilo_db.services.activity import record_activity


@dataclass(frozen=True)
class Delivery:
    """What a handler gets: the session (in the service context), the event and its row."""

    session: Session
    event: ProviderEvent
    row_id: uuid.UUID

    def log(
        self,
        action: str,
        *,
        user_id: uuid.UUID | None,
        entity_type: str,
        entity_id: Any,
        details: dict[str, Any] | None = None,
    ) -> None:
        """One audit entry per change, naming the event."""
        record_activity(
            self.session,
            actor=self.event.provider,
            action=action,
            entity_type=entity_type,
            entity_id=str(entity_id),
            details={"event_type": self.event.event_type, **(details or {})},
            user_id=user_id,
            event_id=self.event.event_id,
        )

    def link_user(self, user_id: uuid.UUID) -> None:
        """The event's row belongs to this user (an erasure blanks its payload)."""
        self.session.execute(
            text("UPDATE webhook_events SET user_id = :user WHERE id = :id"),
            {"user": user_id, "id": self.row_id},
        )
