"""Signatures checked with the providers' own libraries, within their tolerance windows
(five minutes for both), before anything is parsed or stored."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import stripe
from svix.webhooks import Webhook, WebhookVerificationError

from afilo_db.billing.events import ProviderEvent, SignatureError, field, from_unix, from_unix_ms
from afilo_db.errors import ValidationError
from afilo_db.validation.checks import stripe_id_problem, svix_message_id_problem

STRIPE_TOLERANCE_SECONDS = stripe.Webhook.DEFAULT_TOLERANCE


def _json_object(payload: str) -> dict[str, Any]:
    try:
        document = json.loads(payload)
    except ValueError as error:
        raise ValidationError({"body": f"not JSON: {error}"}) from error
    if not isinstance(document, dict):
        raise ValidationError({"body": "must be a JSON object"})
    return document


def _decoded(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValidationError({"body": "not UTF-8"}) from error


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
