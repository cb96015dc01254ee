"""afilo-db's record of each revision's way through the checklist, kept in the target database.

The table lives in a schema of its own (afilo_ops), created on demand and never part of the
models or of the revision chain, so autogenerate and the application never see it. Writes are
committed at once (autocommit): a record must survive a failed migration, and an open
transaction would make CREATE INDEX CONCURRENTLY wait for it.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from afilo_db.migrations.support import OPS_SCHEMA

# The details key of a REVIEWED record listing what its review could not measure, and of the
# APPLIED record of a revision applied with them accepted (`migrate apply --accept-unmeasured`).
UNMEASURED_DETAIL = "unmeasured"


class Step(StrEnum):
    REVIEWED = "reviewed"
    TESTED = "tested"
    BACKED_UP = "backed_up"
    APPLIED = "applied"
    FAILED = "failed"
    CONFIRMED = "confirmed"


_CREATE = f"""
CREATE SCHEMA IF NOT EXISTS {OPS_SCHEMA};
CREATE TABLE IF NOT EXISTS {OPS_SCHEMA}.migration_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    revision text NOT NULL,
    step text NOT NULL CHECK (step IN ({", ".join(f"'{step}'" for step in Step)})),
    checksum text,
    actor text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    duration_ms numeric,
    details jsonb NOT NULL DEFAULT '{{}}'
);
CREATE INDEX IF NOT EXISTS migration_log_revision_step
    ON {OPS_SCHEMA}.migration_log (revision, step, recorded_at);
"""
# A log created by an earlier afilo-db knows fewer steps: widen its CHECK to today's.
_WIDEN_STEPS = f"""
DO $$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM pg_constraint
    WHERE conrelid = '{OPS_SCHEMA}.migration_log'::regclass AND contype = 'c'
      AND pg_get_constraintdef(oid) LIKE '%''{Step.FAILED}''%'
  ) THEN
    ALTER TABLE {OPS_SCHEMA}.migration_log DROP CONSTRAINT IF EXISTS migration_log_step_check;
    ALTER TABLE {OPS_SCHEMA}.migration_log ADD CONSTRAINT migration_log_step_check
      CHECK (step IN ({", ".join(f"'{step}'" for step in Step)}));
  END IF;
END
$$;
"""


@dataclass(frozen=True)
class LogEntry:
    revision: str
    step: Step
    checksum: str | None
    actor: str
    recorded_at: datetime
    duration_ms: float | None
    details: dict[str, Any]


def actor() -> str:
    """Who is running afilo-db: the OS user and the machine."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


def record(
    url: str,
    revision: str,
    step: Step,
    checksum: str | None,
    duration_ms: float | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        # Two first records at once: the lock makes CREATE ... IF NOT EXISTS race-free.
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(hashtext('afilo_ops.migration_log'))")
            connection.execute(_CREATE)
            connection.execute(_WIDEN_STEPS)
        connection.execute(
            f"INSERT INTO {OPS_SCHEMA}.migration_log"
            " (revision, step, checksum, actor, duration_ms, details)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (revision, str(step), checksum, actor(), duration_ms, Jsonb(details or {})),
        )


def entries(url: str) -> list[LogEntry]:
    """Every record, oldest first (none when nothing was ever recorded)."""
    with psycopg.connect(url, autocommit=True) as connection:
        exists = connection.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (f"{OPS_SCHEMA}.migration_log",)
        ).fetchone()
        if not exists or not exists[0]:
            return []
        rows = connection.execute(
            "SELECT revision, step, checksum, actor, recorded_at, duration_ms, details"
            f" FROM {OPS_SCHEMA}.migration_log ORDER BY id"
        ).fetchall()
    return [
        LogEntry(
            revision=row[0],
            step=Step(row[1]),
            checksum=row[2],
            actor=row[3],
            recorded_at=row[4],
            duration_ms=float(row[5]) if row[5] is not None else None,
            details=row[6],
        )
        for row in rows
    ]


def latest(log: list[LogEntry], revision: str, step: Step) -> LogEntry | None:
    found = [entry for entry in log if entry.revision == revision and entry.step == step]
    return found[-1] if found else None
