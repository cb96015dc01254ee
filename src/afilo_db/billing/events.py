"""A verified provider event, and what can be wrong with one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from afilo_db.errors import ConflictError, ValidationError

Provider = Literal["stripe", "clerk"]


class SignatureError(ValidationError):
    """A missing, invalid or expired signature: nothing is written (the endpoint answers 400)."""

    def __init__(self, provider: Provider, reason: str) -> None:
        super().__init__({f"{provider}.signature": reason})


class NotYetKnownError(ConflictError):
    """The event refers to something that has not arrived yet (a customer before its user, a
    refund before its payment). Nothing is written; the provider retries the delivery later, by
    when the event it depends on has usually arrived."""


@dataclass(frozen=True)
class ProviderEvent:
    provider: Provider
    event_id: str
    """Stripe's `evt_...`; for Clerk, the Svix message id (`svix-id`, `msg_...`)."""
    event_type: str
    occurred_at: datetime
    """Stripe's `created`; Clerk's `timestamp`."""
    data: Mapping[str, Any]
    """The object the event is about: Stripe's `data.object`, Clerk's `data`."""
    payload: str
    """The body exactly as signed."""

    @property
    def subject(self) -> str | None:
        subject = self.data.get("id")
        return subject if isinstance(subject, str) else None


def field(mapping: Mapping[str, Any], path: str, *, required: bool = True) -> Any:
    """`mapping['a']['b']` for path 'a.b'; a missing required one is a ValidationError naming it."""
    value: Any = mapping
    for key in path.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
        if value is None:
            break
    if value is None and required:
        raise ValidationError({path: "required"})
    return value


def text_field(mapping: Mapping[str, Any], path: str) -> str:
    value = field(mapping, path)
    if not isinstance(value, str) or not value:
        raise ValidationError({path: "must be a non-empty string"})
    return value


def from_unix(value: Any, path: str) -> datetime:
    """Stripe's times: whole seconds since the epoch."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError({path: "must be a Unix time in seconds"})
    return datetime.fromtimestamp(value, UTC)


def from_unix_ms(value: Any, path: str) -> datetime:
    """Clerk's times: milliseconds since the epoch."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError({path: "must be a Unix time in milliseconds"})
    return datetime.fromtimestamp(value / 1000, UTC)
