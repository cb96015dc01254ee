"""One user's account as the operator sees it: profile, subscription history, purchases and
what they may download now, and why."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from afilo_db.errors import NotFoundError
from afilo_db.models import Purchase, UserProfile, UserSubscription
from afilo_db.services.entitlements import Entitlement, entitlements


@dataclass(frozen=True)
class Account:
    profile: UserProfile
    subscriptions: list[UserSubscription]
    """Every recorded state, oldest first; `is_current` marks each subscription's present one."""
    purchases: list[Purchase]
    entitlements: list[Entitlement]


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
    return Account(profile, list(subscriptions), list(purchases), entitlements(session, profile.id))
