"""The events the marketplace records: a closed catalog of names, each with the shape of its
properties, checked like every other input before anything is written.

`track()` writes one event in the caller's session (the caller commits); `ingest()` writes many
through COPY in the caller's transaction, validating each as it streams: the first bad event
raises a ValidationError naming it (`events[12].properties.mrr`) and the COPY is abandoned, so
nothing of the batch is written. Events of a month that has no partition yet land in the default
partition, never fail, and are moved into their month when it is created
(`partitions.ensure_ahead`, every refresh).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import psycopg
import pydantic
from pydantic import AwareDatetime, Field, model_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import insert
from sqlalchemy.orm import Session

from afilo_db import rules
from afilo_db.errors import ValidationError
from afilo_db.models import Event
from afilo_db.validation import problems_of
from afilo_db.validation.schemas import Input
from afilo_db.validation.types import (
    Currency,
    EventSource,
    InvoiceId,
    PaidSubscriptionTier,
    Price,
    SubscriptionId,
    Uuid,
)

# Clocks drift; an event from further in the future than this is a bug upstream.
MAX_CLOCK_SKEW = timedelta(minutes=5)
SESSION_ID_MAX_LENGTH = 128
COPY_COLUMNS = ("occurred_at", "event_type", "user_id", "product_id", "session_id", "properties")
COPY_STATEMENT = f"COPY events ({', '.join(COPY_COLUMNS)}) FROM STDIN"


class ProductViewed(Input):
    source: EventSource | None = None


class CartItemAdded(Input):
    source: EventSource | None = None
    quantity: Annotated[int, Field(ge=1, le=rules.CART_MAX_QUANTITY, strict=True)] = 1


class CheckoutCompleted(Input):
    source: EventSource | None = None
    purchase_id: Uuid | None = None
    amount: Price | None = None
    currency: Currency | None = None


class SubscriptionStarted(Input):
    subscription_id: SubscriptionId
    tier: PaidSubscriptionTier
    mrr: Price
    currency: Currency


class SubscriptionChanged(Input):
    """An upgrade (the monthly amount goes up) or a downgrade (it goes down)."""

    subscription_id: SubscriptionId
    from_tier: PaidSubscriptionTier
    to_tier: PaidSubscriptionTier
    previous_mrr: Price
    mrr: Price
    currency: Currency

    @model_validator(mode="after")
    def _changes_something(self) -> SubscriptionChanged:
        if self.from_tier == self.to_tier and self.previous_mrr == self.mrr:
            raise PydanticCustomError(
                "afilo_rule", "a change must change the tier or the monthly amount"
            )
        return self


class SubscriptionCanceled(Input):
    subscription_id: SubscriptionId
    tier: PaidSubscriptionTier
    mrr: Price
    """The monthly amount the cancellation takes away."""
    currency: Currency


class InvoicePaid(Input):
    invoice_id: InvoiceId
    subscription_id: SubscriptionId
    amount: Price
    currency: Currency


class PurchaseRefunded(Input):
    purchase_id: Uuid
    amount: Price
    currency: Currency


@dataclass(frozen=True)
class EventKind:
    name: str
    properties: type[Input]
    needs_user: bool = False
    needs_product: bool = False
    description: str = ""


EVENT_KINDS: dict[str, EventKind] = {
    kind.name: kind
    for kind in (
        EventKind("product.viewed", ProductViewed, needs_product=True,
                  description="a product page was shown"),
        EventKind("cart.item_added", CartItemAdded, needs_product=True,
                  description="a variant of the product went into a cart"),
        EventKind("checkout.completed", CheckoutCompleted, needs_product=True,
                  description="a one-off purchase of the product was paid"),
        EventKind("subscription.started", SubscriptionStarted, needs_user=True,
                  description="a new subscription, with its monthly amount"),
        EventKind("subscription.changed", SubscriptionChanged, needs_user=True,
                  description="an upgrade or a downgrade, with the monthly amounts before and after"),
        EventKind("subscription.canceled", SubscriptionCanceled, needs_user=True,
                  description="a subscription ended, with the monthly amount lost"),
        EventKind("invoice.paid", InvoicePaid, needs_user=True,
                  description="a subscription's invoice was paid (recurring revenue)"),
        EventKind("purchase.refunded", PurchaseRefunded, needs_user=True,
                  description="a one-off purchase was refunded"),
    )
}  # fmt: skip


class EventInput(Input):
    name: str
    user_id: Uuid | None = None
    product_id: Uuid | None = None
    session_id: Annotated[str, Field(min_length=1, max_length=SESSION_ID_MAX_LENGTH)] | None = None
    occurred_at: AwareDatetime | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class ValidEvent:
    occurred_at: datetime
    name: str
    user_id: uuid.UUID | None
    product_id: uuid.UUID | None
    session_id: str | None
    properties_json: str

    def copy_row(self) -> tuple[object, ...]:
        return (self.occurred_at, self.name, self.user_id, self.product_id, self.session_id,
                self.properties_json)  # fmt: skip


def _problems(error: pydantic.ValidationError, prefix: str) -> dict[str, str]:
    # A rule about the whole object ("input") is named after the object itself.
    return {
        f"{prefix}{field}" if field != "input" else prefix.rstrip(".") or field: rule
        for field, rule in problems_of(error).items()
    }


def validate_event(data: Mapping[str, Any] | EventInput, *, prefix: str = "") -> ValidEvent:
    """One event checked: its name is in the catalog, its properties have that event's shape,
    the user and product it needs are there, and it is not in the future."""
    try:
        event = data if isinstance(data, EventInput) else EventInput.model_validate(data)
    except pydantic.ValidationError as error:
        raise ValidationError(_problems(error, prefix)) from None
    kind = EVENT_KINDS.get(event.name)
    if kind is None:
        raise ValidationError({f"{prefix}name": "must be one of " + ", ".join(EVENT_KINDS)})
    problems: dict[str, str] = {}
    try:
        properties = kind.properties.model_validate(event.properties)
    except pydantic.ValidationError as error:
        problems.update(_problems(error, f"{prefix}properties."))
    if kind.needs_user and event.user_id is None:
        problems[f"{prefix}user_id"] = f"is required for {kind.name}"
    if kind.needs_product and event.product_id is None:
        problems[f"{prefix}product_id"] = f"is required for {kind.name}"
    now = datetime.now(UTC)
    occurred_at = event.occurred_at or now
    if occurred_at > now + MAX_CLOCK_SKEW:
        problems[f"{prefix}occurred_at"] = "must not be in the future"
    if problems:
        raise ValidationError(problems)
    return ValidEvent(
        occurred_at=occurred_at,
        name=kind.name,
        user_id=event.user_id,
        product_id=event.product_id,
        session_id=event.session_id,
        properties_json=properties.model_dump_json(exclude_none=True),
    )


def track(
    session: Session,
    name: str,
    user: uuid.UUID | None,
    properties: Mapping[str, Any],
    *,
    product: uuid.UUID | None = None,
    session_id: str | None = None,
    occurred_at: datetime | None = None,
) -> uuid.UUID:
    """Record one event in the caller's transaction; its id. Bad input raises a ValidationError
    naming the field and the rule, and writes nothing."""
    event = validate_event(
        {
            "name": name,
            "user_id": user,
            "product_id": product,
            "session_id": session_id,
            "occurred_at": occurred_at,
            "properties": dict(properties),
        }
    )
    return session.execute(
        insert(Event)
        .values(
            occurred_at=event.occurred_at,
            event_type=event.name,
            user_id=event.user_id,
            product_id=event.product_id,
            session_id=event.session_id,
            properties=json.loads(event.properties_json),
        )
        .returning(Event.id)
    ).scalar_one()


@dataclass(frozen=True)
class IngestResult:
    events: int
    months: tuple[date, ...]
    """The first day of every month the batch touched."""


def ingest(
    connection: psycopg.Connection[Any], events: Iterable[Mapping[str, Any] | EventInput]
) -> IngestResult:
    """Write many events with one COPY, in the caller's transaction, each validated as it
    streams. A bad event raises a ValidationError (its position in the batch in the field name)
    and abandons the COPY: the caller rolls back, nothing of the batch is written."""
    count = 0
    months: set[date] = set()
    with connection.cursor() as cursor, cursor.copy(COPY_STATEMENT) as copy:
        for data in events:
            event = validate_event(data, prefix=f"events[{count}].")
            copy.write_row(event.copy_row())
            months.add(event.occurred_at.astimezone(UTC).date().replace(day=1))
            count += 1
    return IngestResult(events=count, months=tuple(sorted(months)))
