"""A small full disk under a backup: one line, the documented code, nothing half-made listed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from afilo_db.backups.manifest import list_backups
from afilo_db.db.embedded import EmbeddedServer
from tests.cli import test_errors
from tests.faults.conftest import assert_one_line, seed_some, start, tables

pytestmark = pytest.mark.embedded_only("kills and fills servers of its own (embedded)")

tmpfs = test_errors.tmpfs

DISK = "size=256k"
# Demo rows, for the source to be compared with after the failure; the backup of
# this seed is over three times the disk (a migrated database's alone is about twice its size).
PRODUCTS = 50


def test_backup_onto_a_full_disk(
    crash_server: EmbeddedServer,
    fault_db: str,
    tmpfs: Callable[[str], Path],
) -> None:
    seed_some(fault_db, PRODUCTS)
    before = tables(fault_db)
    small = tmpfs(DISK)
    code, stderr = start(
        {"DATABASE_URL": fault_db}, "backup", "create", "--dir", str(small / "backups")
    ).finish()
    assert_one_line(code, stderr, {1})
    assert "space" in stderr.splitlines()[-1]
    assert list_backups(small / "backups") == []
    assert tables(fault_db) == before
