"""`migrate test`: the pending revisions rehearsed on a scratch copy of the target.

The copy is made with CREATE DATABASE ... TEMPLATE (a file copy, fast) when the target has no
other sessions, with pg_dump | pg_restore otherwise; it is dropped whatever happens. The target
only receives the record that the revisions passed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import psycopg
from sqlalchemy import MetaData
from sqlalchemy.exc import SQLAlchemyError

from afilo_db.db.databases import copy_database, drop_database
from afilo_db.db.urls import with_database
from afilo_db.errors import OperationError
from afilo_db.migrate import revisions
from afilo_db.migrate.log import Step, record
from afilo_db.models import Base


@dataclass
class Rehearsal:
    revisions: list[str]
    copied_with: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)
    model_differences: list[str] = field(default_factory=list)
    failure: str | None = None

    @property
    def passed(self) -> bool:
        return self.failure is None and not self.model_differences


def _timed(timings: dict[str, float], label: str, work: Callable[[], object]) -> None:
    started = time.perf_counter()
    work()
    timings[label] = round((time.perf_counter() - started) * 1000, 1)


def rehearse(
    url: str,
    metadata: MetaData = Base.metadata,
    progress: Callable[[str], None] | None = None,
) -> Rehearsal:
    """Apply the pending revisions to a copy, check the copy matches the models, go down and up
    again, drop the copy; record the revisions as tested when all of it passed."""
    report = Rehearsal(revisions=revisions.pending_revisions(url))
    if not report.revisions:
        return report
    start = revisions.current_revision(url)
    scratch = f"afilo_rehearsal_{uuid.uuid4().hex[:12]}"
    step = progress or (lambda _: None)
    step("copying the database")
    report.copied_with = copy_database(url, scratch)
    copy_url = with_database(url, scratch)
    try:
        for revision in report.revisions:
            step(f"upgrade {revision}")
            _timed(
                report.timings_ms,
                f"upgrade {revision}",
                partial(revisions.upgrade_one, copy_url, revision, metadata=metadata),
            )
        report.model_differences = [
            revisions.describe_difference(difference)
            for difference in revisions.model_differences(copy_url, metadata)
        ]
        step("downgrade")
        _timed(
            report.timings_ms,
            f"downgrade to {start or 'base'}",
            lambda: revisions.downgrade(copy_url, start or "base"),
        )
        step("upgrade again")
        for revision in report.revisions:
            _timed(
                report.timings_ms,
                f"upgrade {revision} again",
                partial(revisions.upgrade_one, copy_url, revision, metadata=metadata),
            )
    except (SQLAlchemyError, psycopg.Error, OperationError) as error:
        report.failure = str(error).splitlines()[0]
    finally:
        drop_database(url, scratch)
    if report.passed:
        for revision in report.revisions:
            record(
                url,
                revision,
                Step.TESTED,
                revisions.revision_checksum(revision),
                duration_ms=report.timings_ms.get(f"upgrade {revision}"),
                details={"copied_with": report.copied_with},
            )
    return report
