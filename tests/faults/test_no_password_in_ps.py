"""`ps` never shows a password: the process table is sampled while `migrate test` (copying by
pg_dump | pg_restore), `backup create`, `backup verify` and `restore` run."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from afilo_db.backups.manifest import list_backups
from afilo_db.db.embedded import EmbeddedServer
from tests.cli.test_migrate_commands import write_revision
from tests.faults.conftest import seed_some, start

pytestmark = pytest.mark.embedded_only("runs on the faults' embedded server of its own")


class ProcessTableSampler:
    """Reads every process's command line (what `ps` shows to any user) every few milliseconds."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = [secret for secret in secrets if secret]
        self.leaks: list[str] = []
        self.samples = 0
        self.programs: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    command_line = (
                        (entry / "cmdline")
                        .read_bytes()
                        .replace(b"\0", b" ")
                        .decode(errors="replace")
                    )
                except OSError:
                    continue
                if command_line:
                    self.programs.add(Path(command_line.split(" ")[0]).name)
                if any(secret in command_line for secret in self.secrets):
                    self.leaks.append(command_line)
            self.samples += 1
            self._stop.wait(0.005)

    def __enter__(self) -> ProcessTableSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_no_password_on_any_command_line(
    crash_server: EmbeddedServer, fault_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_some(fault_db, 300)
    versions = tmp_path / "versions"
    write_revision(
        versions,
        "0099_note",
        "ALTER TABLE products ADD COLUMN note text",
        "ALTER TABLE products DROP COLUMN note",
    )
    backups = tmp_path / "backups"
    env = {"DATABASE_URL": fault_db, "AFILO_MIGRATIONS_DIR": str(versions)}
    with ProcessTableSampler([crash_server.password]) as sampler:
        # Another session on the database: `migrate test` must copy by pg_dump | pg_restore.
        with psycopg.connect(fault_db):
            tested = start(env, "migrate", "test").finish()
        assert tested[0] in (0, 1), tested
        assert start(env, "backup", "create", "--dir", str(backups)).finish()[0] == 0
        backup_id = list_backups(backups)[0].id
        verified = start(env, "backup", "verify", backup_id, "--dir", str(backups)).finish()
        assert verified[0] == 0, verified
        restored = start(
            env, "restore", backup_id, "--into", "ps_restored", "--dir", str(backups)
        ).finish()
        assert restored[0] == 0, restored
    assert {"pg_dump", "pg_restore"} <= sampler.programs, sampler.programs
    assert sampler.samples > 50
    assert sampler.leaks == []
    with psycopg.connect(crash_server.url("postgres"), autocommit=True) as connection:
        connection.execute("DROP DATABASE IF EXISTS ps_restored WITH (FORCE)")
