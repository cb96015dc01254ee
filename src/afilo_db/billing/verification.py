"""Signatures checked with the providers' own libraries, within their tolerance windows
(five minutes either way for both), before anything is parsed or stored; then the body's shape:
JSON, an object, nested at most MAX_NESTING deep, every string storable as PostgreSQL text."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import stripe
from svix.webhooks import Webhook, WebhookVerificationError

from afilo_db.billing.events import ProviderEvent, SignatureError, field, from_unix, from_unix_ms
from afilo_db.errors import ValidationError
from afilo_db.validation.checks import stripe_id_problem, svix_message_id_problem

STRIPE_TOLERANCE_SECONDS = stripe.Webhook.DEFAULT_TOLERANCE


# A provider's event nests a dozen levels at most (an invoice's line's price's tiers); far deeper
# is not an event, and Python's JSON parser would hit its recursion limit on it.
MAX_NESTING = 64


def _refuse_unstorable(document: Any) -> None:
    """Every key and string of the document storable as PostgreSQL text and as UTF-8, and nested
    at most MAX_NESTING deep: else a ValidationError naming the first JSON path that is not."""
    pending: list[tuple[Any, str, int]] = [(document, "body", 0)]
    while pending:
        value, path, depth = pending.pop()
        if depth > MAX_NESTING:
            raise ValidationError({path: f"nested more than {MAX_NESTING} levels deep"})
        if isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}"
                _refuse_unstorable_text(key, child)
                pending.append((item, child, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, f"{path}.{index}", depth + 1) for index, item in enumerate(value))
        elif isinstance(value, str):
            _refuse_unstorable_text(value, path)


def _refuse_unstorable_text(value: str, path: str) -> None:
    if "\x00" in value:
        raise ValidationError({path: "must not contain the NUL character (\\u0000)"})
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValidationError({path: "must not contain a lone UTF-16 surrogate"}) from error


def _json_object(payload: str) -> dict[str, Any]:
    try:
        document = json.loads(payload)
    except RecursionError as error:
        raise ValidationError({"body": f"nested more than {MAX_NESTING} levels deep"}) from error
    except ValueError as error:
        raise ValidationError({"body": f"not JSON: {error}"}) from error
    if not isinstance(document, dict):
        raise ValidationError({"body": "must be a JSON object"})
    _refuse_unstorable(document)
    return document


def _decoded(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValidationError({"body": "not UTF-8"}) from error


def _refuse_future_signature(signature_header: str) -> None:
    """Stripe's library refuses a signature older than the tolerance but not one dated later than
    it (Svix refuses both): a header signed ahead of time is refused here, as Svix does."""
    for element in signature_header.split(","):
        name, _, value = element.strip().partition("=")
        if name == "t" and value.isdigit() and int(value) > time.time() + STRIPE_TOLERANCE_SECONDS:
            raise SignatureError("stripe", "timestamp too new: later than the tolerance from now")


def verify_stripe(body: bytes, signature_header: str | None, secret: str) -> ProviderEvent:
    """The event of a Stripe delivery, once its `Stripe-Signature` header proves it (an HMAC of
    the timestamp and the exact body, the timestamp within five minutes)."""
    payload = _decoded(body)
    try:
        stripe.WebhookSignature.verify_header(
            payload, signature_header, secret, STRIPE_TOLERANCE_SECONDS
        )
    except stripe.SignatureVerificationError as error:
        raise SignatureError("stripe", str(error.user_message or error)) from error
    _refuse_future_signature(signature_header or "")
    return stripe_event(payload)


def stripe_event(payload: str) -> ProviderEvent:
    """The event a Stripe body holds (its signature checked already, or stored after it was)."""
    document = _json_object(payload)
    event_id = str(field(document, "id"))
    problem = stripe_id_problem("event", event_id)
    if problem is not None:
        raise ValidationError({"id": problem})
    data = field(document, "data.object")
    if not isinstance(data, dict):
        raise ValidationError({"data.object": "must be an object"})
    return ProviderEvent(
        provider="stripe",
        event_id=event_id,
        event_type=str(field(document, "type")),
        occurred_at=from_unix(field(document, "created"), "created"),
        data=data,
        payload=payload,
    )


def verify_clerk(body: bytes, headers: Mapping[str, str], secret: str) -> ProviderEvent:
    """The event of a Clerk delivery, once its Svix headers (`svix-id`, `svix-timestamp`,
    `svix-signature`) prove it; the Svix message id is the event id."""
    payload = _decoded(body)
    wanted = {name: value for name, value in headers.items() if name.lower().startswith("svix-")}
    try:
        Webhook(secret).verify(payload, wanted)
    except WebhookVerificationError as error:
        raise SignatureError("clerk", str(error) or "invalid signature") from error
    event_id = {name.lower(): value for name, value in wanted.items()}.get("svix-id", "")
    return clerk_event(payload, event_id)


def clerk_event(payload: str, event_id: str) -> ProviderEvent:
    """The event a Clerk body holds, under its Svix message id (its signature checked already,
    or stored after it was)."""
    problem = svix_message_id_problem(event_id)
    if problem is not None:
        raise ValidationError({"svix-id": problem})
    document = _json_object(payload)
    data = field(document, "data")
    if not isinstance(data, dict):
        raise ValidationError({"data": "must be an object"})
    return ProviderEvent(
        provider="clerk",
        event_id=event_id,
        event_type=str(field(document, "type")),
        occurred_at=from_unix_ms(field(document, "timestamp"), "timestamp"),
        data=data,
        payload=payload,
    )
