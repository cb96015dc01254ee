"""A user's downloads, newest first: a hot read (one prepared statement, one round trip), with
the user context sent in the same round trip when asked."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from afilo_db.db import hot
from afilo_db.db.hot import Row
from afilo_db.errors import ValidationError
from afilo_db.security import read_as_user, reads

MAX_LIMIT = 200


@dataclass(frozen=True)
class DownloadRecord:
    id: uuid.UUID
    product_id: uuid.UUID
    product_handle: str
    product_title: str
    created_at: datetime
    subscription_id: uuid.UUID | None
    """The subscription that allowed it, or None when a purchase did."""
    purchase_id: uuid.UUID | None


DOWNLOADS_SQL = reads.DOWNLOADS.query


def _checked(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError({"limit": f"must be from 1 to {MAX_LIMIT}"})
    return limit


def _records(rows: list[Row]) -> list[DownloadRecord]:
    return [DownloadRecord(*row) for row in rows]


def downloads(source: hot.ReadSource, user_id: uuid.UUID, limit: int = 50) -> list[DownloadRecord]:
    """The user's newest downloads, in the context the caller set (under row-level security,
    the user's own: see `user_downloads`)."""
    parameters = {"user_id": user_id, "limit": _checked(limit)}
    planned = reads.DOWNLOADS.call(parameters)
    return _records(hot.fetch(source, hot.Read(DOWNLOADS_SQL, parameters, planned=planned)))


def user_downloads(
    source: hot.ReadSource, clerk_user_id: str, limit: int = 50
) -> list[DownloadRecord]:
    """The newest downloads of the user with this Clerk id, read as that user (`as_user`'s
    context and the query in one round trip; see `cart.user_cart`)."""
    read = read_as_user(
        reads.DOWNLOADS_TEMPLATE, reads.DOWNLOADS_ROWS, clerk_user_id, {"limit": _checked(limit)}
    )
    planned = reads.USER_DOWNLOADS.call(read.alone_parameters)
    return _records(hot.fetch(source, read.with_planned(planned)))


async def downloads_async(
    source: hot.AsyncReadSource, user_id: uuid.UUID, limit: int = 50
) -> list[DownloadRecord]:
    """`downloads` for asyncio."""
    parameters = {"user_id": user_id, "limit": _checked(limit)}
    planned = reads.DOWNLOADS.call(parameters)
    return _records(
        await hot.fetch_async(source, hot.Read(DOWNLOADS_SQL, parameters, planned=planned))
    )


async def user_downloads_async(
    source: hot.AsyncReadSource, clerk_user_id: str, limit: int = 50
) -> list[DownloadRecord]:
    """`user_downloads` for asyncio."""
    read = read_as_user(
        reads.DOWNLOADS_TEMPLATE, reads.DOWNLOADS_ROWS, clerk_user_id, {"limit": _checked(limit)}
    )
    planned = reads.USER_DOWNLOADS.call(read.alone_parameters)
    rows = await hot.fetch_async(source, read.with_planned(planned))
    return _records(rows)
