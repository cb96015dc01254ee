"""Clerk events -> user_profiles: user.created and user.updated write the profile (email, name)
when they are newer than what it holds (Clerk's own `updated_at`, then the event id);
user.deleted erases the user's personal data with the erasure flow of `afilo-db erase user`.

A user once deleted stays deleted: the user.deleted event is kept (its subject erased to a
digest), and a user.created or user.updated of that user that arrives later is ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from afilo_db.billing.events import APPLIED, Result, field, from_unix_ms, ignored, text_field
from afilo_db.data.erase import erase_user_in
from afilo_db.errors import ValidationError
from afilo_db.validation.checks import clerk_user_id_problem

if TYPE_CHECKING:
    from afilo_db.billing.delivery import Delivery

DELETED = "user.deleted"


def _clerk_user_id(data: Mapping[str, Any]) -> str:
    clerk_user_id = text_field(data, "id")
    problem = clerk_user_id_problem(clerk_user_id)
    if problem is not None:
        raise ValidationError({"data.id": problem})
    return clerk_user_id


def _lock_and_check_deleted(delivery: Delivery, clerk_user_id: str) -> bool:
    """Serialize the events of one Clerk user (the profile may not exist yet, so the lock is on
    the id); True when a user.deleted of theirs is stored already."""
    delivery.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('clerk:' || %(clerk)s, 0))",
        {"clerk": clerk_user_id},
    )
    return bool(
        delivery.value(
            "SELECT EXISTS (SELECT FROM webhook_events WHERE provider = 'clerk'"
            " AND event_type = %(deleted)s AND event_id <> %(event)s AND subject IN (%(clerk)s,"
            " 'sha256:' || encode(sha256(convert_to(%(clerk)s, 'UTF8')), 'hex')))",
            {"clerk": clerk_user_id, "deleted": DELETED, "event": delivery.event.event_id},
        )
    )


def _primary_email(data: Mapping[str, Any]) -> str:
    addresses = field(data, "email_addresses")
    primary = data.get("primary_email_address_id")
    if isinstance(addresses, list):
        for address in addresses:
            if isinstance(address, Mapping) and (primary is None or address.get("id") == primary):
                email = address.get("email_address")
                if isinstance(email, str) and email:
                    return email.strip().lower()
    raise ValidationError({"data.email_addresses": "must hold the primary email address"})


def _display_name(data: Mapping[str, Any]) -> str | None:
    parts = [data.get("first_name"), data.get("last_name")]
    name = " ".join(part.strip() for part in parts if isinstance(part, str) and part.strip())
    username = data.get("username")
    return name or (username if isinstance(username, str) and username else None)


ALREADY_DELETED = ignored("the user was deleted in Clerk already (and erased)")


def user_written(delivery: Delivery) -> Result:
    """user.created / user.updated."""
    data, event = delivery.event.data, delivery.event
    clerk_user_id = _clerk_user_id(data)
    if _lock_and_check_deleted(delivery, clerk_user_id):
        return ALREADY_DELETED
    updated = data.get("updated_at", data.get("created_at"))
    as_of: datetime = from_unix_ms(updated, "data.updated_at") if updated else event.occurred_at
    values = {
        "clerk": clerk_user_id,
        "email": _primary_email(data),
        "name": _display_name(data),
        "event_id": event.event_id,
        "as_of": as_of,
    }
    created = delivery.value(
        "INSERT INTO user_profiles (clerk_user_id, email, display_name, state_event_id,"
        " state_as_of) VALUES (%(clerk)s, %(email)s, %(name)s, %(event_id)s, %(as_of)s)"
        " ON CONFLICT (clerk_user_id) DO NOTHING RETURNING id",
        values,
    )
    if created is not None:
        delivery.link_user(created)
        delivery.log("profile.created", user_id=created, entity_type="user_profiles",
                     entity_id=created)  # fmt: skip
        return APPLIED
    # Only a newer state than the one held: Clerk's updated_at, then the event id.
    profile, changed = delivery.row(
        "WITH changed AS (UPDATE user_profiles SET email = %(email)s, display_name = %(name)s,"
        " state_event_id = %(event_id)s, state_as_of = %(as_of)s"
        " WHERE clerk_user_id = %(clerk)s"
        " AND (coalesce(state_as_of, '-infinity'), coalesce(state_event_id, ''))"
        "     < (CAST(%(as_of)s AS timestamptz), CAST(%(event_id)s AS text))"
        " RETURNING id)"
        " SELECT id, EXISTS (SELECT FROM changed) FROM user_profiles WHERE clerk_user_id = %(clerk)s",
        values,
    )
    delivery.link_user(profile)
    if changed:
        delivery.log("profile.updated", user_id=profile, entity_type="user_profiles",
                     entity_id=profile)  # fmt: skip
    return APPLIED


def user_deleted(delivery: Delivery) -> Result:
    """user.deleted: erase the user's personal data (the rows stay, billing amounts with them)."""
    clerk_user_id = _clerk_user_id(delivery.event.data)
    _lock_and_check_deleted(delivery, clerk_user_id)
    user_id = delivery.value(
        "SELECT id FROM user_profiles WHERE clerk_user_id = %(clerk)s",
        {"clerk": clerk_user_id},
    )
    if user_id is None:
        # Stored: a user.created or Stripe event of this user arriving later is ignored by it.
        return ignored("no profile of this user (never created here, or erased already)")
    # Linked first, so that the erasure blanks this event's payload and subject too.
    delivery.link_user(user_id)
    delivery.write()
    erase_user_in(
        delivery.connection, clerk_user_id, actor="clerk", event_id=delivery.event.event_id
    )
    return APPLIED


HANDLERS: dict[str, Callable[[Delivery], Result]] = {
    "user.created": user_written,
    "user.updated": user_written,
    DELETED: user_deleted,
}
