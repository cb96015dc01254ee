"""Stripe events -> user_subscriptions (history), user_profiles.subscription_tier, purchases.

Which user: `metadata.clerk_user_id` (or a Checkout Session's `client_reference_id`) on the
object, else its `customer` matched against user_profiles.stripe_customer_id (recorded the first
time both are seen together). Which tier: `metadata.tier` on the price, else on the subscription.
Which product a one-off payment buys: `metadata.stripe_price_id` (a variant's Stripe price).

Order: every subscription event adds its state to the history at its place in time (Stripe's
`created`, then the event id to break ties); only the newest state is current. A purchase's
status only moves forward (pending -> paid -> refunded), whatever order the events come in.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from afilo_db import rules
from afilo_db.billing.events import (
    APPLIED,
    NotYetKnownError,
    Result,
    field,
    from_unix,
    ignored,
    recorded,
    text_field,
)
from afilo_db.errors import ValidationError
from afilo_db.validation.checks import stripe_id_problem, subscription_price_id_problem

if TYPE_CHECKING:
    from afilo_db.billing.delivery import Delivery, Statement

_CENTS = Decimal("0.01")
_TIERS_LOWEST_FIRST = (
    "ARRAY[" + ", ".join(rules.sql_literal(t) for t in rules.SUBSCRIPTION_TIERS) + "]"
)
_PURCHASE_PROGRESS = {status: rank for rank, status in enumerate(rules.PURCHASE_STATUSES)}


def _amount(minor_units: Any, path: str) -> Decimal:
    if isinstance(minor_units, bool) or not isinstance(minor_units, int):
        raise ValidationError({path: "must be a whole number of minor units (cents)"})
    return (Decimal(minor_units) / 100).quantize(_CENTS)


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


_ERASED_USER = (
    "user_profiles.clerk_user_id = 'user_erased' || replace(user_profiles.id::text, '-', '')"
)
ERASED = ignored("the user was deleted in Clerk and their personal data erased")


def _locked_user(
    delivery: Delivery,
    obj: Mapping[str, Any],
    *,
    subscription_id: str | None = None,
    payment_intent: str | None = None,
) -> uuid.UUID | None:
    """The user the object belongs to, their profile row locked for the rest of the transaction
    (events of one user apply one after the other); None for a user deleted in Clerk and erased
    (their late events are acknowledged, not applied). Nobody yet: NotYetKnownError."""
    user_id, _ = _locked_user_and(
        delivery, obj, None, subscription_id=subscription_id, payment_intent=payment_intent
    )
    return user_id


def _locked_user_and(
    delivery: Delivery,
    obj: Mapping[str, Any],
    then: Statement | None,
    *,
    subscription_id: str | None = None,
    payment_intent: str | None = None,
) -> tuple[uuid.UUID | None, Any]:
    """`_locked_user`, and the first row of `then`, run after it in the same round trip (a
    lock it takes comes after the user's, as it would in a round trip of its own)."""
    clerk_user_id = _metadata(obj).get("clerk_user_id") or obj.get("client_reference_id")
    customer = obj.get("customer") if isinstance(obj.get("customer"), str) else None
    if clerk_user_id is None and customer is None:
        raise ValidationError({"data.object.customer": "required (or metadata.clerk_user_id)"})
    row, *then_rows = delivery.rows(
        (
            "SELECT id, stripe_customer_id FROM user_profiles"
            " WHERE clerk_user_id = %(clerk)s OR stripe_customer_id = %(customer)s"
            " ORDER BY clerk_user_id = %(clerk)s DESC LIMIT 1 FOR UPDATE",
            {"clerk": clerk_user_id, "customer": customer},
        ),
        *([] if then is None else [then]),
    )
    then_row = then_rows[0] if then_rows else None
    if row is None:
        if _erased(delivery, clerk_user_id, subscription_id, payment_intent):
            return None, then_row
        raise NotYetKnownError("no user for this Stripe customer or Clerk user yet")
    user_id: uuid.UUID = row.id
    if customer is not None and row.stripe_customer_id is None:
        delivery.execute(
            "UPDATE user_profiles SET stripe_customer_id = %(customer)s WHERE id = %(id)s",
            {"customer": customer, "id": user_id},
        )
        delivery.log(
            "profile.stripe_customer_linked",
            user_id=user_id,
            entity_type="user_profiles",
            entity_id=user_id,
            details={"stripe_customer_id": customer},
        )
    return user_id, then_row


def _erased(
    delivery: Delivery,
    clerk_user_id: Any,
    subscription_id: str | None,
    payment_intent: str | None,
) -> bool:
    """Whether the object's user was deleted in Clerk: a user.deleted of that Clerk id is stored,
    or the subscription or payment belongs to an erased profile (its ids are erased with it)."""
    return bool(
        delivery.value(
            "SELECT CAST(%(clerk)s AS text) IS NOT NULL AND EXISTS (SELECT FROM webhook_events"
            " WHERE provider = 'clerk' AND event_type = 'user.deleted' AND subject IN"
            " (%(clerk)s, 'sha256:' || encode(sha256(convert_to(%(clerk)s, 'UTF8')), 'hex')))"
            " OR EXISTS (SELECT FROM user_profiles WHERE " + _ERASED_USER + " AND id IN ("
            "  SELECT user_id FROM user_subscriptions WHERE stripe_subscription_id = %(sub)s"
            "  UNION ALL SELECT user_id FROM purchases WHERE stripe_payment_intent_id = %(pi)s))",
            {
                "clerk": clerk_user_id if isinstance(clerk_user_id, str) else None,
                "sub": subscription_id,
                "pi": payment_intent,
            },
        )
    )


def _price_of(item: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """An item's price: `price`, or on subscriptions older than Stripe's Prices, `plan`."""
    for key in ("price", "plan"):
        price = item.get(key)
        if isinstance(price, Mapping):
            return price
    return None


def _price_tier(price: Mapping[str, Any]) -> str | None:
    tier = _metadata(price).get("tier")
    return tier if isinstance(tier, str) else None


def _tier_rank(tier: str | None) -> int:
    return rules.SUBSCRIPTION_TIERS.index(tier) if tier in rules.SUBSCRIPTION_TIERS else -1


def _tier_item(obj: Mapping[str, Any]) -> tuple[int, Mapping[str, Any], Mapping[str, Any]]:
    """The item that sells the subscription's tier, with its index and price: the item whose
    price names a tier (the highest, when several do), not item 0, which may be an add-on."""
    items = field(obj, "items.data", required=False)
    if items is None and isinstance(obj.get("plan"), Mapping):
        items = [{"plan": obj["plan"]}]  # before subscription items, one plan per subscription
    if not isinstance(items, list) or not items:
        raise ValidationError({"data.object.items.data": "must hold the subscription's items"})
    priced: list[tuple[int, Mapping[str, Any], Mapping[str, Any]]] = []
    for index, item in enumerate(items):
        price = _price_of(item) if isinstance(item, Mapping) else None
        if price is None:
            raise ValidationError(
                {f"data.object.items.data.{index}.price": "required: the item's price or plan"}
            )
        priced.append((index, item, price))
    return max(priced, key=lambda found: (_tier_rank(_price_tier(found[2])), -found[0]))


def _subscription_state(obj: Mapping[str, Any]) -> dict[str, Any]:
    index, item, price = _tier_item(obj)
    path = f"data.object.items.data.{index}"
    price_path = f"{path}.{'price' if 'price' in item else 'plan'}"
    tier = _price_tier(price) or _metadata(obj).get("tier")
    if tier not in rules.SUBSCRIPTION_TIERS:
        raise ValidationError(
            {f"{price_path}.metadata.tier": "required: the tier this price sells, one of "
             + ", ".join(rules.SUBSCRIPTION_TIERS)}
        )  # fmt: skip
    status = text_field(obj, "status")
    if status not in rules.SUBSCRIPTION_MACHINE:
        raise ValidationError(
            {"data.object.status": "must be one of " + ", ".join(rules.SUBSCRIPTION_STATUSES)}
        )
    # Since Stripe's 2025-03-31 API the period is on each item; before, on the subscription.
    start_path, end_path = (
        (f"{path}.current_period_start", f"{path}.current_period_end")
        if "current_period_start" in item
        else ("data.object.current_period_start", "data.object.current_period_end")
    )
    start = item.get("current_period_start", obj.get("current_period_start"))
    end = item.get("current_period_end", obj.get("current_period_end"))
    # A legacy plan states its amount as `amount`; a price as `unit_amount`.
    amount_key = "unit_amount" if "unit_amount" in price else "amount"
    canceled_at = obj.get("canceled_at")
    return {
        "stripe_price_id": _price_id(price, price_path),
        "tier": tier,
        "amount": _amount(price.get(amount_key), f"{price_path}.{amount_key}"),
        "currency": text_field(price, "currency").upper(),
        "status": status,
        "current_period_start": from_unix(start, start_path),
        "current_period_end": from_unix(end, end_path),
        "cancel_at_period_end": bool(obj.get("cancel_at_period_end")),
        "canceled_at": None
        if canceled_at is None
        else from_unix(canceled_at, "data.object.canceled_at"),
    }


def _price_id(price: Mapping[str, Any], path: str) -> str:
    price_id = price.get("id")
    problem = subscription_price_id_problem(price_id) if isinstance(price_id, str) else "required"
    if problem is not None:
        raise ValidationError({f"{path}.id": problem})
    return str(price_id)


_STATE_COLUMNS = (
    "stripe_price_id", "tier", "status", "amount", "currency", "current_period_start",
    "current_period_end", "cancel_at_period_end", "canceled_at",
)  # fmt: skip


def _sort_key(as_of: datetime | None, event_id: str | None) -> tuple[float, str]:
    return (as_of.timestamp() if as_of is not None else float("-inf"), event_id or "")


def _supersedes(
    status: str, key: tuple[float, str], held_status: str, held_key: tuple[float, str]
) -> bool:
    """Whether a state supersedes the one held, by Stripe's status machine, then by time: nothing
    follows a terminal status (canceled, incomplete_expired), and a terminal status reported in
    the same second as another comes after it, whatever the event ids say."""
    final = rules.SUBSCRIPTION_MACHINE[status].terminal
    held_final = rules.SUBSCRIPTION_MACHINE[held_status].terminal
    if held_final != final:
        return final and key[0] >= held_key[0]
    return key > held_key


# The subscription's current state, locked (its new state is decided against it).
_CURRENT_STATE_SQL = (
    "SELECT id, user_id, status, state_as_of, state_event_id FROM user_subscriptions"
    " WHERE stripe_subscription_id = %(sub)s AND is_current FOR UPDATE"
)


def _record_subscription_state(
    delivery: Delivery,
    user_id: uuid.UUID,
    subscription_id: str,
    state: Mapping[str, Any],
    current: Any,
) -> None:
    """Add this state to the subscription's history; it becomes current if it supersedes
    `current` (the current state, locked: `_CURRENT_STATE_SQL`'s row)."""
    event = delivery.event
    if current is not None and current.user_id != user_id:
        raise ValidationError({"data.object.customer": "the subscription belongs to another user"})
    newest = current is None or _supersedes(
        state["status"],
        _sort_key(event.occurred_at, event.event_id),
        current.status,
        _sort_key(current.state_as_of, current.state_event_id),
    )
    if newest and current is not None:
        delivery.execute(
            "UPDATE user_subscriptions SET is_current = false WHERE id = %(id)s",
            {"id": current.id},
        )
    columns = ", ".join(_STATE_COLUMNS)
    values = ", ".join(f"%({name})s" for name in _STATE_COLUMNS)
    # Nothing is read back: each statement logs what it wrote, and both go with the event's
    # outcome and COMMIT (the tier refreshed after the state it may follow from).
    delivery.execute_logged(
        (
            f"INSERT INTO user_subscriptions (user_id, stripe_subscription_id, {columns},"
            " is_current, state_event_id, state_as_of)"
            f" VALUES (%(user)s, %(sub)s, {values}, %(newest)s, %(event_id)s, %(as_of)s)"
            " RETURNING id",
            {
                **{name: state[name] for name in _STATE_COLUMNS},
                "user": user_id,
                "sub": subscription_id,
                "newest": newest,
                "event_id": event.event_id,
                "as_of": event.occurred_at,
            },
        ),
        "subscription.state_recorded" if newest else "subscription.late_state_recorded",
        user_id=user_id,
        entity_type="user_subscriptions",
        details={"stripe_subscription_id": subscription_id, "status": state["status"],
                 "tier": state["tier"], "current": newest},
    )  # fmt: skip
    delivery.execute_logged(
        (_REFRESH_TIER_SQL, {"user": user_id}),
        "profile.tier_changed",
        user_id=user_id,
        entity_type="user_profiles",
        entity_id=user_id,
        returned=("subscription_tier",),
    )


# The profile's tier: the highest of the user's subscriptions still in force, else free; the new
# tier when it changed, else no row.
_REFRESH_TIER_SQL = (
    "UPDATE user_profiles u SET subscription_tier = t.tier FROM (SELECT coalesce(("
    " SELECT s.tier FROM user_subscriptions s"
    " WHERE s.user_id = %(user)s AND s.is_current AND "
    + rules.sql_in("s.status", rules.TIER_HOLDING_SUBSCRIPTION_STATUSES)
    + f" ORDER BY array_position({_TIERS_LOWEST_FIRST}, s.tier) DESC LIMIT 1), 'free') AS tier"
    ") t WHERE u.id = %(user)s AND u.subscription_tier IS DISTINCT FROM t.tier"
    " RETURNING u.subscription_tier"
)


def subscription_changed(delivery: Delivery) -> Result:
    """customer.subscription.*: the object is the whole state, placed by the event's time."""
    obj = delivery.event.data
    subscription_id = _stripe_id(obj, "id", "subscription", "data.object.id")
    state = _subscription_state(obj)
    user_id, current = _locked_user_and(
        delivery, obj, (_CURRENT_STATE_SQL, {"sub": subscription_id}),
        subscription_id=subscription_id,
    )  # fmt: skip
    if user_id is None:
        return ERASED
    delivery.link_user(user_id)
    _record_subscription_state(delivery, user_id, subscription_id, state, current)
    return APPLIED


def _stripe_id(obj: Mapping[str, Any], key: str, kind: str, path: str) -> str:
    value = text_field(obj, key)
    problem = stripe_id_problem(kind, value)
    if problem is not None:
        raise ValidationError({path: problem})
    return value


def _invoice_subscription(obj: Mapping[str, Any]) -> str | None:
    """The subscription an invoice bills (its place moved in Stripe's 2025-03-31 API), or None
    for a one-off invoice."""
    found = obj.get("subscription") or field(
        obj, "parent.subscription_details.subscription", required=False
    )
    if isinstance(found, Mapping):
        found = found.get("id")
    return found if isinstance(found, str) else None


def _record_against_subscription(
    delivery: Delivery,
    obj: Mapping[str, Any],
    subscription_id: str,
    action: str,
    details: dict[str, Any],
    *,
    linked_payments: Sequence[str] = (),
) -> Result:
    """Note an invoice, payment or refund of a subscription in the audit trail, against the
    subscription and its user (who must be known: else NotYetKnownError, as for any event of a
    user). Stripe's subscription events carry its state: an invoice changes none of it.
    `linked_payments`: the payments this event links to the subscription, whose events that
    arrived before the link are attached to it now (`_attach_earlier_events`)."""
    user_id = _locked_user(delivery, obj, subscription_id=subscription_id)
    if user_id is None:
        return ERASED
    delivery.link_user(user_id)
    delivery.log(
        action,
        user_id=user_id,
        entity_type="user_subscriptions",
        entity_id=subscription_id,
        details=details,
    )
    if linked_payments:
        _attach_earlier_events(delivery, user_id, subscription_id, linked_payments)
    return recorded(f"{action} against subscription {subscription_id}")


# The events of these payments settled before their link arrived, and so recorded against no
# subscription and no user: the payment itself (answered `ignored`), and its refunds, found by
# the charge (a charge.refunded's subject) or by the payment intent their `payment.refunded`
# entry names (a charge.refunded's subject is its charge). Deferred ones are not taken: their
# provider delivers them again and the link applies them then. Each is given the user (an
# erasure finds it) and its outcome now, once (`user_id IS NULL`), and each refund the entry
# against the subscription that a refund arriving after its link gets. One statement, held and
# sent with the event's last writes: no round trip of its own.
_ATTACH_EARLIER_SQL = """
WITH earlier AS (
  SELECT e.id FROM webhook_events e
  WHERE e.provider = 'stripe' AND e.subject = ANY(%(payments)s)
    AND e.event_type IN ('payment_intent.succeeded', 'charge.refunded')
  UNION
  SELECT e.id FROM user_activity_log a
  JOIN webhook_events e ON e.provider = 'stripe' AND e.event_id = a.event_id
  WHERE a.entity_type = 'payment_intents' AND a.entity_id = ANY(%(payments)s)
    AND a.action = 'payment.refunded'
), attached AS (
  UPDATE webhook_events e SET user_id = %(user)s, outcome = 'recorded',
    reason = CASE e.event_type WHEN 'charge.refunded' THEN 'subscription.payment_refunded'
                  ELSE 'subscription.payment_succeeded' END
             || ' against subscription ' || %(subscription)s || ', linked by ' || %(link)s
  FROM earlier
  WHERE e.id = earlier.id AND e.user_id IS NULL AND e.outcome IN ('recorded', 'ignored')
  RETURNING e.event_id, e.event_type, CAST(e.payload AS jsonb) -> 'data' -> 'object' AS obj
)
INSERT INTO user_activity_log (user_id, actor, action, entity_type, entity_id, details, event_id)
SELECT %(user)s, 'stripe', 'subscription.payment_refunded', 'user_subscriptions',
       %(subscription)s,
       jsonb_build_object('event_type', CAST(%(event_type)s AS text), 'refund_event', a.event_id,
                          'charge', a.obj -> 'id', 'payment_intent', a.obj -> 'payment_intent',
                          'amount_refunded', a.obj -> 'amount_refunded'),
       %(link)s
FROM attached a WHERE a.event_type = 'charge.refunded'
"""


def _attach_earlier_events(
    delivery: Delivery, user_id: uuid.UUID, subscription_id: str, payments: Sequence[str]
) -> None:
    """Attach to the subscription the events of `payments` recorded before this event linked
    them to it (`_ATTACH_EARLIER_SQL`). The payment needs no entry of its own: the link notes
    it."""
    event = delivery.event
    delivery.execute(
        _ATTACH_EARLIER_SQL,
        {
            "payments": list(payments),
            "user": user_id,
            "subscription": subscription_id,
            "link": event.event_id,
            "event_type": event.event_type,
        },
    )


def invoice_event(delivery: Delivery) -> Result:
    """invoice.paid / invoice.payment_failed / ...: recorded against its subscription; the
    subscription's status changes only by its own events (an `incomplete` one whose first
    payment fails stays incomplete, a canceled one stays canceled, an upgrade invoice listing
    the old price's proration first sets no tier)."""
    obj, event = delivery.event.data, delivery.event
    subscription_id = _invoice_subscription(obj)
    if subscription_id is None:
        return ignored("a one-off invoice: afilo-db sells one-off products through Checkout")
    details = {
        "invoice": obj.get("id"),
        "billing_reason": obj.get("billing_reason"),
        "amount_paid": obj.get("amount_paid"),
        "amount_due": obj.get("amount_due"),
        "currency": obj.get("currency"),
    }
    return _record_against_subscription(
        delivery, obj, subscription_id, f"subscription.{event.event_type}", details
    )


def _stored_invoice(delivery: Delivery, invoice_id: str) -> Mapping[str, Any] | None:
    """The invoice of the newest stored event about it, or None before any arrived."""
    payload = delivery.value(
        "SELECT payload FROM webhook_events WHERE provider = 'stripe' AND subject = %(invoice)s"
        " ORDER BY occurred_at DESC LIMIT 1",
        {"invoice": invoice_id},
    )
    if payload is None:
        return None
    obj = json.loads(payload).get("data", {}).get("object")
    return obj if isinstance(obj, Mapping) else None


def _stored_invoice_subscription(delivery: Delivery, invoice_id: Any) -> str | None:
    """The subscription a stored invoice event bills (for a payment or refund that names only
    its invoice)."""
    invoice = _stored_invoice(delivery, invoice_id) if isinstance(invoice_id, str) else None
    return None if invoice is None else _invoice_subscription(invoice)


# The subscription whose invoice a payment paid, by the links the stored invoice and
# InvoicePayment events made (`stripe_invoice_payments`, written by their trigger): read by the
# payment's id, whatever the customer's history; a link whose invoice's subscription is not
# known yet (or a one-off invoice's) only when no other names one.
_PAID_SUBSCRIPTION_SQL = (
    "SELECT subscription FROM stripe_invoice_payments WHERE payment = ANY(%(payments)s)"
    " ORDER BY subscription IS NULL LIMIT 1"
)


def _payment_subscription(
    delivery: Delivery, obj: Mapping[str, Any], payments: list[str]
) -> str | None:
    """The subscription a payment or charge (`obj`, whose ids are `payments`) paid an invoice
    of: through the invoice it names (before Stripe's 2025-03-31 API), else through what the
    mirror stored of the invoice's payments (since, a payment no longer names its invoice)."""
    if obj.get("invoice") is not None:
        return _stored_invoice_subscription(delivery, obj.get("invoice"))
    found = delivery.value(_PAID_SUBSCRIPTION_SQL, {"payments": payments})
    return found if isinstance(found, str) else None


def invoice_payment_paid(delivery: Delivery) -> Result:
    """invoice_payment.paid (Stripe's API since 2025-03-31, where a payment no longer names its
    invoice): a payment of a subscription's invoice, recorded against the subscription; the
    invoice's stored event says which subscription and whose (an InvoicePayment names neither),
    and is waited for (409, bounded) until it arrives."""
    obj, event = delivery.event.data, delivery.event
    invoice = obj.get("invoice")
    if not isinstance(invoice, Mapping):
        invoice_id = _stripe_id(obj, "invoice", "invoice", "data.object.invoice")
        invoice = _stored_invoice(delivery, invoice_id)
        if invoice is None:
            raise NotYetKnownError("the invoice this payment paid has not arrived yet")
    subscription_id = _invoice_subscription(invoice)
    if subscription_id is None:
        return ignored("a payment of a one-off invoice: afilo-db sells one-off products through"
                       " Checkout")  # fmt: skip
    payment: Mapping[str, Any] = obj["payment"] if isinstance(obj.get("payment"), Mapping) else {}
    details = {
        "invoice_payment": obj.get("id"),
        "invoice": invoice.get("id"),
        "payment_intent": payment.get("payment_intent"),
        "charge": payment.get("charge"),
        "amount_paid": obj.get("amount_paid"),
        "currency": obj.get("currency"),
    }
    linked = [found for found in (payment.get("payment_intent"), payment.get("charge"))
              if isinstance(found, str)]  # fmt: skip
    return _record_against_subscription(
        delivery, invoice, subscription_id, f"subscription.{event.event_type}", details,
        linked_payments=linked,
    )  # fmt: skip


def _record_purchase(
    delivery: Delivery, obj: Mapping[str, Any], payment_intent: str, status: str, amount: Decimal
) -> Result:
    event = delivery.event
    # The variant the price sells is read in the user's round trip.
    user_id, variant = _locked_user_and(
        delivery,
        obj,
        (
            "SELECT id, product_id FROM product_variants WHERE stripe_price_id = %(price)s",
            {"price": _metadata(obj).get("stripe_price_id")},
        ),
        payment_intent=payment_intent,
    )
    if user_id is None:
        return ERASED
    delivery.link_user(user_id)
    if variant is None:
        raise ValidationError(
            {"data.object.metadata.stripe_price_id": "must be the Stripe price of a variant"}
        )
    quantity = _quantity(obj)
    checkout_session = obj["id"] if str(obj.get("id", "")).startswith("cs_") else None
    row = delivery.value(
        "INSERT INTO purchases (user_id, product_id, variant_id, quantity, amount, currency,"
            " status, stripe_payment_intent_id, stripe_checkout_session_id, state_event_id,"
            " state_as_of) VALUES (%(user)s, %(product)s, %(variant)s, %(quantity)s, %(amount)s, %(currency)s,"
            " %(status)s, %(pi)s, %(cs)s, %(event_id)s, %(as_of)s)"
            " ON CONFLICT (stripe_payment_intent_id) DO NOTHING RETURNING id",
        {
            "user": user_id, "product": variant.product_id, "variant": variant.id,
            "quantity": quantity, "amount": amount,
            "currency": text_field(obj, "currency").upper(), "status": status,
            "pi": payment_intent, "cs": checkout_session, "event_id": event.event_id,
            "as_of": event.occurred_at,
        },
    )  # fmt: skip
    if row is not None:
        delivery.log("purchase.recorded", user_id=user_id, entity_type="purchases",
                     entity_id=row, details={"status": status, "payment_intent": payment_intent})  # fmt: skip
        return APPLIED
    _advance_purchase(delivery, payment_intent, status, checkout_session)
    return APPLIED


def _quantity(obj: Mapping[str, Any]) -> int:
    """`metadata.quantity`, 1 when absent. Stripe's metadata values are strings: anything but a
    whole number within the cart's bound is the event's fault (parked, naming it), not the
    endpoint's (500)."""
    value = _metadata(obj).get("quantity")
    if value is None:
        return 1
    text = str(value).strip()
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= rules.CART_MAX_QUANTITY:
        raise ValidationError({
            "data.object.metadata.quantity": "must be a whole number from 1 to "
            f"{rules.CART_MAX_QUANTITY}",
        })  # fmt: skip
    return int(text)


def _purchase_of(delivery: Delivery, payment_intent: str) -> Any:
    return delivery.row(
        "SELECT id, user_id, status, state_as_of, state_event_id, stripe_checkout_session_id"
        " FROM purchases WHERE stripe_payment_intent_id = %(pi)s FOR UPDATE",
        {"pi": payment_intent},
    )


def _advance_purchase(
    delivery: Delivery, payment_intent: str, status: str, checkout_session: str | None = None
) -> None:
    """Move a purchase's status forward only (pending -> paid -> refunded); the newest event of
    the furthest status is the one that set it."""
    event = delivery.event
    current = _purchase_of(delivery, payment_intent)
    if current is None:
        raise NotYetKnownError("no purchase for this payment yet")
    delivery.link_user(current.user_id)
    if checkout_session is not None and current.stripe_checkout_session_id is None:
        delivery.execute(
            "UPDATE purchases SET stripe_checkout_session_id = %(cs)s WHERE id = %(id)s",
            {"cs": checkout_session, "id": current.id},
        )
        delivery.log("purchase.checkout_linked", user_id=current.user_id,
                     entity_type="purchases", entity_id=current.id,
                     details={"stripe_checkout_session_id": checkout_session})  # fmt: skip
    mine = (_PURCHASE_PROGRESS[status], *_sort_key(event.occurred_at, event.event_id))
    theirs = (
        _PURCHASE_PROGRESS[current.status],
        *_sort_key(current.state_as_of, current.state_event_id),
    )
    if mine <= theirs:
        return
    delivery.execute(
        "UPDATE purchases SET status = %(status)s, state_event_id = %(event_id)s,"
            " state_as_of = %(as_of)s WHERE id = %(id)s",
        {"status": status, "event_id": event.event_id, "as_of": event.occurred_at,
         "id": current.id},
    )  # fmt: skip
    delivery.log(
        f"purchase.{status}" if status != current.status else "purchase.confirmed",
        user_id=current.user_id,
        entity_type="purchases",
        entity_id=current.id,
        details={"from": current.status, "to": status},
    )


def _lock_payment(delivery: Delivery, payment_intent: str) -> None:
    """Serialize the events of one payment for the rest of the transaction: a delayed payment's
    Checkout Session and its PaymentIntent delivered at the same moment would each miss the
    other (the purchase and the payment's event both still uncommitted) and leave it pending."""
    delivery.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('stripe-payment:' || %(pi)s, 0))",
        {"pi": payment_intent},
    )


def _payment_event_stored(delivery: Delivery, payment_intent: str) -> bool:
    """Whether Stripe's payment_intent.succeeded of this payment arrived already (a delayed
    payment method's success may come before the Checkout Session that started it)."""
    return bool(
        delivery.value(
            "SELECT EXISTS (SELECT FROM webhook_events WHERE provider = 'stripe'"
            " AND subject = %(pi)s AND event_type = 'payment_intent.succeeded')",
            {"pi": payment_intent},
        )
    )


def checkout_completed(delivery: Delivery) -> Result:
    """checkout.session.completed / async_payment_succeeded of a one-off payment: a purchase,
    paid when the session or the payment's own stored event says so, else pending (a delayed
    payment method: its async_payment_succeeded completes it)."""
    obj = delivery.event.data
    if obj.get("mode", "payment") != "payment":
        return ignored(
            f"a Checkout in {obj.get('mode')} mode: the subscription's own events apply it"
        )
    payment_intent = obj.get("payment_intent")
    if isinstance(payment_intent, Mapping):
        payment_intent = payment_intent.get("id")
    if payment_intent is None:
        return ignored("a Checkout without a payment (nothing to pay): no purchase to record")
    payment_intent = _stripe_id(
        {"payment_intent": payment_intent}, "payment_intent", "payment_intent",
        "data.object.payment_intent",
    )  # fmt: skip
    _lock_payment(delivery, payment_intent)
    paid = obj.get("payment_status") == "paid" or _payment_event_stored(delivery, payment_intent)
    amount = _amount(field(obj, "amount_total"), "data.object.amount_total")
    return _record_purchase(delivery, obj, payment_intent, "paid" if paid else "pending", amount)


def checkout_payment_failed(delivery: Delivery) -> Result:
    """checkout.session.async_payment_failed: the purchase stays pending, granting nothing."""
    obj = delivery.event.data
    payment_intent = obj.get("payment_intent")
    purchase = _purchase_of(delivery, payment_intent) if isinstance(payment_intent, str) else None
    if purchase is None:
        return ignored("the delayed payment of a Checkout failed before any purchase was recorded")
    delivery.link_user(purchase.user_id)
    delivery.log("purchase.payment_failed", user_id=purchase.user_id, entity_type="purchases",
                 entity_id=purchase.id, details={"payment_intent": payment_intent})  # fmt: skip
    return recorded("the delayed payment failed: the purchase stays pending")


def payment_succeeded(delivery: Delivery) -> Result:
    """payment_intent.succeeded: its purchase is paid (a Checkout's delayed payment carries none
    of the session's metadata: the purchase is found by its payment); a payment that is no
    purchase (a subscription's invoice) is recorded against its subscription or ignored."""
    obj = delivery.event.data
    payment_intent = _stripe_id(obj, "id", "payment_intent", "data.object.id")
    _lock_payment(delivery, payment_intent)
    if _purchase_of(delivery, payment_intent) is not None:
        _advance_purchase(delivery, payment_intent, "paid")
        return APPLIED
    if "stripe_price_id" in _metadata(obj):
        amount = _amount(field(obj, "amount_received"), "data.object.amount_received")
        return _record_purchase(delivery, obj, payment_intent, "paid", amount)
    subscription_id = _payment_subscription(delivery, obj, [payment_intent])
    if subscription_id is not None:
        return _record_against_subscription(
            delivery, obj, subscription_id, "subscription.payment_succeeded",
            {"payment_intent": payment_intent, "amount_received": obj.get("amount_received")},
        )  # fmt: skip
    return ignored(
        "not a one-off purchase (no metadata.stripe_price_id, no purchase with this payment):"
        " a subscription's payment, recorded with its invoice"
    )


def charge_refunded(delivery: Delivery) -> Result:
    """charge.refunded: a purchase refunded fully grants nothing any more (a partial refund is
    logged and leaves it); a refund of a subscription's payment is recorded against the
    subscription. A refund of a payment not received yet waits for it (409, bounded)."""
    obj = delivery.event.data
    payment_intent = obj.get("payment_intent")
    charge = obj.get("id") if isinstance(obj.get("id"), str) else None
    details = {"charge": charge, "payment_intent": payment_intent,
               "amount_refunded": obj.get("amount_refunded")}  # fmt: skip
    if not isinstance(payment_intent, str):
        # An invoice paid by a charge alone: its InvoicePayment names the charge.
        subscription_id = None if charge is None else _payment_subscription(delivery, obj, [charge])
        if subscription_id is not None:
            return _record_against_subscription(
                delivery, obj, subscription_id, "subscription.payment_refunded", details
            )
        return ignored("a refund of a charge without a payment intent: not an afilo-db sale")
    current = _purchase_of(delivery, payment_intent)
    if current is None:
        payments = [payment_intent] if charge is None else [payment_intent, charge]
        subscription_id = _payment_subscription(delivery, obj, payments)
        if subscription_id is not None:
            return _record_against_subscription(
                delivery, obj, subscription_id, "subscription.payment_refunded", details
            )
        if obj.get("invoice") is not None or _payment_event_stored(delivery, payment_intent):
            # The payment arrived and was no purchase: a subscription's, or not afilo-db's.
            delivery.log("payment.refunded", user_id=None, entity_type="payment_intents",
                         entity_id=payment_intent, details=details)  # fmt: skip
            return recorded("a refund of a payment that is not a one-off purchase")
        raise NotYetKnownError("no purchase for this payment yet")
    if obj.get("refunded") is True:
        _advance_purchase(delivery, payment_intent, "refunded")
        return APPLIED
    delivery.link_user(current.user_id)
    delivery.log("purchase.partially_refunded", user_id=current.user_id,
                 entity_type="purchases", entity_id=current.id,
                 details={"amount_refunded": obj.get("amount_refunded")})  # fmt: skip
    return recorded("a partial refund: the purchase still grants its downloads")


HANDLERS: dict[str, Callable[[Delivery], Result]] = {
    "customer.subscription.created": subscription_changed,
    "customer.subscription.updated": subscription_changed,
    "customer.subscription.deleted": subscription_changed,
    "customer.subscription.paused": subscription_changed,
    "customer.subscription.resumed": subscription_changed,
    "customer.subscription.pending_update_applied": subscription_changed,
    "customer.subscription.pending_update_expired": subscription_changed,
    "customer.subscription.trial_will_end": subscription_changed,
    "invoice.paid": invoice_event,
    "invoice.payment_succeeded": invoice_event,
    "invoice.payment_failed": invoice_event,
    "invoice.payment_action_required": invoice_event,
    "checkout.session.completed": checkout_completed,
    "checkout.session.async_payment_succeeded": checkout_completed,
    "checkout.session.async_payment_failed": checkout_payment_failed,
    "invoice_payment.paid": invoice_payment_paid,
    "payment_intent.succeeded": payment_succeeded,
    "charge.refunded": charge_refunded,
}
