"""A verified provider event, and what can be wrong with one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
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


class Outcome(StrEnum):
    """What a delivery came to (rules.WEBHOOK_OUTCOMES, and `duplicate`, which stores nothing)."""

    APPLIED = "applied"
    """Stored and applied to the mirror (which may have changed nothing: an older state than the
    one held takes its place in the history)."""
    RECORDED = "recorded"
    """Stored and noted against what it belongs to (a subscription's invoice, payment or refund),
    no state changed: Stripe's subscription events carry the state."""
    IGNORED = "ignored"
    """Stored; afilo-db does not act on it (the reason says why)."""
    DUPLICATE = "duplicate"
    """Stored before: nothing done."""
    DEFERRED = "deferred"
    """Stored as waiting: it needs something not received yet; answered 409 so that the
    provider delivers it again."""
    UNRESOLVED = "unresolved"
    """Still waiting after the bound on retries, or breaking a rule that no delivery again can
    change: answered 200 and parked for an operator (`webhooks unresolved`, `webhooks retry`)."""


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    reason: str | None = None
    problems: Mapping[str, str] | None = None
    """For an event whose content breaks a rule: each field at fault and the rule it broke."""


APPLIED = Result(Outcome.APPLIED)


def ignored(reason: str) -> Result:
    return Result(Outcome.IGNORED, reason)


def recorded(reason: str) -> Result:
    return Result(Outcome.RECORDED, reason)


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


# The times Python's datetime and PostgreSQL's timestamptz both hold: years 1 to 9999.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EARLIEST_SECONDS = int((datetime(1, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds())
_LATEST_SECONDS = int((datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - _EPOCH).total_seconds())


def _from_seconds(value: Any, per_second: int, path: str, unit: str) -> datetime:
    rule = f"must be a Unix time in {unit} between the years 1 and 9999"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError({path: rule})
    if not _EARLIEST_SECONDS * per_second <= value <= _LATEST_SECONDS * per_second:
        raise ValidationError({path: rule})
    return _EPOCH + timedelta(microseconds=value * (1_000_000 // per_second))


def from_unix(value: Any, path: str) -> datetime:
    """Stripe's times: whole seconds since the epoch."""
    return _from_seconds(value, 1, path, "seconds")


def from_unix_ms(value: Any, path: str) -> datetime:
    """Clerk's times: milliseconds since the epoch."""
    return _from_seconds(value, 1000, path, "milliseconds")
