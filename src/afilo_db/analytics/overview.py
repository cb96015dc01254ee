"""The operator's figures beside the reports on the studio's dashboard: rows per table and the
newest entries of the activity log. Each is one query per table; nothing is computed row by row
in Python."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from sqlalchemy import select
from sqlalchemy.orm import Session

from afilo_db.data.up import table_counts
from afilo_db.models import UserActivityLog

NEWEST_ACTIVITY = 12


@dataclass(frozen=True)
class ActivityEntry:
    created_at: datetime
    actor: str
    action: str
    entity_type: str | None
    entity_id: str | None


@dataclass(frozen=True)
class Overview:
    counts: dict[str, int]
    newest_activity: list[ActivityEntry]


def overview(session: Session) -> Overview:
    driver = session.connection().connection.driver_connection
    if not isinstance(driver, psycopg.Connection):
        raise TypeError("the overview needs a psycopg connection")
    activity = session.execute(
        select(
            UserActivityLog.created_at,
            UserActivityLog.actor,
            UserActivityLog.action,
            UserActivityLog.entity_type,
            UserActivityLog.entity_id,
        )
        .order_by(UserActivityLog.created_at.desc(), UserActivityLog.id.desc())
        .limit(NEWEST_ACTIVITY)
    )
    return Overview(
        counts=table_counts(driver),
        newest_activity=[ActivityEntry(*row) for row in activity],
    )
