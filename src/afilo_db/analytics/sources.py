"""Which server answers the reports: the read replica when one is configured and healthy, the
primary otherwise, and how stale the answer may be.

The replica is REPLICA_URL when set; with the embedded server and no REPLICA_URL, the embedded
replica when it runs (`afilo-db db replica start`). After the rollups are refreshed on the primary,
the replica gets a short while to replay the primary's position (read your own refresh); if it has
not, its staleness is the age of the last transaction it replayed, and a replica staler than the
bound (REPLICA_MAX_LAG_SECONDS) or unreachable is skipped: the primary answers, and says why.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg

from afilo_db.analytics import rollups
from afilo_db.analytics.reports import DateRange, ReportOptions, ReportTable, report_definition
from afilo_db.db.urls import libpq_url, make_url

# How long a report waits for the replica to replay the primary's latest position.
CATCH_UP_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 3


@dataclass(frozen=True)
class Answer:
    """Who answered a report, and how far behind the primary it may be."""

    server: Literal["replica", "primary"]
    address: str
    lag_seconds: float
    """0 on the primary; on the replica, how far behind the primary it was when read."""
    note: str
    """Why the primary answered, when a replica is configured."""
    rollups_refreshed_at: datetime | None

    def describe(self) -> str:
        refreshed = (
            f"rollups refreshed {self.rollups_refreshed_at:%Y-%m-%d %H:%M:%S %Z}"
            if self.rollups_refreshed_at
            else "rollups never refreshed"
        )
        if self.server == "replica":
            where = f"answered by the replica {self.address}, up to {self.lag_seconds:.1f} s behind the primary"
        else:
            where = f"answered by the primary {self.address}" + (
                f" ({self.note})" if self.note else ""
            )
        return f"{where}; {refreshed}"


@dataclass(frozen=True)
class ReportRun:
    answer: Answer
    tables: list[ReportTable]


def address_of(url: str) -> str:
    parsed = make_url(libpq_url(url))
    return f"{parsed.host}:{parsed.port or 5432}/{parsed.database}"


def _scalar(connection: psycopg.Connection[Any], query: str, *parameters: Any) -> Any:
    row = connection.execute(query, parameters).fetchone()
    return None if row is None else row[0]


def replica_lag(
    replica: psycopg.Connection[Any], primary_position: str, catch_up_seconds: float
) -> float | None:
    """Seconds the replica is behind: 0 (or the wait) once it has replayed `primary_position`,
    else the age of the last transaction it replayed; None when unknown."""
    if not _scalar(replica, "SELECT pg_is_in_recovery()"):
        return 0.0  # a promoted replica, or a primary given as one: nothing to replay
    started = time.monotonic()
    while True:
        caught_up = _scalar(
            replica, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", primary_position
        )
        waited = time.monotonic() - started
        if caught_up:
            return waited
        if waited >= catch_up_seconds:
            break
        time.sleep(0.05)
    age = _scalar(
        replica, "SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8"
    )
    return None if age is None else float(age)


def run_reports(
    names: Sequence[str],
    date_range: DateRange,
    *,
    primary_url: str,
    replica_url: str | None,
    max_lag_seconds: float,
    refresh: bool = True,
    catch_up_seconds: float = CATCH_UP_SECONDS,
    options: ReportOptions | None = None,
) -> ReportRun:
    """Refresh the rollups on the primary (the owner's URL), then run the reports in one
    read-only snapshot on the replica when it is healthy, on the primary otherwise."""
    definitions = [report_definition(name) for name in names]
    with psycopg.connect(primary_url, connect_timeout=CONNECT_TIMEOUT_SECONDS) as primary:
        if refresh:
            rollups.refresh(primary)
            primary.commit()
        # The insert position, not the write one: with asynchronous commit, what was committed
        # may not have been written out yet.
        position = str(_scalar(primary, "SELECT pg_current_wal_insert_lsn()"))
        primary.rollback()
    server: Literal["replica", "primary"] = "primary"
    source_url, lag, note = primary_url, 0.0, ""
    if replica_url is not None:
        try:
            with psycopg.connect(
                replica_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
            ) as replica:
                measured = replica_lag(replica, position, min(catch_up_seconds, max_lag_seconds))
        except psycopg.Error as error:
            note = f"replica {address_of(replica_url)} unreachable: {str(error).strip().splitlines()[0]}"
        else:
            if measured is None or measured > max_lag_seconds:
                behind = "an unknown time" if measured is None else f"{measured:.1f} s"
                note = (
                    f"replica {address_of(replica_url)} skipped: {behind} behind, "
                    f"more than the {max_lag_seconds:g} s allowed"
                )
            else:
                source_url, server, lag = replica_url, "replica", measured
    with psycopg.connect(source_url, connect_timeout=CONNECT_TIMEOUT_SECONDS) as connection:
        connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        tables = [definition.run(connection, date_range, options) for definition in definitions]
        refreshed_at = rollups.refreshed_at(connection)
        connection.rollback()
    answer = Answer(server, address_of(source_url), lag, note, refreshed_at)
    return ReportRun(answer, tables)
