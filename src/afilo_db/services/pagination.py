"""Keyset pagination cursors: the sort key of a page's last row, opaque to the caller."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime

from afilo_db.errors import ValidationError


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str, field: str) -> tuple[datetime, uuid.UUID]:
    """The key in `cursor`; a ValidationError naming `field` if it is not one of ours."""
    try:
        created_at, row_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(created_at), uuid.UUID(row_id)
    except (ValueError, TypeError) as error:
        raise ValidationError({field: "is not a cursor returned by a previous page"}) from error


def encode_position_cursor(position: int) -> str:
    """A cursor after the entry at `position` of an ordered list (a collection)."""
    return base64.urlsafe_b64encode(json.dumps(["position", position]).encode()).decode()


def decode_position_cursor(cursor: str, field: str) -> int:
    """The position in `cursor`; a ValidationError naming `field` if it is not one of ours."""
    try:
        kind, position = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError) as error:
        raise ValidationError({field: "is not a cursor returned by a previous page"}) from error
    if kind != "position" or not isinstance(position, int) or isinstance(position, bool):
        raise ValidationError({field: "is not a cursor returned by a previous page"})
    return position
