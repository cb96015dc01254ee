"""One user's account as the operator sees it: profile, subscription history, purchases and
what they may download now, and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from afilo_db import rules
from afilo_db.errors import NotFoundError, ValidationError
from afilo_db.models import Purchase, UserProfile, UserSubscription
from afilo_db.services.entitlements import Entitlement, entitlements
from afilo_db.services.pagination import decode_cursor, encode_cursor

USER_PAGE_LIMIT = 25
MAX_USER_PAGE_LIMIT = 500


@dataclass(frozen=True)
class Account:
    profile: UserProfile
    subscriptions: list[UserSubscription]
    """Every recorded state, oldest first; `is_current` marks each subscription's present one."""
    purchases: list[Purchase]
    entitlements: list[Entitlement]
    idle: dict[str, str]
    """Each current subscription that grants no download, by Stripe id, with why not
    ("period ended 2026-02-05")."""


def why_idle(subscription: UserSubscription, now: datetime) -> str:
    """Why a current subscription grants no download, given that `download_entitlements` (the
    one rule, in the database) returned nothing for it: the words, not the decision."""
    end = subscription.current_period_end
    if subscription.status not in rules.TIER_HOLDING_SUBSCRIPTION_STATUSES:
        return f"status {subscription.status} grants no downloads"
    if end <= now:
        ended = f"period ended {end.date().isoformat()}"
        return f"{ended}, and its grace period too" if subscription.status == "past_due" else ended
    return f"tier {subscription.tier} includes no published product"


def account(session: Session, clerk_user_id: str) -> Account:
    profile = session.scalars(
        select(UserProfile).where(UserProfile.clerk_user_id == clerk_user_id)
    ).one_or_none()
    if profile is None:
        raise NotFoundError(f"no user with clerk_user_id {clerk_user_id!r}")
    subscriptions = session.scalars(
        select(UserSubscription)
        .where(UserSubscription.user_id == profile.id)
        .order_by(
            UserSubscription.stripe_subscription_id,
            UserSubscription.state_as_of.asc().nulls_first(),
            UserSubscription.state_event_id,
        )
    ).all()
    purchases = session.scalars(
        select(Purchase).where(Purchase.user_id == profile.id).order_by(Purchase.created_at)
    ).all()
    granted = entitlements(session, profile.id)
    granting = {item.subscription_id for item in granted}
    now = datetime.now(UTC)
    idle = {
        item.stripe_subscription_id: why_idle(item, now)
        for item in subscriptions
        if item.is_current and item.id not in granting
    }
    return Account(profile, list(subscriptions), list(purchases), granted, idle)


@dataclass(frozen=True)
class UserPage:
    users: list[UserProfile]
    next: str | None
    """The cursor of the next page (`after=`), None on the last one."""


def list_users(
    session: Session,
    *,
    email: str | None = None,
    limit: int = USER_PAGE_LIMIT,
    after: str | None = None,
) -> UserPage:
    """Users oldest first, a page at a time, optionally those whose email contains `email`
    (case-insensitively). Keyset pagination on (created_at, id); one row more than the page
    tells whether another follows (COUNT(*) would read every match)."""
    if not 1 <= limit <= MAX_USER_PAGE_LIMIT:
        raise ValidationError({"limit": f"must be between 1 and {MAX_USER_PAGE_LIMIT}"})
    query = select(UserProfile).order_by(UserProfile.created_at, UserProfile.id)
    if email:
        query = query.where(UserProfile.email.icontains(email, autoescape=True))
    if after is not None:
        query = query.where(
            tuple_(UserProfile.created_at, UserProfile.id) > decode_cursor(after, "after")
        )
    rows = list(session.scalars(query.limit(limit + 1)))
    users = rows[:limit]
    more = len(rows) > limit
    return UserPage(users, encode_cursor(users[-1].created_at, users[-1].id) if more else None)
