"""backup, restore, pitr, export and erase as an operator runs them, on a home of their own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from afilo_db.db.embedded import EmbeddedServer
from afilo_db.knowledge.embedders import get_embedder
from tests.backups.test_pitr import start_without_flushes
from tests.cli.test_up import afilo_db
from tests.conftest import vectors_shared_by_the_run

pytestmark = pytest.mark.embedded_only("runs on an embedded server in a home of its own")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("backup-home") / "afilo"
    # `up` finds the server started, as after `afilo-db db start`, and does the rest.
    start_without_flushes(path)
    with vectors_shared_by_the_run(get_embedder()):  # `up` embeds the demo data's texts
        afilo_db(path, "up")
    yield path
    EmbeddedServer(path).destroy()


def test_backup_verify_restore(home: Path) -> None:
    created = afilo_db(home, "backup", "create", "--label", "before demo")
    backup_id = created.stdout.strip().splitlines()[-1]
    assert (home / "backups" / backup_id / "manifest.json").is_file()

    listed = json.loads(afilo_db(home, "backup", "list", "--json").stdout)
    assert [(b["id"], b["label"], b["verified"]) for b in listed] == [
        (backup_id, "before demo", False)
    ]

    verified = afilo_db(home, "backup", "verify", backup_id)
    assert f"backup {backup_id} verified" in verified.stdout
    assert "amcheck passed (tables only" in verified.stdout
    thorough = afilo_db(home, "backup", "verify", backup_id, "--thorough")
    assert "amcheck passed" in thorough.stdout and "tables only" not in thorough.stdout
    assert json.loads(afilo_db(home, "backup", "list", "--json").stdout)[0]["verified"] is True

    restored = afilo_db(home, "restore", backup_id, "--into", "afilo_copy")
    assert "restored" in restored.stdout and "afilo_copy" in restored.stdout
    assert "migrate deploy" not in restored.stderr

    refused = afilo_db(home, "restore", backup_id, "--in-place", check=False)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    missing = afilo_db(home, "backup", "verify", "20000101T000000.000000Z", check=False)
    assert missing.returncode == 3


def test_verify_failure_exits_non_zero_naming_the_file(home: Path) -> None:
    backup_id = afilo_db(home, "backup", "create").stdout.strip().splitlines()[-1]
    toc = home / "backups" / backup_id / "dump" / "toc.dat"
    data = bytearray(toc.read_bytes())
    data[-1] ^= 0xFF
    toc.write_bytes(bytes(data))
    result = afilo_db(home, "backup", "verify", backup_id, check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert "file dump/toc.dat" in result.stderr
    assert lines[-1].startswith(f"error: backup {backup_id} failed verification"), lines
    assert [line for line in lines if line.startswith("error:")] == [lines[-1]]


def test_export_and_erase_a_user(home: Path, tmp_path: Path) -> None:
    url = afilo_db(home, "db", "url").stdout.strip()
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT clerk_user_id FROM user_profiles ORDER BY id LIMIT 1")
        clerk_user_id = str(row.fetchone()[0])  # type: ignore[index]
    out = tmp_path / "user.json"
    afilo_db(home, "export", "user", clerk_user_id, "--out", str(out))
    assert (
        json.loads(out.read_text())["tables"]["user_profiles"][0]["clerk_user_id"] == clerk_user_id
    )

    assert afilo_db(home, "erase", "user", clerk_user_id, check=False).returncode == 2
    erased = afilo_db(home, "erase", "user", clerk_user_id, "--yes")
    assert "erased the personal data" in erased.stdout
    again = afilo_db(home, "export", "user", clerk_user_id, "--out", str(out), check=False)
    assert again.returncode == 3

    afilo_db(home, "export", "tables", "--format", "jsonl", "--out", str(tmp_path / "tables"))
    assert (tmp_path / "tables" / "products.jsonl").stat().st_size > 0


def test_point_in_time_recovery(home: Path, tmp_path: Path) -> None:
    assert "WAL archiving on" in afilo_db(home, "pitr", "enable").stdout
    url = afilo_db(home, "db", "url").stdout.strip()
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TABLE pitr_marks (n int)")
        connection.execute("INSERT INTO pitr_marks VALUES (1)")
        moment = connection.execute("SELECT clock_timestamp()::text").fetchone()[0]  # type: ignore[index]
        connection.execute("INSERT INTO pitr_marks VALUES (2)")
    recovered_home = tmp_path / "recovered"
    result = afilo_db(home, "restore", "--to-time", moment, "--into-dir", str(recovered_home))
    shown = result.stdout.strip().splitlines()[-1]
    assert "***" in shown  # printed without its password, like `db url` of that home gives it
    recovered_url = afilo_db(recovered_home, "db", "url").stdout.strip()
    try:
        with psycopg.connect(recovered_url) as connection:
            assert connection.execute("SELECT n FROM pitr_marks").fetchall() == [(1,)]
    finally:
        EmbeddedServer(recovered_home).destroy()
    status = json.loads(afilo_db(home, "pitr", "status", "--json").stdout)
    assert status["enabled"] is True and len(status["base_backups"]) == 1
