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
from typing import Annotated, Any, Literal, NamedTuple, Union

import psycopg
import pydantic
from psycopg.copy import QueuedLibpqWriter
from pydantic import AwareDatetime, Field, TypeAdapter, create_model
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
    Price,
    Uuid,
)

# Clocks drift; an event from further in the future than this is a bug upstream.
MAX_CLOCK_SKEW = timedelta(minutes=5)
# A long batch reads the clock again every so many events, not for each one.
CLOCK_READ_EVERY = 10_000
SESSION_ID_MAX_LENGTH = 128
COPY_COLUMNS = ("occurred_at", "event_type", "user_id", "product_id", "session_id", "properties")
COPY_STATEMENT = f"COPY events ({', '.join(COPY_COLUMNS)}) FROM STDIN"
# The ids among those given that name no user or product (revision 0016's function sees every
# row, whatever the caller's row-level security lets it see).
UNKNOWN_REFERENCES = (
    "SELECT field, id FROM analytics_unknown_references(%(users)s::uuid[], %(products)s::uuid[])"
)


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


# Facts the billing mirror owns: tracked by hand they would count twice, or count what Stripe
# never charged. A track of one is refused, saying where the fact comes from.
MIRRORED_FACTS: dict[str, str] = {
    name: "comes from the billing mirror, not from events: " + source
    for names, source in (
        (("subscription.started", "subscription.changed", "subscription.canceled",
          "subscription.trial_started"),
         "Stripe's customer.subscription.* and invoice.* webhooks write the subscription's "
         "states (user_subscriptions), which MRR, churn and cohorts read"),
        (("invoice.paid", "payment.succeeded", "purchase.refunded", "charge.refunded"),
         "Stripe's invoice.paid, payment_intent.succeeded, checkout.session.completed and "
         "charge.refunded webhooks write the payments and refunds (analytics_payments), which "
         "revenue reads"),
    )
    for name in names
}  # fmt: skip


@dataclass(frozen=True)
class EventKind:
    name: str
    properties: type[Input]
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
    )
}  # fmt: skip


class EventFields(Input):
    """What every event has besides its name and properties."""

    user_id: Uuid | None = None
    product_id: Uuid | None = None
    session_id: Annotated[str, Field(min_length=1, max_length=SESSION_ID_MAX_LENGTH)] | None = None
    occurred_at: AwareDatetime | None = None


def _event_model(kind: EventKind) -> type[EventFields]:
    required = any(field.is_required() for field in kind.properties.model_fields.values())
    properties: Any = (kind.properties, ... if required else Field(default_factory=kind.properties))
    model: type[EventFields] = create_model(
        kind.properties.__name__ + "Event",
        __base__=EventFields,
        name=(Literal[kind.name], ...),  # type: ignore[arg-type]
        properties=properties,
    )
    return model


# One validation per event: the name picks the model (a tagged union), which checks the
# properties too.
_EVENT_MODELS: Any = Union[tuple(_event_model(kind) for kind in EVENT_KINDS.values())]  # noqa: UP007
_EVENTS: TypeAdapter[Any] = TypeAdapter(Annotated[_EVENT_MODELS, Field(discriminator="name")])
_TAG_ERRORS = {"union_tag_invalid": "must be one of " + ", ".join(EVENT_KINDS),
               "union_tag_not_found": "is required"}  # fmt: skip


class ValidEvent(NamedTuple):
    """A checked event, its fields in the order COPY takes them."""

    occurred_at: datetime
    name: str
    user_id: uuid.UUID | None
    product_id: uuid.UUID | None
    session_id: str | None
    properties_json: str


def _problems(error: pydantic.ValidationError) -> dict[str, str]:
    problems: dict[str, str] = {}
    for item in error.errors():
        if item["type"] in _TAG_ERRORS:
            problems["name"] = _TAG_ERRORS[item["type"]]
    # The tagged union puts the event's name first in each location: not a field.
    for field, rule in problems_of(error).items():
        tag = next((name for name in EVENT_KINDS if field.startswith(name + ".")), None)
        if tag is not None:
            problems.setdefault(field.removeprefix(tag + "."), rule)
        elif "name" not in problems:
            problems.setdefault(field, rule)
    return problems


def validate_event(data: Mapping[str, Any], *, now: datetime | None = None) -> ValidEvent:
    """One event checked: its name is in the catalog, its properties have that event's shape,
    the product it needs is named, and it is not in the future. (That the user and product
    exist is checked with the database: `track`, `ingest`.)"""
    if data.get("name") in MIRRORED_FACTS:
        raise ValidationError({"name": f"{data['name']} {MIRRORED_FACTS[data['name']]}"})
    try:
        event = _EVENTS.validate_python(data)
    except pydantic.ValidationError as error:
        raise ValidationError(_problems(error)) from None
    kind = EVENT_KINDS[event.name]
    problems: dict[str, str] = {}
    if kind.needs_product and event.product_id is None:
        problems["product_id"] = f"is required for {kind.name}"
    now = now or datetime.now(UTC)
    occurred_at = event.occurred_at or now
    if occurred_at > now + MAX_CLOCK_SKEW:
        problems["occurred_at"] = "must not be in the future"
    if problems:
        raise ValidationError(problems)
    return ValidEvent(occurred_at, kind.name, event.user_id, event.product_id, event.session_id,
                      event.properties.model_dump_json(exclude_none=True))  # fmt: skip


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
    """Record one event in the caller's transaction; its id. Bad input (a user or product that
    does not exist included) raises a ValidationError naming the field and the rule, and writes
    nothing."""
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
    unknown = session.connection().exec_driver_sql(
        UNKNOWN_REFERENCES,
        {"users": [event.user_id] if event.user_id else [],
         "products": [event.product_id] if event.product_id else []},
    ).all()  # fmt: skip
    if unknown:
        raise ValidationError(
            {field: f"no {field[:-3]} has the id {id_}" for field, id_ in unknown}
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
    connection: psycopg.Connection[Any], events: Iterable[Mapping[str, Any]]
) -> IngestResult:
    """Write many events with one COPY, in the caller's transaction, each validated as it
    streams. A bad event raises a ValidationError (its position in the batch in the field name)
    and abandons the COPY; a user or product that does not exist is found once the rows are
    sent and raises the same way, naming the first event that mentions it: the caller rolls
    back, nothing of the batch is written. The rows go
    to the server from a thread of their own while the next ones are validated."""
    count = 0
    months: set[date] = set()
    # Each id mentioned, with the first event that mentions it.
    first_mention: dict[tuple[str, uuid.UUID], int] = {}
    now = datetime.now(UTC)
    with (
        connection.cursor() as cursor,
        cursor.copy(COPY_STATEMENT, writer=QueuedLibpqWriter(cursor)) as copy,
    ):
        for data in events:
            if count % CLOCK_READ_EVERY == 0:
                now = datetime.now(UTC)
            try:
                event = validate_event(data, now=now)
            except ValidationError as error:
                raise ValidationError(
                    {f"events[{count}].{field}": rule for field, rule in error.problems.items()}
                ) from None
            copy.write_row(event)
            for field, id_ in (("user_id", event.user_id), ("product_id", event.product_id)):
                if id_ is not None:
                    first_mention.setdefault((field, id_), count)
            months.add(event.occurred_at.astimezone(UTC).date().replace(day=1))
            count += 1
    unknown = connection.execute(
        UNKNOWN_REFERENCES,
        {"users": [id_ for field, id_ in first_mention if field == "user_id"],
         "products": [id_ for field, id_ in first_mention if field == "product_id"]},
    ).fetchall()  # fmt: skip
    if unknown:
        raise ValidationError({
            f"events[{first_mention[(field, id_)]}].{field}": f"no {field[:-3]} has the id {id_}"
            for field, id_ in unknown
        })  # fmt: skip
    return IngestResult(events=count, months=tuple(sorted(months)))
