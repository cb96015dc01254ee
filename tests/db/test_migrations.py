"""The models and the migrated database agree; the baseline goes down and up; deploy is safe to
run twice at the same moment."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import psycopg

from afilo_db.migrate.revisions import (
    current_revision,
    deploy,
    downgrade,
    head_revision,
    model_differences,
    pending_revisions,
)


def autogenerate_differences(url: str) -> list[object]:
    return list(model_differences(url))


def public_tables(url: str) -> set[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {str(row[0]) for row in rows}


def test_models_and_migrated_database_agree(database_url: str) -> None:
    assert autogenerate_differences(database_url) == []


def test_downgrade_to_base_and_upgrade_again(database_url: str) -> None:
    downgrade(database_url, "base")
    assert public_tables(database_url) == {"alembic_version"}
    assert current_revision(database_url) is None

    every_revision = pending_revisions(database_url)
    assert every_revision[-1] == head_revision()
    assert deploy(database_url) == every_revision
    assert "products" in public_tables(database_url)
    assert autogenerate_differences(database_url) == []


def test_deploy_at_head_does_nothing(database_url: str) -> None:
    assert deploy(database_url) == []


def test_two_concurrent_deploys_apply_once(empty_database_url: str) -> None:
    environment = {**os.environ, "DATABASE_URL": empty_database_url}
    command = [sys.executable, "-m", "afilo_db", "migrate", "deploy"]
    every_revision = ", ".join(pending_revisions(empty_database_url))

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, env=environment, capture_output=True, text=True, check=False)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: run(), range(2)))

    assert [result.returncode for result in results] == [0, 0], [r.stderr for r in results]
    outputs = sorted(result.stdout.strip() for result in results)
    assert outputs == [f"applied: {every_revision}", "nothing to apply: at head"]
    assert current_revision(empty_database_url) == head_revision()
