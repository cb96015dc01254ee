"""The production step and the view of where each revision stands.

`apply` runs only revisions that passed review and test unchanged (same file checksum), after a
backup, under an advisory lock, with lock and statement timeouts, one revision per transaction,
and records who applied what, when, with which checksum and how long it took. `status` shows,
per revision, the checklist: generated, reviewed, tested, backed up, applied, derived artefacts
regenerated, application code confirmed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import MetaData
from sqlalchemy.exc import SQLAlchemyError

from afilo_db.backups.create import create_backup
from afilo_db.backups.manifest import backup_path
from afilo_db.errors import ConflictError, ForbiddenError, NotFoundError, OperationError
from afilo_db.migrate import revisions
from afilo_db.migrate.docs import DOCS_DIRECTORY, documented_hash, live_schema_hash
from afilo_db.migrate.log import UNMEASURED_DETAIL, LogEntry, Step, entries, latest, record
from afilo_db.models import Base

# Session-level advisory lock held for a whole `apply` (backup included): 'afilo-ap'.
APPLY_LOCK_KEY = int.from_bytes(b"afilo-ap", "big", signed=True)
DEFAULT_LOCK_TIMEOUT = "5s"
DEFAULT_STATEMENT_TIMEOUT = "30min"
# A revision that timed out waiting for a lock was rolled back whole: it is tried again, after
# 1, 2, 4 ... times this many seconds, while the application's transactions drain.
LOCK_RETRIES = 3
LOCK_RETRY_BACKOFF_SECONDS = 1.0
LOCK_NOT_AVAILABLE = "55P03"
INVALID_INDEXES = """
SELECT format('%I.%I', n.nspname, c.relname)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT i.indisvalid
"""


@dataclass(frozen=True)
class Drift:
    """An applied revision whose file changed since it was applied."""

    revision: str
    applied_checksum: str
    current_checksum: str | None


@dataclass
class AppliedRevision:
    revision: str
    checksum: str
    duration_ms: float


@dataclass
class ApplyResult:
    applied: list[AppliedRevision] = field(default_factory=list)
    backup: Path | None = None
    drift: list[Drift] = field(default_factory=list)


def _checksum_or_none(revision: str) -> str | None:
    try:
        return revisions.revision_checksum(revision)
    except NotFoundError:
        return None


def file_drift(url: str, log: list[LogEntry] | None = None) -> list[Drift]:
    """Applied revisions whose file is no longer the one that was applied (as Prisma reports)."""
    log = entries(url) if log is None else log
    drift = []
    for revision in revisions.applied_revisions(url):
        applied = latest(log, revision, Step.APPLIED)
        if applied is None or applied.checksum is None:
            continue  # applied by `deploy` or before afilo-db kept records
        current = _checksum_or_none(revision)
        if current != applied.checksum:
            drift.append(Drift(revision, applied.checksum, current))
    return drift


def unapproved(url: str, pending: list[str], log: list[LogEntry]) -> dict[str, str]:
    """Why each revision may not be applied yet (empty: all passed review and test unchanged)."""
    problems = {}
    for revision in pending:
        checksum = revisions.revision_checksum(revision)
        for step, command in ((Step.REVIEWED, "migrate review"), (Step.TESTED, "migrate test")):
            entry = latest(log, revision, step)
            if entry is None:
                problems[revision] = f"not {step} (run `afilo-db {command}`)"
            elif entry.checksum != checksum:
                problems[revision] = f"file changed since it was {step} (run `afilo-db {command}`)"
            else:
                continue
            break
    return problems


def unmeasured(pending: list[str], log: list[LogEntry]) -> dict[str, list[str]]:
    """What the review of each pending revision could not measure (fail closed: an unmeasured
    danger is an error until the operator accepts it)."""
    found = {}
    for revision in pending:
        entry = latest(log, revision, Step.REVIEWED)
        if entry is not None and entry.details.get(UNMEASURED_DETAIL):
            found[revision] = list(entry.details[UNMEASURED_DETAIL])
    return found


def apply(
    url: str,
    lock_timeout: str = DEFAULT_LOCK_TIMEOUT,
    statement_timeout: str = DEFAULT_STATEMENT_TIMEOUT,
    metadata: MetaData = Base.metadata,
    progress: Callable[[str], None] | None = None,
    accept_unmeasured: bool = False,
) -> ApplyResult:
    """Apply every pending revision that passed review and test; refuse if any did not, or if
    its review could not measure something, unless `accept_unmeasured` (then recorded)."""
    step = progress or (lambda _: None)
    result = ApplyResult()
    with psycopg.connect(url, autocommit=True) as lock:
        step("waiting for the migration lock")
        lock.execute("SELECT pg_advisory_lock(%s)", (APPLY_LOCK_KEY,))
        try:
            log = entries(url)
            result.drift = file_drift(url, log)
            # Read after the lock: a concurrent apply that held it has applied them already.
            pending = revisions.pending_revisions(url)
            if not pending:
                return result
            problems = unapproved(url, pending, log)
            if problems:
                raise ForbiddenError(
                    "refusing to apply: "
                    + "; ".join(f"{revision}: {why}" for revision, why in problems.items())
                )
            accepted = unmeasured(pending, log)
            if accepted and not accept_unmeasured:
                raise ForbiddenError(
                    "refusing to apply: "
                    + "; ".join(f"{rev}: {'; '.join(why)}" for rev, why in accepted.items())
                    + " (review again once it can be measured, or pass --accept-unmeasured)"
                )
            step("backing up")
            manifest = create_backup(url, label=f"before {pending[-1]}")
            result.backup = backup_path(manifest.id)
            for revision in pending:
                record(
                    url,
                    revision,
                    Step.BACKED_UP,
                    revisions.revision_checksum(revision),
                    details={"backup_id": manifest.id, "path": str(result.backup)},
                )
            settings = {"lock_timeout": lock_timeout, "statement_timeout": statement_timeout}
            for revision in pending:
                step(f"applying {revision}")
                checksum = revisions.revision_checksum(revision)
                started = time.perf_counter()
                try:
                    _upgrade_retrying_lock_timeouts(url, revision, settings, metadata, step)
                except (SQLAlchemyError, psycopg.Error) as error:
                    failure = _record_failure(url, revision, checksum, error, started)
                    raise OperationError(
                        f"revision {revision} failed and was rolled back "
                        f"(applied before it: {[r.revision for r in result.applied] or 'none'}; "
                        f"recorded, see `afilo-db migrate status`): {failure}"
                    ) from error
                duration = round((time.perf_counter() - started) * 1000, 1)
                record(
                    url,
                    revision,
                    Step.APPLIED,
                    checksum,
                    duration_ms=duration,
                    details={
                        "backup": str(result.backup),
                        **settings,
                        **(
                            {"accept_unmeasured": True, UNMEASURED_DETAIL: accepted[revision]}
                            if revision in accepted
                            else {}
                        ),
                    },
                )
                result.applied.append(AppliedRevision(revision, checksum, duration))
        finally:
            lock.execute("SELECT pg_advisory_unlock(%s)", (APPLY_LOCK_KEY,))
    return result


def _invalid_indexes(url: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as connection:
        return {str(row[0]) for row in connection.execute(INVALID_INDEXES)}


def _upgrade_retrying_lock_timeouts(
    url: str,
    revision: str,
    settings: dict[str, str],
    metadata: MetaData,
    step: Callable[[str], None],
) -> None:
    """Apply `revision`; a lock timeout is retried with backoff. Whatever attempt fails, an index
    it left INVALID (a CREATE INDEX CONCURRENTLY that failed half-way stays behind, unusable but
    maintained on every write) is dropped."""
    for attempt in range(LOCK_RETRIES + 1):
        invalid_before = _invalid_indexes(url)
        try:
            revisions.upgrade_one(url, revision, session_settings=settings, metadata=metadata)
            return
        except (SQLAlchemyError, psycopg.Error) as error:
            left_invalid = _invalid_indexes(url) - invalid_before
            if left_invalid:
                with psycopg.connect(url, autocommit=True) as connection:
                    for index in sorted(left_invalid):
                        connection.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {index}")
            still_pending = revision in revisions.pending_revisions(url)
            if (
                _sqlstate(error) != LOCK_NOT_AVAILABLE
                or attempt == LOCK_RETRIES
                or not still_pending
            ):
                error.add_note(
                    f"attempts: {attempt + 1}; invalid indexes dropped: {sorted(left_invalid)}"
                )
                raise
            delay = LOCK_RETRY_BACKOFF_SECONDS * 2**attempt
            step(f"{revision}: lock timeout, trying again in {delay:g}s")
            time.sleep(delay)


def _sqlstate(error: BaseException) -> str | None:
    original = getattr(error, "orig", None) or error
    return getattr(original, "sqlstate", None)


def _record_failure(
    url: str, revision: str, checksum: str, error: BaseException, started: float
) -> str:
    """Record the failure in the migration log; the message, one line."""
    original = getattr(error, "orig", None) or error
    message = (getattr(getattr(original, "diag", None), "message_primary", None) or "").strip()
    message = message or str(original).splitlines()[0]
    statement = getattr(error, "statement", None)
    record(
        url,
        revision,
        Step.FAILED,
        checksum,
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
        details={
            "sqlstate": _sqlstate(error),
            "message": message,
            "statement": str(statement)[:4000] if statement else None,
            "notes": getattr(error, "__notes__", []),
        },
    )
    state = _sqlstate(error)
    return f"{message} (SQLSTATE {state})" if state else message


def confirm(url: str, revision: str) -> None:
    """A person ticks the last step: the application code works with the applied revision."""
    if revision not in revisions.applied_revisions(url):
        raise ConflictError(f"revision {revision} is not applied to this database yet")
    record(url, revision, Step.CONFIRMED, _checksum_or_none(revision))


@dataclass
class RevisionChecklist:
    revision: str
    generated: bool
    reviewed: bool
    tested: bool
    backed_up: bool
    applied: bool
    regenerated: bool
    confirmed: bool
    applied_by: str | None = None
    applied_at: str | None = None
    duration_ms: float | None = None
    failure: str | None = None
    """The last failed attempt to apply it, when it is not applied since: when, who, SQLSTATE,
    message, statement."""

    @property
    def done(self) -> bool:
        return all(
            (
                self.generated,
                self.reviewed,
                self.tested,
                self.backed_up,
                self.applied,
                self.regenerated,
                self.confirmed,
            )
        )


@dataclass
class Status:
    current: str | None
    applied: list[str]
    pending: list[str]
    model_drift: list[str]
    file_drift: list[Drift]
    docs_fresh: bool
    checklists: list[RevisionChecklist]

    @property
    def clean(self) -> bool:
        return (
            not self.pending
            and not self.model_drift
            and not self.file_drift
            and self.docs_fresh
            and all(checklist.done for checklist in self.checklists)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "current": self.current,
            "applied": self.applied,
            "pending": self.pending,
            "model_drift": self.model_drift,
            "file_drift": [vars(drift) for drift in self.file_drift],
            "docs_fresh": self.docs_fresh,
            "checklists": [{**vars(item), "done": item.done} for item in self.checklists],
        }


def _holds(log: list[LogEntry], revision: str, step: Step, checksum: str | None) -> bool:
    entry = latest(log, revision, step)
    return entry is not None and entry.checksum == checksum


def _describe_failure(entry: LogEntry | None) -> str | None:
    if entry is None:
        return None
    details = entry.details
    statement = " ".join(str(details.get("statement") or "").split())
    words = f"failed {entry.recorded_at:%Y-%m-%d %H:%M:%S %Z} by {entry.actor}"
    if details.get("sqlstate"):
        words += f", SQLSTATE {details['sqlstate']}"
    words += f": {details.get('message')}"
    return words + (f" in: {statement[:200]}" if statement else "")


def status(url: str, docs: Path = DOCS_DIRECTORY, metadata: MetaData = Base.metadata) -> Status:
    log = entries(url)
    applied = revisions.applied_revisions(url)
    pending = revisions.pending_revisions(url)
    docs_fresh = documented_hash(docs / "schema.md") == live_schema_hash(url)
    # Revisions that went through the checklist, and every pending one.
    tracked = [revision for revision in applied if latest(log, revision, Step.APPLIED)] + pending
    checklists = []
    for revision in tracked:
        checksum = _checksum_or_none(revision)
        applied_entry = latest(log, revision, Step.APPLIED)
        failed_entry = latest(log, revision, Step.FAILED)
        is_applied = revision in applied
        checklists.append(
            RevisionChecklist(
                revision=revision,
                generated=checksum is not None,
                reviewed=_holds(log, revision, Step.REVIEWED, checksum),
                tested=_holds(log, revision, Step.TESTED, checksum),
                backed_up=latest(log, revision, Step.BACKED_UP) is not None,
                applied=is_applied,
                regenerated=is_applied and docs_fresh,
                confirmed=latest(log, revision, Step.CONFIRMED) is not None,
                applied_by=applied_entry.actor if applied_entry else None,
                applied_at=applied_entry.recorded_at.isoformat() if applied_entry else None,
                duration_ms=applied_entry.duration_ms if applied_entry else None,
                failure=_describe_failure(failed_entry) if not is_applied else None,
            )
        )
    return Status(
        current=revisions.current_revision(url),
        applied=applied,
        pending=pending,
        # With revisions pending the models are expected to be ahead of the database.
        model_drift=[
            revisions.describe_difference(item)
            for item in revisions.model_differences(url, metadata)
        ],
        file_drift=file_drift(url, log),
        docs_fresh=docs_fresh,
        checklists=checklists,
    )
