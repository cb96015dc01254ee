"""`migrate test`: the pending revisions rehearsed on a scratch copy of the target.

The copy is made with CREATE DATABASE ... TEMPLATE (a file copy, fast) when the target has no
other sessions, with pg_dump | pg_restore otherwise; it is dropped whatever happens. The target
only receives the record that the revisions passed.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import psycopg
from psycopg import sql
from sqlalchemy import MetaData
from sqlalchemy.exc import SQLAlchemyError

from afilo_db.db.embedded import pg_binary
from afilo_db.db.urls import database_name, with_database
from afilo_db.errors import OperationError
from afilo_db.models import Base
from afilo_db.ops import migrate
from afilo_db.ops.migration_log import Step, record

MAINTENANCE_DATABASE = "postgres"


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


def copy_database(url: str, name: str) -> str:
    """Create database `name` as a copy of the one at `url`; returns how it was copied."""
    admin = with_database(url, MAINTENANCE_DATABASE)
    with psycopg.connect(admin, autocommit=True) as connection:
        try:
            connection.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(database_name(url))
                )
            )
            return "CREATE DATABASE ... TEMPLATE"
        except psycopg.errors.ObjectInUse:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dump = subprocess.Popen(
        [str(pg_binary("pg_dump")), "--format=custom", "--dbname", url], stdout=subprocess.PIPE
    )
    restore = subprocess.run(
        [str(pg_binary("pg_restore")), "--no-owner", "--dbname", with_database(url, name)],
        stdin=dump.stdout,
        capture_output=True,
        text=True,
        check=False,
    )
    if dump.wait() != 0 or restore.returncode != 0:
        raise OperationError(f"copying the database failed: {restore.stderr.strip()}")
    return "pg_dump | pg_restore"


def drop_database(url: str, name: str) -> None:
    with psycopg.connect(with_database(url, MAINTENANCE_DATABASE), autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


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
    report = Rehearsal(revisions=migrate.pending_revisions(url))
    if not report.revisions:
        return report
    start = migrate.current_revision(url)
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
                partial(migrate.upgrade_one, copy_url, revision, metadata=metadata),
            )
        report.model_differences = [
            str(difference) for difference in migrate.model_differences(copy_url, metadata)
        ]
        step("downgrade")
        _timed(
            report.timings_ms,
            f"downgrade to {start or 'base'}",
            lambda: migrate.downgrade(copy_url, start or "base"),
        )
        step("upgrade again")
        for revision in report.revisions:
            _timed(
                report.timings_ms,
                f"upgrade {revision} again",
                partial(migrate.upgrade_one, copy_url, revision, metadata=metadata),
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
                migrate.revision_checksum(revision),
                duration_ms=report.timings_ms.get(f"upgrade {revision}"),
                details={"copied_with": report.copied_with},
            )
    return report
