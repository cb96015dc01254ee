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

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, text

from afilo_db import rules
from afilo_db.billing.events import NotYetKnownError, field, from_unix, text_field
from afilo_db.errors import ValidationError

if TYPE_CHECKING:
    from afilo_db.billing.delivery import Delivery

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


def _locked_user(delivery: Delivery, obj: Mapping[str, Any]) -> uuid.UUID:
    """The user the object belongs to, their profile row locked for the rest of the transaction
    (events of one user apply one after the other)."""
    clerk_user_id = _metadata(obj).get("clerk_user_id") or obj.get("client_reference_id")
    customer = obj.get("customer") if isinstance(obj.get("customer"), str) else None
    if clerk_user_id is None and customer is None:
        raise ValidationError({"data.object.customer": "required (or metadata.clerk_user_id)"})
    row = delivery.session.execute(
        text(
            "SELECT id, stripe_customer_id FROM user_profiles"
            " WHERE clerk_user_id = :clerk OR stripe_customer_id = :customer"
            " ORDER BY clerk_user_id = :clerk DESC LIMIT 1 FOR UPDATE"
        ),
        {"clerk": clerk_user_id, "customer": customer},
    ).one_or_none()
    if row is None:
        raise NotYetKnownError(
            f"no user for Stripe customer {customer} / Clerk user {clerk_user_id} yet"
        )
    user_id: uuid.UUID = row.id
    if customer is not None and row.stripe_customer_id is None:
        delivery.session.execute(
            text("UPDATE user_profiles SET stripe_customer_id = :customer WHERE id = :id"),
            {"customer": customer, "id": user_id},
        )
        delivery.log(
            "profile.stripe_customer_linked",
            user_id=user_id,
            entity_type="user_profiles",
            entity_id=user_id,
            details={"stripe_customer_id": customer},
        )
    return user_id


def _price_state(price: Mapping[str, Any], path: str, tier: Any) -> dict[str, Any]:
    tier = _metadata(price).get("tier") or tier
    if tier is None:
        raise ValidationError({f"{path}.metadata.tier": "required: the tier this price sells"})
    return {
        "stripe_price_id": text_field(price, "id"),
        "tier": tier,
        "amount": _amount(field(price, "unit_amount"), f"{path}.unit_amount"),
        "currency": text_field(price, "currency").upper(),
    }


def _subscription_state(obj: Mapping[str, Any]) -> dict[str, Any]:
    items = field(obj, "items.data")
    if not isinstance(items, list) or not items or not isinstance(items[0], Mapping):
        raise ValidationError({"data.object.items.data": "must hold the subscription's item"})
    item = items[0]
    # Since Stripe's 2025-03 API the period is on the item; before, on the subscription.
    start = item.get("current_period_start", obj.get("current_period_start"))
    end = item.get("current_period_end", obj.get("current_period_end"))
    canceled_at = obj.get("canceled_at")
    return {
        **_price_state(field(item, "price"), "items.data.0.price", _metadata(obj).get("tier")),
        "status": text_field(obj, "status"),
        "current_period_start": from_unix(start, "current_period_start"),
        "current_period_end": from_unix(end, "current_period_end"),
        "cancel_at_period_end": bool(obj.get("cancel_at_period_end")),
        "canceled_at": None if canceled_at is None else from_unix(canceled_at, "canceled_at"),
    }


_STATE_COLUMNS = (
    "stripe_price_id", "tier", "status", "amount", "currency", "current_period_start",
    "current_period_end", "cancel_at_period_end", "canceled_at",
)  # fmt: skip


def _sort_key(as_of: datetime | None, event_id: str | None) -> tuple[float, str]:
    return (as_of.timestamp() if as_of is not None else float("-inf"), event_id or "")


def _record_subscription_state(
    delivery: Delivery, user_id: uuid.UUID, subscription_id: str, state: Mapping[str, Any]
) -> None:
    """Add this state to the subscription's history; it becomes current if it is the newest."""
    session, event = delivery.session, delivery.event
    current = session.execute(
        text(
            "SELECT id, user_id, state_as_of, state_event_id FROM user_subscriptions"
            " WHERE stripe_subscription_id = :sub AND is_current FOR UPDATE"
        ),
        {"sub": subscription_id},
    ).one_or_none()
    if current is not None and current.user_id != user_id:
        raise ValidationError({"data.object.customer": "the subscription belongs to another user"})
    newest = current is None or _sort_key(event.occurred_at, event.event_id) > _sort_key(
        current.state_as_of, current.state_event_id
    )
    if newest and current is not None:
        session.execute(
            text("UPDATE user_subscriptions SET is_current = false WHERE id = :id"),
            {"id": current.id},
        )
    columns = ", ".join(_STATE_COLUMNS)
    values = ", ".join(f":{name}" for name in _STATE_COLUMNS)
    row_id = session.execute(
        text(
            f"INSERT INTO user_subscriptions (user_id, stripe_subscription_id, {columns},"
            " is_current, state_event_id, state_as_of)"
            f" VALUES (:user, :sub, {values}, :newest, :event_id, :as_of) RETURNING id"
        ),
        {
            **{name: state[name] for name in _STATE_COLUMNS},
            "user": user_id,
            "sub": subscription_id,
            "newest": newest,
            "event_id": event.event_id,
            "as_of": event.occurred_at,
        },
    ).scalar_one()
    delivery.log(
        "subscription.state_recorded" if newest else "subscription.late_state_recorded",
        user_id=user_id,
        entity_type="user_subscriptions",
        entity_id=row_id,
        details={"stripe_subscription_id": subscription_id, "status": state["status"],
                 "tier": state["tier"], "current": newest},
    )  # fmt: skip
    _refresh_tier(delivery, user_id)


def _refresh_tier(delivery: Delivery, user_id: uuid.UUID) -> None:
    """The profile's tier: the highest of the user's subscriptions still in force, else free."""
    holding = rules.sql_in("s.status", rules.TIER_HOLDING_SUBSCRIPTION_STATUSES)
    tier = delivery.session.execute(
        text(
            "UPDATE user_profiles u SET subscription_tier = t.tier FROM (SELECT coalesce(("
            " SELECT s.tier FROM user_subscriptions s"
            f" WHERE s.user_id = :user AND s.is_current AND {holding}"
            f" ORDER BY array_position({_TIERS_LOWEST_FIRST}, s.tier) DESC LIMIT 1), 'free') AS tier"
            ") t WHERE u.id = :user AND u.subscription_tier IS DISTINCT FROM t.tier"
            " RETURNING u.subscription_tier"
        ),
        {"user": user_id},
    ).scalar_one_or_none()
    if tier is not None:
        delivery.log(
            "profile.tier_changed",
            user_id=user_id,
            entity_type="user_profiles",
            entity_id=user_id,
            details={"subscription_tier": tier},
        )


def subscription_changed(delivery: Delivery) -> None:
    """customer.subscription.created / updated / deleted: the object is the whole state."""
    obj = delivery.event.data
    user_id = _locked_user(delivery, obj)
    delivery.link_user(user_id)
    _record_subscription_state(delivery, user_id, text_field(obj, "id"), _subscription_state(obj))


def _invoice_subscription(obj: Mapping[str, Any]) -> str:
    """The subscription an invoice bills (its place moved in Stripe's 2025-03 API)."""
    found = obj.get("subscription") or field(
        obj, "parent.subscription_details.subscription", required=False
    )
    if isinstance(found, Mapping):
        found = found.get("id")
    if not isinstance(found, str):
        raise ValidationError({"data.object.subscription": "required: the invoice's subscription"})
    return found


def _predecessor(delivery: Delivery, subscription_id: str) -> Row[Any]:
    """The subscription's state just before this event. None received yet (the subscription's
    own events come first in Stripe's time): NotYetKnownError, and Stripe retries."""
    event = delivery.event
    row = delivery.session.execute(
        text(
            f"SELECT user_id, {', '.join(_STATE_COLUMNS)} FROM user_subscriptions"
            " WHERE stripe_subscription_id = :sub"
            " AND (coalesce(state_as_of, '-infinity'), coalesce(state_event_id, ''))"
            "     < (CAST(:as_of AS timestamptz), CAST(:event_id AS text))"
            " ORDER BY coalesce(state_as_of, '-infinity') DESC, state_event_id DESC NULLS LAST"
            " LIMIT 1"
        ),
        {"sub": subscription_id, "as_of": event.occurred_at, "event_id": event.event_id},
    ).one_or_none()
    if row is None:
        raise NotYetKnownError(
            f"no state of subscription {subscription_id} before this invoice yet"
        )
    return row


def _invoice_handler(paid: bool) -> Callable[[Delivery], None]:
    def handle(delivery: Delivery) -> None:
        """invoice.paid -> active (a trial's free invoice leaves it trialing);
        invoice.payment_failed -> past_due. The rest of the state is the invoice's (price,
        period) where it says, else the subscription's state before it."""
        obj = delivery.event.data
        subscription_id = _invoice_subscription(obj)
        user_id = _locked_user(delivery, obj)
        before = _predecessor(delivery, subscription_id)
        state = {name: getattr(before, name) for name in _STATE_COLUMNS}
        lines = field(obj, "lines.data", required=False)
        line = (
            lines[0] if isinstance(lines, list) and lines and isinstance(lines[0], Mapping) else {}
        )
        if isinstance(line.get("price"), Mapping):
            state.update(_price_state(line["price"], "lines.data.0.price", state["tier"]))
        period = line.get("period")
        if isinstance(period, Mapping):
            state["current_period_start"] = from_unix(
                period.get("start"), "lines.data.0.period.start"
            )
            state["current_period_end"] = from_unix(period.get("end"), "lines.data.0.period.end")
        free_trial_invoice = before.status == "trialing" and not obj.get("amount_paid")
        if paid:
            state["status"] = "trialing" if free_trial_invoice else "active"
        else:
            state["status"] = "past_due"
        delivery.link_user(user_id)
        _record_subscription_state(delivery, user_id, subscription_id, state)

    return handle


def _record_purchase(
    delivery: Delivery, obj: Mapping[str, Any], payment_intent: str, status: str, amount: Decimal
) -> None:
    session, event = delivery.session, delivery.event
    user_id = _locked_user(delivery, obj)
    delivery.link_user(user_id)
    price_id = _metadata(obj).get("stripe_price_id")
    variant = session.execute(
        text("SELECT id, product_id FROM product_variants WHERE stripe_price_id = :price"),
        {"price": price_id},
    ).one_or_none()
    if variant is None:
        raise ValidationError(
            {"data.object.metadata.stripe_price_id": "must be the Stripe price of a variant"}
        )
    quantity = _metadata(obj).get("quantity") or 1
    checkout_session = obj["id"] if str(obj.get("id", "")).startswith("cs_") else None
    row = session.execute(
        text(
            "INSERT INTO purchases (user_id, product_id, variant_id, quantity, amount, currency,"
            " status, stripe_payment_intent_id, stripe_checkout_session_id, state_event_id,"
            " state_as_of) VALUES (:user, :product, :variant, :quantity, :amount, :currency,"
            " :status, :pi, :cs, :event_id, :as_of)"
            " ON CONFLICT (stripe_payment_intent_id) DO NOTHING RETURNING id"
        ),
        {
            "user": user_id, "product": variant.product_id, "variant": variant.id,
            "quantity": int(quantity), "amount": amount,
            "currency": text_field(obj, "currency").upper(), "status": status,
            "pi": payment_intent, "cs": checkout_session, "event_id": event.event_id,
            "as_of": event.occurred_at,
        },
    ).scalar_one_or_none()  # fmt: skip
    if row is not None:
        delivery.log("purchase.recorded", user_id=user_id, entity_type="purchases",
                     entity_id=row, details={"status": status, "payment_intent": payment_intent})  # fmt: skip
        return
    _advance_purchase(delivery, payment_intent, status, checkout_session)


def _advance_purchase(
    delivery: Delivery, payment_intent: str, status: str, checkout_session: str | None = None
) -> None:
    """Move a purchase's status forward only (pending -> paid -> refunded); the newest event of
    the furthest status is the one that set it."""
    session, event = delivery.session, delivery.event
    current = session.execute(
        text(
            "SELECT id, user_id, status, state_as_of, state_event_id, stripe_checkout_session_id"
            " FROM purchases WHERE stripe_payment_intent_id = :pi FOR UPDATE"
        ),
        {"pi": payment_intent},
    ).one_or_none()
    if current is None:
        raise NotYetKnownError(f"no purchase for payment {payment_intent} yet")
    delivery.link_user(current.user_id)
    if checkout_session is not None and current.stripe_checkout_session_id is None:
        session.execute(
            text("UPDATE purchases SET stripe_checkout_session_id = :cs WHERE id = :id"),
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
    session.execute(
        text(
            "UPDATE purchases SET status = :status, state_event_id = :event_id,"
            " state_as_of = :as_of WHERE id = :id"
        ),
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


def checkout_completed(delivery: Delivery) -> None:
    """checkout.session.completed of a one-off payment (subscriptions arrive as their own
    events): a purchase, paid when the session says so."""
    obj = delivery.event.data
    if obj.get("mode", "payment") != "payment":
        return
    payment_intent = text_field(obj, "payment_intent")
    status = "paid" if obj.get("payment_status") == "paid" else "pending"
    amount = _amount(field(obj, "amount_total"), "data.object.amount_total")
    _record_purchase(delivery, obj, payment_intent, status, amount)


def payment_succeeded(delivery: Delivery) -> None:
    """payment_intent.succeeded: the purchase is paid."""
    obj = delivery.event.data
    amount = _amount(field(obj, "amount_received"), "data.object.amount_received")
    _record_purchase(delivery, obj, text_field(obj, "id"), "paid", amount)


def charge_refunded(delivery: Delivery) -> None:
    """charge.refunded, fully: the purchase is refunded and grants nothing any more. A partial
    refund is logged and leaves the purchase as it is."""
    obj = delivery.event.data
    payment_intent = text_field(obj, "payment_intent")
    if obj.get("refunded") is True:
        _advance_purchase(delivery, payment_intent, "refunded")
        return
    current = delivery.session.execute(
        text("SELECT id, user_id FROM purchases WHERE stripe_payment_intent_id = :pi"),
        {"pi": payment_intent},
    ).one_or_none()
    if current is None:
        raise NotYetKnownError(f"no purchase for payment {payment_intent} yet")
    delivery.link_user(current.user_id)
    delivery.log("purchase.partially_refunded", user_id=current.user_id,
                 entity_type="purchases", entity_id=current.id,
                 details={"amount_refunded": obj.get("amount_refunded")})  # fmt: skip


HANDLERS: dict[str, Callable[[Delivery], None]] = {
    "customer.subscription.created": subscription_changed,
    "customer.subscription.updated": subscription_changed,
    "customer.subscription.deleted": subscription_changed,
    "invoice.paid": _invoice_handler(paid=True),
    "invoice.payment_failed": _invoice_handler(paid=False),
    "checkout.session.completed": checkout_completed,
    "payment_intent.succeeded": payment_succeeded,
    "charge.refunded": charge_refunded,
}
