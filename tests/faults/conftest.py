"""Faults injected into real runs of `afilo-db`: a server of the suite's own (so that killing it
hurts nobody else), commands run as processes, kill -9 of either side at a chosen moment."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from afilo_db.backups.manifest import TableFingerprint, table_fingerprints
from afilo_db.db import databases
from afilo_db.db.embedded import EmbeddedServer
from afilo_db.knowledge.embedders import get_embedder
from afilo_db.migrate.revisions import deploy
from tests.conftest import TEST_SERVER_SETTINGS, vectors_shared_by_the_run

TEMPLATE = "faults_template"
LARGE_TEMPLATE = "faults_large_template"
LARGE_SEED = 3000
_numbers = itertools.count()


@pytest.fixture(scope="session")
def crash_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """One per test process, shared by the faults' files: each test works on a database of its
    own, and a test that kills the server leaves it running again (fault_db)."""
    server = EmbeddedServer(tmp_path_factory.mktemp("faults") / "home")
    server.start(settings=TEST_SERVER_SETTINGS)
    databases.create_database(server.url("postgres"), TEMPLATE)
    deploy(server.url(TEMPLATE))
    yield server
    server.destroy()


def database_of_its_own(server: EmbeddedServer, template: str) -> Iterator[str]:
    """A copy of `template` on the crash server for one test (the server restarted if the test
    killed it)."""
    ensure_running(server)
    name = f"fault_{os.getpid()}_{next(_numbers)}"
    url = databases.create_database(server.url("postgres"), name, template=template)
    yield url
    ensure_running(server)
    databases.drop_database(server.url("postgres"), name)


@pytest.fixture
def fault_db(crash_server: EmbeddedServer) -> Iterator[str]:
    """A migrated database of this test's own on the crash server."""
    yield from database_of_its_own(crash_server, TEMPLATE)


@pytest.fixture(scope="session")
def large_template(crash_server: EmbeddedServer) -> str:
    """The migrated database with LARGE_SEED demo products, seeded once per test process: the
    tests that kill a backup or a restore each need a copy large enough to be caught mid-work."""
    ensure_running(crash_server)
    url = databases.create_database(crash_server.url("postgres"), LARGE_TEMPLATE, template=TEMPLATE)
    seed_some(url, LARGE_SEED)
    return LARGE_TEMPLATE


@pytest.fixture
def large_fault_db(crash_server: EmbeddedServer, large_template: str) -> Iterator[str]:
    """A copy of the large template of this test's own on the crash server."""
    yield from database_of_its_own(crash_server, large_template)


def ensure_running(server: EmbeddedServer) -> None:
    if not server.status().running:
        port = server.port
        server.start(settings=TEST_SERVER_SETTINGS)
        # The port chosen at first start survives a crash: every saved URL still works.
        assert server.port == port


@dataclass
class Command:
    process: subprocess.Popen[str]

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        _out, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, err

    def kill(self) -> None:
        """kill -9 of the command and every program it started (pg_dump, pg_restore...)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def start(env: dict[str, str], *args: str) -> Command:
    process = subprocess.Popen(
        [sys.executable, "-m", "afilo_db", *args],
        env={**os.environ, "COLUMNS": "200", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    return Command(process)


def wait_for_work(
    url: str, like: str | tuple[str, ...], command: Command, timeout: float = 60
) -> None:
    """Until another session runs a statement matching `like`, or one of its patterns (the
    command is mid-work)."""
    patterns = [like] if isinstance(like, str) else list(like)
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as connection:
        while time.monotonic() < deadline:
            row = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
                " AND state = 'active' AND query ILIKE ANY (%s)",
                (patterns,),
            ).fetchone()
            if row and row[0]:
                return
            if command.process.poll() is not None:
                raise AssertionError(f"finished before {like!r}: {command.process.stderr.read()}")  # type: ignore[union-attr]
            time.sleep(0.002)  # a short statement (one small table's COPY) lasts a few ms
    raise AssertionError(f"no session ran {like!r} within {timeout}s")


def kill_server(server: EmbeddedServer) -> None:
    pid = server.status().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while server.status().running and time.monotonic() < deadline:
        time.sleep(0.05)


def tables(url: str) -> dict[str, TableFingerprint]:
    """Row count and content checksum of every table: compared table by table."""
    with psycopg.connect(url) as connection:
        return table_fingerprints(connection)


def assert_one_line(code: int, stderr: str, allowed: set[int]) -> None:
    """The failure is one line, the last one (progress lines may come before it)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert lines and lines[-1].startswith("error: "), stderr
    assert not [line for line in lines[:-1] if "error" in line.lower()], stderr
    assert code in allowed, (code, stderr)


def seed_some(url: str, products: int) -> None:
    from afilo_db.data.seed import seed

    with vectors_shared_by_the_run(get_embedder()), psycopg.connect(url) as connection:
        seed(connection, products=products)
        connection.commit()


def write_catalog(path: Path, products: int) -> Path:
    import json

    with path.open("w") as handle:
        for index in range(products):
            handle.write(json.dumps({
                "handle": f"fault-kit-{index}", "title": f"Fault kit {index}", "status": "draft",
                "variants": [{"sku": f"FAULT-{index}", "title": "Personal",
                              "license_type": "personal", "price": "19.00"}],
            }) + "\n")  # fmt: skip
    return path
