"""The monthly partitions of `events`: created ahead, old ones detached and dropped.

A month's partition is `events_pYYYYMM`, bounded in UTC. Inserts never fail for a missing month:
rows with no partition land in `events_default`, and `create_event_partition` (SQL, installed by
the migrations) moves them into their month when it creates it. Partitions named otherwise
(attached by hand) are never dropped here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from psycopg import sql

from afilo_db.errors import ValidationError

PARTITION_NAME = re.compile(r"^events_p(\d{4})(\d{2})$")
DEFAULT_PARTITION = "events_default"
MONTHS_AHEAD = 3
# Far enough for any business's retention policy, small enough to catch a typo.
MAX_KEEP_MONTHS = 1200


def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(month: date, months: int) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class EventPartition:
    name: str
    month: date


def list_partitions(connection: psycopg.Connection[Any]) -> list[EventPartition]:
    """The monthly partitions attached to `events`, oldest first."""
    rows = connection.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'events'::regclass"
    ).fetchall()
    partitions = []
    for (name,) in rows:
        match = PARTITION_NAME.match(str(name))
        if match:
            month = date(int(match[1]), int(match[2]), 1)
            partitions.append(EventPartition(str(name), month))
    return sorted(partitions, key=lambda partition: partition.month)


def _today(connection: psycopg.Connection[Any]) -> date:
    row = connection.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()
    assert row is not None
    today: date = row[0]
    return today


def ensure_ahead(
    connection: psycopg.Connection[Any],
    months_ahead: int = MONTHS_AHEAD,
    *,
    also: tuple[date, ...] = (),
) -> int:
    """Create the partitions of this month and the next `months_ahead` (and of the months in
    `also`), moving any of their rows out of the default partition; how many were created.
    Needs the owner of `events`."""
    months = {month_start(_today(connection))}
    months |= {add_months(min(months), step) for step in range(1, months_ahead + 1)}
    months |= {month_start(month) for month in also}
    created = 0
    for month in sorted(months):
        row = connection.execute("SELECT create_event_partition(%s)", (month,)).fetchone()
        created += bool(row and row[0])
    return created


@dataclass(frozen=True)
class RetentionResult:
    bound: date
    """Months before this one are gone."""
    dropped: list[str]
    kept: list[str]
    stranded_rows_deleted: int
    """Rows older than the bound found in the default partition."""
    dry_run: bool


def apply_retention(
    connection: psycopg.Connection[Any],
    keep_months: int,
    *,
    dry_run: bool = False,
    today: date | None = None,
) -> RetentionResult:
    """Detach and drop every monthly partition that ends before the current month minus
    `keep_months` months, in the caller's transaction; with `dry_run`, only say which. Whole
    months only: the partition holding the bound and any later one stay."""
    if isinstance(keep_months, bool) or not isinstance(keep_months, int) or keep_months < 0:
        raise ValidationError({"keep_months": "must be a whole number of months, 0 or more"})
    if keep_months > MAX_KEEP_MONTHS:
        raise ValidationError({"keep_months": f"must be at most {MAX_KEEP_MONTHS}"})
    bound = add_months(month_start(today or _today(connection)), -keep_months)
    partitions = list_partitions(connection)
    old = [partition for partition in partitions if add_months(partition.month, 1) <= bound]
    kept = [partition.name for partition in partitions if partition not in old]
    bound_at = datetime(bound.year, bound.month, 1, tzinfo=UTC)
    stranded = 0
    if not dry_run:
        for partition in old:
            name = sql.Identifier(partition.name)
            connection.execute(sql.SQL("ALTER TABLE events DETACH PARTITION {}").format(name))
            connection.execute(sql.SQL("DROP TABLE {}").format(name))
        stranded = connection.execute(
            sql.SQL("DELETE FROM {} WHERE occurred_at < %s").format(
                sql.Identifier(DEFAULT_PARTITION)
            ),
            (bound_at,),
        ).rowcount
    else:
        row = connection.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE occurred_at < %s").format(
                sql.Identifier(DEFAULT_PARTITION)
            ),
            (bound_at,),
        ).fetchone()
        stranded = int(row[0]) if row else 0
    return RetentionResult(
        bound=bound,
        dropped=[partition.name for partition in old],
        kept=kept,
        stranded_rows_deleted=stranded,
        dry_run=dry_run,
    )
