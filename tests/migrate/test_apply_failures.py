"""Issue 14 item 4: a failed `migrate apply` is recorded and shown, leaves no INVALID index, and a
lock timeout is tried again with backoff before giving up."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from afilo_db.errors import OperationError
from afilo_db.migrate import checklist, revisions
from afilo_db.migrate.log import Step, entries, record
from tests.migrate import test_migration_checklist as checklist_tests
from tests.migrate.test_migration_checklist import column_exists, write_revision

# The checklist tests' fixtures: a seeded database, a revisions directory of the test's own.
seeded_url = checklist_tests.seeded_url
versions_dir = checklist_tests.versions_dir


def approve(url: str, revision: str) -> None:
    """Mark the revision reviewed and tested (both are proven elsewhere) with its checksum."""
    for step in (Step.REVIEWED, Step.TESTED):
        record(url, revision, step, revisions.revision_checksum(revision))


def invalid_indexes(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        return [str(row[0]) for row in connection.execute(checklist.INVALID_INDEXES)]


def test_a_failure_is_recorded_and_status_shows_it(seeded_url: str, versions_dir: Path) -> None:
    revision = write_revision(
        versions_dir,
        "0099_divides_by_zero",
        '    op.execute("UPDATE products SET title = title || (1 / 0)::text")',
    )
    approve(seeded_url, revision)
    with pytest.raises(OperationError, match="division by zero") as caught:
        checklist.apply(seeded_url)
    assert "SQLSTATE 22012" in str(caught.value)

    failure = [entry for entry in entries(seeded_url) if entry.step == Step.FAILED]
    assert len(failure) == 1
    assert failure[0].revision == revision and failure[0].actor
    assert failure[0].details["sqlstate"] == "22012"
    assert "division by zero" in failure[0].details["message"]
    assert "UPDATE products" in failure[0].details["statement"]

    shown = {item.revision: item for item in checklist.status(seeded_url).checklists}
    failure_shown = shown[revision].failure
    assert failure_shown is not None
    assert "SQLSTATE 22012" in failure_shown and "UPDATE products" in failure_shown


def test_a_failed_concurrent_index_build_leaves_no_invalid_index(
    seeded_url: str, versions_dir: Path
) -> None:
    revision = write_revision(
        versions_dir,
        "0099_unique_status",
        "    with op.get_context().autocommit_block():\n"
        '        op.execute("CREATE UNIQUE INDEX CONCURRENTLY ix_products_status_once'
        ' ON products (status)")',
    )
    approve(seeded_url, revision)
    with pytest.raises(OperationError, match="rolled back"):
        checklist.apply(seeded_url)
    assert invalid_indexes(seeded_url) == []
    failure = [entry for entry in entries(seeded_url) if entry.step == Step.FAILED][-1]
    assert "public.ix_products_status_once" in " ".join(failure.details["notes"])


def test_a_lock_timeout_is_tried_again(
    seeded_url: str, versions_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checklist, "LOCK_RETRY_BACKOFF_SECONDS", 0.4)
    revision = write_revision(
        versions_dir,
        "0099_add_note",
        '    op.execute("ALTER TABLE products ADD COLUMN note text")',
        '    op.execute("ALTER TABLE products DROP COLUMN note")',
    )
    approve(seeded_url, revision)
    holder = psycopg.connect(seeded_url)
    holder.execute("SELECT count(*) FROM products")  # holds ACCESS SHARE until it ends
    steps: list[str] = []

    def progress(step: str) -> None:
        steps.append(step)
        # Released by the first retry, not by a timer: on a loaded machine a timer could fire
        # before the ALTER ever waited, and the test would show nothing.
        if "lock timeout, trying again" in step:
            holder.rollback()

    try:
        result = checklist.apply(seeded_url, lock_timeout="200ms", progress=progress)
    finally:
        holder.close()
    assert [item.revision for item in result.applied] == [revision]
    assert column_exists(seeded_url, "products", "note")
    assert sum("lock timeout, trying again" in step for step in steps) == 1


def test_lock_timeouts_give_up_after_the_retries(
    seeded_url: str, versions_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checklist, "LOCK_RETRY_BACKOFF_SECONDS", 0.05)
    revision = write_revision(
        versions_dir,
        "0099_add_note",
        '    op.execute("ALTER TABLE products ADD COLUMN note text")',
    )
    approve(seeded_url, revision)
    with psycopg.connect(seeded_url) as holder:
        holder.execute("SELECT count(*) FROM products")
        steps: list[str] = []
        with pytest.raises(OperationError, match="55P03"):
            checklist.apply(seeded_url, lock_timeout="100ms", progress=steps.append)
        holder.rollback()
    assert sum("trying again" in step for step in steps) == checklist.LOCK_RETRIES
    failure = [entry for entry in entries(seeded_url) if entry.step == Step.FAILED][-1]
    assert failure.details["sqlstate"] == "55P03"
