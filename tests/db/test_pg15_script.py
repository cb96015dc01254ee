"""`make test-pg15` without pgvector's source: it says where it looked and exits non-zero before
installing or starting anything."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "scripts" / "pg15.sh"


def test_an_absent_tarball_stops_the_target_with_a_clear_message(tmp_path: Path) -> None:
    absent = tmp_path / "vendor" / "pgvector-0.8.6.tar.gz"
    result = subprocess.run(
        [str(SCRIPT)],
        env={**os.environ, "PGVECTOR_TARBALL": str(absent)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert f"pgvector's source {absent} is absent" in result.stderr
    assert "PGVECTOR_TARBALL" in result.stderr
