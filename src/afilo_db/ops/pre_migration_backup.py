"""The backup `migrate apply` takes before it changes anything.

One function on purpose: the full backup tooling (manifests, verification, retention) replaces
its body without touching its callers.
"""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from afilo_db.config import get_settings
from afilo_db.db.embedded import pg_binary
from afilo_db.errors import OperationError


def take_pre_migration_backup(url: str, label: str) -> Path:
    """`pg_dump -Fc` of the database at `url` into $AFILO_HOME/backups; returns the file."""
    directory = get_settings().home / "backups"
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = directory / f"{stamp}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', label)}.dump"
    result = subprocess.run(
        [str(pg_binary("pg_dump")), "--format=custom", "--file", str(path), "--dbname", url],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        path.unlink(missing_ok=True)
        raise OperationError(f"pg_dump failed, nothing was migrated: {result.stderr.strip()}")
    return path
