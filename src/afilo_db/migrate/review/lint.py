"""squawk (from the squawk-cli wheel) on the same SQL, its findings turned into ours."""

from __future__ import annotations

import json
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from afilo_db.errors import OperationError
from afilo_db.migrate.review.findings import Finding, Severity

# squawk rules that `migrate apply` makes moot: it sets lock_timeout and statement_timeout, runs
# each revision in a transaction of its own, and Alembic writes BEGIN/COMMIT itself.
SQUAWK_EXCLUDED = (
    "require-lock-timeout",
    "require-statement-timeout",
    "prefer-robust-stmts",
    "transaction-nesting",
)

# -- squawk -------------------------------------------------------------------------------------


def squawk_executable() -> Path:
    return Path(sysconfig.get_path("scripts")) / "squawk"


def squawk(sql: str) -> list[dict[str, Any]]:
    """squawk's findings on `sql` (its JSON reporter), lines counted from 0."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "migration.sql"
        path.write_text(sql)
        try:
            result = subprocess.run(
                [
                    str(squawk_executable()),
                    "--reporter",
                    "json",
                    "--exclude",
                    ",".join(SQUAWK_EXCLUDED),
                    str(path),
                ],
                capture_output=True,
                text=True,
                check=False,
                timeout=120,
            )
        except OSError as error:
            raise OperationError(f"squawk could not run: {error}") from error
    if result.returncode not in (0, 1) or not result.stdout.strip():
        if result.returncode == 0:
            return []
        raise OperationError(f"squawk failed: {result.stderr.strip() or result.stdout.strip()}")
    violations: list[dict[str, Any]] = json.loads(result.stdout)
    return violations


def statement_at(starts: list[int], violation: dict[str, Any]) -> int | None:
    line = int(violation.get("line", 0))
    candidates = [index for index, start in enumerate(starts) if start <= line]
    return candidates[-1] if candidates else None


def squawk_finding(violation: dict[str, Any]) -> Finding:
    level = str(violation.get("level", "warning")).lower()
    severity: Severity = "error" if level == "error" else "warning"
    help_text = violation.get("help")
    return Finding(
        rule=str(violation.get("rule_name")),
        severity=severity,
        message=str(violation.get("message")),
        recipe=str(help_text) if help_text else None,
        source="squawk",
    )
