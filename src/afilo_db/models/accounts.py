"""Accounts: user profiles (Clerk), Stripe billing, the audit trail, carts, purchases, downloads."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Interval,
    Numeric,
    PrimaryKeyConstraint,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from afilo_db import rules
from afilo_db.models.base import (
    Base,
    CreatedAt,
    Currency,
    UpdatedAt,
    UuidPk,
    performance_critical,
    personal,
)

EMAIL_CHECK = f"{rules.sql_matches('email', rules.EMAIL_PATTERN)} AND length(email) <= {rules.EMAIL_MAX_LENGTH}"


class UserProfile(Base):
    __tablename__ = "user_profiles"
    __table_args__ = (
        CheckConstraint(
            rules.sql_external_id_check("clerk_user_id", "user"), name="clerk_user_id_format"
        ),
        CheckConstraint(EMAIL_CHECK, name="email_format"),
        CheckConstraint(
            rules.sql_in("subscription_tier", rules.SUBSCRIPTION_TIERS), name="tier_valid"
        ),
        CheckConstraint(
            rules.sql_stripe_id_check("stripe_customer_id", "customer"),
            name="stripe_customer_id_format",
        ),
        # Unique case-insensitively, whatever a raw INSERT stores.
        Index(
            "uq_user_profiles_email", text("lower(email)"), unique=True, info=performance_critical()
        ),
        Index("ix_user_profiles_subscription_tier", "subscription_tier"),
    )

    id: Mapped[UuidPk]
    clerk_user_id: Mapped[str] = mapped_column(
        unique=True,
        info=personal("'user_erased' || replace(id::text, '-', '')") | performance_critical(),
    )
    email: Mapped[str] = mapped_column(
        info=personal("'erased-' || replace(id::text, '-', '') || '@erased.invalid'")
    )
    display_name: Mapped[str | None] = mapped_column(info=personal())
    subscription_tier: Mapped[str] = mapped_column(server_default="free")
    stripe_customer_id: Mapped[str | None] = mapped_column(unique=True, info=personal())
    # Which provider event set this state, and the provider's own time of it (Clerk's
    # `updated_at`, Stripe's event `created`): an older event never overwrites newer state.
    state_event_id: Mapped[str | None]
    state_as_of: Mapped[datetime | None]
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    subscriptions: Mapped[list[UserSubscription]] = relationship(back_populates="user")
    cart_items: Mapped[list[CartItem]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )


class UserSubscription(Base):
    """Billing history: one row per state of a Stripe subscription, as its events reported it.
    The row of the newest state (by `state_as_of`, then `state_event_id`) is `is_current`;
    an event that arrives late takes its place in the history without becoming current."""

    __tablename__ = "user_subscriptions"
    __table_args__ = (
        CheckConstraint(
            rules.sql_stripe_id_check("stripe_subscription_id", "subscription"),
            name="stripe_subscription_id_format",
        ),
        CheckConstraint(
            rules.sql_subscription_price_id_check("stripe_price_id"),
            name="stripe_price_id_format",
        ),
        CheckConstraint(rules.sql_in("tier", rules.SUBSCRIPTION_TIERS), name="tier_valid"),
        CheckConstraint(rules.sql_in("status", rules.SUBSCRIPTION_STATUSES), name="status_valid"),
        CheckConstraint(
            f"amount >= 0 AND amount <= {rules.PRICE_MAX} AND scale(amount) <= {rules.PRICE_SCALE}",
            name="amount_valid",
        ),
        CheckConstraint(rules.sql_in("currency", rules.CURRENCIES), name="currency_valid"),
        CheckConstraint("current_period_end > current_period_start", name="period_order"),
        CheckConstraint("interval_months > 0", name="interval_months_positive"),
        Index("ix_user_subscriptions_user_id_status", "user_id", "status"),
        Index(
            "uq_user_subscriptions_current",
            "stripe_subscription_id",
            unique=True,
            postgresql_where=text("is_current"),
        ),
        Index(
            "ix_user_subscriptions_stripe_subscription_id_state_as_of",
            "stripe_subscription_id",
            "state_as_of",
        ),
    )

    id: Mapped[UuidPk]
    # RESTRICT: billing history is kept by law; erasing a user blanks personal fields instead.
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_profiles.id", ondelete="RESTRICT"))
    stripe_subscription_id: Mapped[str]
    stripe_price_id: Mapped[str]
    tier: Mapped[str]
    status: Mapped[str]
    amount: Mapped[Decimal] = mapped_column(Numeric)
    """What the price charges for each billing interval."""
    interval_months: Mapped[Decimal] = mapped_column(Numeric, server_default="1")
    """The months the price bills for (a year 12, a week 12/52): MRR is amount / interval_months.
    Set from the state's Stripe event by a trigger (revision 0019); 1 without one."""
    currency: Mapped[Currency]
    current_period_start: Mapped[datetime]
    current_period_end: Mapped[datetime]
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, server_default="false")
    canceled_at: Mapped[datetime | None]
    is_current: Mapped[bool] = mapped_column(Boolean, server_default="true")
    state_event_id: Mapped[str | None] = mapped_column(unique=True)
    state_as_of: Mapped[datetime | None]
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    user: Mapped[UserProfile] = relationship(back_populates="subscriptions")


class Purchase(Base):
    """A one-off purchase; a paid purchase grants downloads of its product, as a subscription does."""

    __tablename__ = "purchases"
    __table_args__ = (
        CheckConstraint(rules.sql_in("status", rules.PURCHASE_STATUSES), name="status_valid"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint(
            f"amount >= 0 AND amount <= {rules.PRICE_MAX} AND scale(amount) <= {rules.PRICE_SCALE}",
            name="amount_valid",
        ),
        CheckConstraint(rules.sql_in("currency", rules.CURRENCIES), name="currency_valid"),
        CheckConstraint(
            rules.sql_stripe_id_check("stripe_payment_intent_id", "payment_intent"),
            name="stripe_payment_intent_id_format",
        ),
        CheckConstraint(
            rules.sql_stripe_id_check("stripe_checkout_session_id", "checkout_session"),
            name="stripe_checkout_session_id_format",
        ),
        Index("ix_purchases_user_id_product_id", "user_id", "product_id"),
        Index("ix_purchases_product_id", "product_id"),
        # The revenue report reads purchases by date range.
        Index("ix_purchases_created_at", "created_at"),
    )

    id: Mapped[UuidPk]
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_profiles.id", ondelete="RESTRICT"))
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id", ondelete="RESTRICT"))
    variant_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("product_variants.id", ondelete="RESTRICT")
    )
    quantity: Mapped[int] = mapped_column(Integer, server_default="1")
    # What the buyer paid for all `quantity` units after discounts and taxes (a Checkout
    # Session's `amount_total`, a PaymentIntent's `amount_received`): not a unit price. The
    # revenue report counts the same amount.
    amount: Mapped[Decimal] = mapped_column(Numeric)
    currency: Mapped[Currency]
    status: Mapped[str] = mapped_column(server_default="paid")
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(unique=True)
    stripe_checkout_session_id: Mapped[str | None]
    state_event_id: Mapped[str | None]
    state_as_of: Mapped[datetime | None]
    created_at: Mapped[CreatedAt]


class UserActivityLog(Base):
    """Append-only audit trail: who did what, on which record, when, from where."""

    __tablename__ = "user_activity_log"
    __table_args__ = (
        CheckConstraint("length(btrim(action)) BETWEEN 1 AND 100", name="action_length"),
        Index("ix_user_activity_log_user_id_created_at", "user_id", "created_at"),
        Index("ix_user_activity_log_entity", "entity_type", "entity_id"),
    )

    id: Mapped[UuidPk]
    # SET NULL keeps the trail of a removed account; `actor` still says who acted.
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("user_profiles.id", ondelete="SET NULL")
    )
    # The acting user as the database sees it: what the application role writes is checked
    # against the same context (security.policies), so nobody appends as 'system'.
    actor: Mapped[str] = mapped_column(
        server_default=text("current_clerk_user_id()"), info=personal("'erased'")
    )
    action: Mapped[str]
    entity_type: Mapped[str | None]
    entity_id: Mapped[str | None]
    details: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default="{}", info=personal("'{}'::jsonb")
    )
    ip_address: Mapped[str | None] = mapped_column(INET, info=personal())
    user_agent: Mapped[str | None] = mapped_column(info=personal())
    # The provider event (Stripe `evt_...`, Clerk/Svix `msg_...`) whose handling made this entry.
    event_id: Mapped[str | None]
    created_at: Mapped[CreatedAt]


class CartItem(Base):
    __tablename__ = "cart_items"
    __table_args__ = (
        CheckConstraint(
            f"quantity > 0 AND quantity <= {rules.CART_MAX_QUANTITY}", name="quantity_range"
        ),
        Index("uq_cart_items_user_id_variant_id", "user_id", "variant_id", unique=True),
        Index("ix_cart_items_variant_id", "variant_id"),
    )

    id: Mapped[UuidPk]
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_profiles.id", ondelete="CASCADE"))
    variant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("product_variants.id", ondelete="CASCADE")
    )
    quantity: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    user: Mapped[UserProfile] = relationship(back_populates="cart_items")


class Download(Base):
    """A recorded download; `subscription_id` or `purchase_id` says which entitlement allowed it."""

    __tablename__ = "downloads"
    __table_args__ = (
        CheckConstraint("num_nonnulls(subscription_id, purchase_id) = 1", name="one_entitlement"),
        Index("ix_downloads_user_id_created_at", "user_id", "created_at"),
        Index("ix_downloads_product_id", "product_id"),
        Index("ix_downloads_subscription_id", "subscription_id"),
        Index("ix_downloads_purchase_id", "purchase_id"),
        # The downloads report reads by date range.
        Index("ix_downloads_created_at", "created_at"),
    )

    id: Mapped[UuidPk]
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_profiles.id", ondelete="CASCADE"))
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id", ondelete="RESTRICT"))
    subscription_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("user_subscriptions.id", ondelete="RESTRICT")
    )
    purchase_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("purchases.id", ondelete="RESTRICT")
    )
    ip_address: Mapped[str | None] = mapped_column(INET, info=personal())
    created_at: Mapped[CreatedAt]


class WebhookEvent(Base):
    """Every Stripe and Clerk event received, once (the provider's event id is unique), with the
    body exactly as it was signed. Stored in the transaction that applies it."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        CheckConstraint(rules.sql_in("provider", rules.WEBHOOK_PROVIDERS), name="provider_valid"),
        CheckConstraint("length(event_id) BETWEEN 1 AND 255", name="event_id_length"),
        CheckConstraint(rules.sql_in("outcome", rules.WEBHOOK_OUTCOMES), name="outcome_valid"),
        CheckConstraint("attempts > 0", name="attempts_positive"),
        UniqueConstraint("provider", "event_id"),
        Index("ix_webhook_events_user_id", "user_id"),
        Index("ix_webhook_events_subject_event_type", "subject", "event_type"),
        # `afilo-db webhooks unresolved` reads the few events still waiting for a dependency.
        Index(
            "ix_webhook_events_waiting",
            "received_at",
            postgresql_where=text("outcome IN ('deferred', 'unresolved')"),
        ),
    )

    id: Mapped[UuidPk]
    provider: Mapped[str]
    event_id: Mapped[str]
    event_type: Mapped[str]
    # The provider object the event is about (sub_..., pi_..., a Clerk user id). Erased to its
    # digest (once: erasing again keeps it), so that an erased user's late events are still
    # recognised and ignored.
    subject: Mapped[str | None] = mapped_column(
        info=personal(
            "CASE WHEN left(subject, 7) = 'sha256:' THEN subject"
            " ELSE 'sha256:' || encode(sha256(convert_to(subject, 'UTF8')), 'hex') END"
        )
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("user_profiles.id", ondelete="SET NULL")
    )
    payload: Mapped[str] = mapped_column(info=personal("'{}'"))
    occurred_at: Mapped[datetime]
    received_at: Mapped[CreatedAt]
    # rules.WEBHOOK_OUTCOMES; the reason says why an event was ignored, deferred or is unresolved
    # (in words naming no person: the payload holds the ids).
    outcome: Mapped[str] = mapped_column(server_default="applied")
    reason: Mapped[str | None]
    # Deliveries received: a deferred event counts its provider's retries up to the bound.
    attempts: Mapped[int] = mapped_column(Integer, server_default="1")


class WebhookRefusal(Base):
    """Deliveries refused before anything of them was stored (bad signature, too large, not an
    event, an event that cannot even be stored as parked), counted by provider, HTTP status and
    reason, as dj-stripe keeps its failed webhook triggers: a flood of forgeries or a wrong
    secret shows here."""

    __tablename__ = "webhook_refusals"
    __table_args__ = (
        CheckConstraint(rules.sql_in("provider", rules.WEBHOOK_PROVIDERS), name="provider_valid"),
        CheckConstraint("status BETWEEN 400 AND 599", name="status_http_error"),
        CheckConstraint("deliveries > 0", name="deliveries_positive"),
        UniqueConstraint("provider", "status", "reason"),
    )

    id: Mapped[UuidPk]
    provider: Mapped[str]
    status: Mapped[int] = mapped_column(Integer)
    # The kind of refusal (the field and the rule, without the values sent).
    reason: Mapped[str]
    deliveries: Mapped[int] = mapped_column(Integer, server_default="1")
    first_at: Mapped[CreatedAt]
    last_at: Mapped[UpdatedAt]


class BillingSettings(Base):
    """One row: how the entitlement rule treats billing states (changed by the owner)."""

    __tablename__ = "billing_settings"
    __table_args__ = (
        CheckConstraint("singleton", name="one_row"),
        CheckConstraint(
            f"past_due_grace >= interval '0' AND past_due_grace <= interval '{rules.PAST_DUE_GRACE_MAX_DAYS} days'",
            name="past_due_grace_range",
        ),
        # Configuration, not data: the migration writes its row; seeding and resets keep it.
        {"info": {"configuration": True}},
    )

    singleton: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default="true")
    # A past_due subscription keeps its downloads this long after its period ended.
    past_due_grace: Mapped[timedelta] = mapped_column(
        Interval, server_default=text(f"'{rules.PAST_DUE_GRACE_DEFAULT_DAYS} days'::interval")
    )
    updated_at: Mapped[UpdatedAt]


class StripeInvoicePayment(Base):
    """Which payment (`pi_...`, or `ch_...` for an invoice paid by a charge alone) paid which
    invoice, and the invoice's subscription once an event of the invoice says it. Since Stripe's
    API 2025-03-31 a payment names no invoice: the link is an InvoicePayment. Written by a
    trigger on `webhook_events` from every stored `invoice_payment.paid` and `invoice.*` event
    (revision 0022), so that it exists whatever the order of arrival and whatever the handler
    answered; the handlers and the revenue facts read it by the payment's id."""

    __tablename__ = "stripe_invoice_payments"
    __table_args__ = (
        PrimaryKeyConstraint("payment", "invoice"),
        # Payments linked by id before the invoice's own event named its subscription.
        Index("ix_stripe_invoice_payments_invoice", "invoice"),
    )

    payment: Mapped[str]
    invoice: Mapped[str]
    subscription: Mapped[str | None]
    # The event that stated the link.
    stripe_event_id: Mapped[str]
