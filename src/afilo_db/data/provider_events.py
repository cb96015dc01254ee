"""Stripe's and Clerk's webhook events as they send them, and signed as they sign them.

The objects follow Stripe's current API (`API_VERSION`: the period on each subscription item,
the invoice's subscription under `parent.subscription_details`) and Clerk's user object. Stripe
signs with its own `generate_signature_header` (HMAC-SHA256 of `timestamp.body`), Clerk through
Svix's own `Webhook.sign` (HMAC-SHA256 of `id.timestamp.body`): what `billing.verify_stripe` and
`billing.verify_clerk` check. The demo shop and the tests build their deliveries here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import stripe
from svix.webhooks import Webhook

API_VERSION = "2025-10-29.clover"


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery: the body and the headers that sign it."""

    provider: str
    event_id: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"/webhooks/{self.provider}"


def stripe_delivery(
    event_id: str,
    event_type: str,
    created: int,
    obj: dict[str, Any],
    *,
    secret: str,
    signed_at: int,
) -> Delivery:
    """A Stripe event about `obj`, created at `created` (Unix seconds), signed at `signed_at`."""
    body = json.dumps({
        "id": event_id, "object": "event", "type": event_type, "created": created,
        "api_version": API_VERSION, "livemode": False, "pending_webhooks": 1,
        "data": {"object": obj},
    })  # fmt: skip
    header = stripe.WebhookSignature.generate_signature_header(body, secret, signed_at)
    return Delivery("stripe", event_id, body.encode(), {"Stripe-Signature": header})


def clerk_delivery(
    message_id: str,
    event_type: str,
    timestamp_ms: int,
    data: dict[str, Any],
    *,
    secret: str,
    signed_at: datetime,
) -> Delivery:
    """A Clerk event (through Svix: the message id is the event's id), signed at `signed_at`."""
    body = json.dumps({"object": "event", "type": event_type, "timestamp": timestamp_ms,
                       "data": data, "instance_id": "ins_demo000001"})  # fmt: skip
    signature = Webhook(secret).sign(message_id, signed_at, body)
    headers = {
        "svix-id": message_id,
        "svix-timestamp": str(int(signed_at.timestamp())),
        "svix-signature": signature,
    }
    return Delivery("clerk", message_id, body.encode(), headers)


def clerk_user(
    clerk_user_id: str,
    email: str,
    updated_ms: int,
    *,
    first_name: str = "Ada",
    last_name: str = "Lovelace",
    created_ms: int | None = None,
) -> dict[str, Any]:
    """Clerk's user object: its primary address among its addresses, times in milliseconds."""
    address_id = "idn_" + clerk_user_id.removeprefix("user_")
    return {
        "id": clerk_user_id, "object": "user", "first_name": first_name, "last_name": last_name,
        "username": None, "primary_email_address_id": address_id,
        "email_addresses": [{"id": address_id, "object": "email_address", "email_address": email,
                             "verification": {"status": "verified", "strategy": "email_code"}}],
        "created_at": updated_ms if created_ms is None else created_ms, "updated_at": updated_ms,
    }  # fmt: skip


def price(
    price_id: str,
    unit_amount: int,
    currency: str,
    tier: str,
    *,
    interval: str = "month",
    interval_count: int = 1,
) -> dict[str, Any]:
    """A recurring price that sells `tier` (its metadata says which), billed every
    `interval_count` `interval`s (day, week, month or year)."""
    return {
        "id": price_id, "object": "price", "active": True, "currency": currency,
        "unit_amount": unit_amount, "type": "recurring", "billing_scheme": "per_unit",
        "recurring": {"interval": interval, "interval_count": interval_count,
                      "usage_type": "licensed"},
        "metadata": {"tier": tier},
    }  # fmt: skip


def subscription(
    subscription_id: str,
    customer: str,
    clerk_user_id: str,
    status: str,
    item_price: dict[str, Any],
    period: tuple[int, int],
    *,
    created: int,
    trial: tuple[int, int] | None = None,
    canceled_at: int | None = None,
) -> dict[str, Any]:
    """A subscription's whole state, one item; the period on the item, as since 2025-03-31."""
    return {
        "id": subscription_id, "object": "subscription", "customer": customer,
        "status": status, "created": created, "start_date": created,
        "currency": item_price["currency"], "collection_method": "charge_automatically",
        "metadata": {"clerk_user_id": clerk_user_id},
        "cancel_at_period_end": False, "cancel_at": None, "canceled_at": canceled_at,
        "ended_at": canceled_at,
        "trial_start": trial[0] if trial else None, "trial_end": trial[1] if trial else None,
        "items": {"object": "list", "data": [{
            "id": "si_" + subscription_id.removeprefix("sub_"), "object": "subscription_item",
            "subscription": subscription_id, "quantity": 1,
            "current_period_start": period[0], "current_period_end": period[1],
            "price": item_price,
        }]},
    }  # fmt: skip


def invoice(
    invoice_id: str,
    subscription_id: str,
    customer: str,
    *,
    amount: int,
    currency: str,
    period: tuple[int, int],
    billing_reason: str,
    paid_at: int | None,
) -> dict[str, Any]:
    """A subscription's invoice: paid at `paid_at`, or open (its payment failed) when None."""
    paid = paid_at is not None
    return {
        "id": invoice_id, "object": "invoice", "customer": customer, "currency": currency,
        "billing_reason": billing_reason, "collection_method": "charge_automatically",
        "status": "paid" if paid else "open", "amount_due": amount,
        "amount_paid": amount if paid else 0, "amount_remaining": 0 if paid else amount,
        "attempt_count": 1, "attempted": True,
        "period_start": period[0], "period_end": period[1],
        "status_transitions": {"paid_at": paid_at, "finalized_at": period[0]},
        "parent": {"type": "subscription_details",
                   "subscription_details": {"subscription": subscription_id}},
        "lines": {"object": "list", "data": [{
            "object": "line_item", "amount": amount, "currency": currency,
            "period": {"start": period[0], "end": period[1]},
        }]},
    }  # fmt: skip


def checkout_session(
    session_id: str,
    payment_intent_id: str,
    clerk_user_id: str,
    customer: str,
    *,
    amount: int,
    currency: str,
    stripe_price_id: str,
    created: int,
) -> dict[str, Any]:
    """A paid Checkout Session of a one-off payment for the variant sold at `stripe_price_id`."""
    return {
        "id": session_id, "object": "checkout.session", "mode": "payment", "status": "complete",
        "payment_status": "paid", "payment_intent": payment_intent_id, "created": created,
        "amount_subtotal": amount, "amount_total": amount, "currency": currency,
        "customer": customer, "client_reference_id": clerk_user_id,
        "metadata": {"stripe_price_id": stripe_price_id},
    }  # fmt: skip


def payment_intent(
    payment_intent_id: str,
    clerk_user_id: str,
    customer: str,
    *,
    amount: int,
    currency: str,
    stripe_price_id: str,
    created: int,
) -> dict[str, Any]:
    """A succeeded one-off payment (the metadata Checkout copies onto its PaymentIntent)."""
    return {
        "id": payment_intent_id, "object": "payment_intent", "status": "succeeded",
        "amount": amount, "amount_received": amount, "currency": currency, "customer": customer,
        "created": created, "latest_charge": "ch_" + payment_intent_id.removeprefix("pi_"),
        "metadata": {"clerk_user_id": clerk_user_id, "stripe_price_id": stripe_price_id},
    }  # fmt: skip


def refunded_charge(
    charge_id: str, payment_intent_id: str, *, amount: int, refunded: int, currency: str
) -> dict[str, Any]:
    """A charge after a refund: `amount_refunded` is its running total, as Stripe sends it."""
    return {
        "id": charge_id, "object": "charge", "payment_intent": payment_intent_id,
        "amount": amount, "amount_captured": amount, "amount_refunded": refunded,
        "refunded": refunded == amount, "currency": currency, "paid": True,
        "status": "succeeded",
    }  # fmt: skip
