"""`afilo-db` as a user runs it: a fresh AFILO_HOME, the embedded server, `up` twice, psql."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from afilo_db.db.embedded import EmbeddedServer
from afilo_db.db.programs import pg_binary
from tests.db.test_schema import EXPECTED_INDEXES, EXPECTED_TABLES


def afilo_db(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    environment.update({"AFILO_HOME": str(home), "COLUMNS": "200"})
    result = subprocess.run(
        [sys.executable, "-m", "afilo_db", *args],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("user-home") / "afilo"
    yield path
    EmbeddedServer(path).destroy()


def test_up_on_an_empty_home_then_again(home: Path) -> None:
    first = afilo_db(home, "up")
    assert "migrations applied: 0001_baseline" in first.stdout
    assert "demo data: seeded" in first.stdout
    assert "│ products " in first.stdout

    second = afilo_db(home, "up")
    assert "migrations: already at head" in second.stdout
    assert "demo data: present, left unchanged" in second.stdout
    # Same counts, table by table.
    assert first.stdout.split("rows per table")[1] == second.stdout.split("rows per table")[1]


def test_url_works_with_psql(home: Path) -> None:
    url = afilo_db(home, "db", "url").stdout.strip()
    assert url.startswith("postgresql://postgres:") and "@127.0.0.1:" in url
    listing = subprocess.run(
        [str(pg_binary("psql")), url, "-At", "-c",
         "SELECT tablename::text FROM pg_tables WHERE schemaname='public'"
         " UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname='public'"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert set(listing.splitlines()) >= EXPECTED_TABLES
    for _table, definition in EXPECTED_INDEXES:
        assert definition in listing


def test_server_listens_on_loopback_only(home: Path) -> None:
    url = afilo_db(home, "db", "url").stdout.strip()
    shown = subprocess.run(
        [str(pg_binary("psql")), url, "-At", "-c", "SHOW listen_addresses"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert shown == "127.0.0.1"


def test_stop_status_start_keeps_the_data(home: Path) -> None:
    assert afilo_db(home, "db", "stop").stdout.strip() == "stopped"
    status = json.loads(afilo_db(home, "db", "status", "--json").stdout)
    assert status["initialized"] is True and status["running"] is False
    assert "running on 127.0.0.1" in afilo_db(home, "db", "start").stdout
    status = json.loads(afilo_db(home, "db", "status", "--json").stdout)
    assert status["running"] is True
    assert "demo data: present, left unchanged" in afilo_db(home, "up").stdout


def test_seed_refuses_a_database_with_data(home: Path) -> None:
    result = afilo_db(home, "db", "seed", "--scale", "10", check=False)
    assert result.returncode == 4
    assert "already has data" in result.stderr and "--reset" in result.stderr


def test_seed_with_reset(home: Path) -> None:
    result = afilo_db(home, "db", "seed", "--scale", "40", "--reset")
    assert "seeded 40 products" in result.stdout


def test_server_commands_refuse_when_database_url_is_set(home: Path) -> None:
    environment = {**os.environ, "AFILO_HOME": str(home), "DATABASE_URL": "postgresql://x@h/db"}
    result = subprocess.run(
        [sys.executable, "-m", "afilo_db", "db", "stop"],
        env=environment, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "DATABASE_URL is set" in result.stderr


def psql(url: str, query: str) -> str:
    return subprocess.run(
        [str(pg_binary("psql")), url, "-At", "-c", query],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def test_up_sets_up_the_application_role(home: Path) -> None:
    assert "afilo-db db url --app" in afilo_db(home, "up").stdout
    app_url = afilo_db(home, "db", "url", "--app").stdout.strip()
    assert app_url.startswith("postgresql://afilo_app:") and "@127.0.0.1:" in app_url
    assert app_url != afilo_db(home, "db", "url").stdout.strip()
    # The application role is held to row-level security: no user set, no rows.
    assert psql(app_url, "SELECT current_user, count(*) FROM cart_items") == "afilo_app|0"
    owner_url = afilo_db(home, "db", "url").stdout.strip()
    assert int(psql(owner_url, "SELECT count(*) FROM cart_items")) > 0
    # Its password is kept with the server's state, not printed anywhere else.
    state = json.loads((home / "server.json").read_text())
    assert state["role_passwords"]["afilo_app"] in app_url


def test_roles_prints_sql_that_runs_again_safely(home: Path) -> None:
    app_url = afilo_db(home, "db", "url", "--app").stdout.strip()
    result = afilo_db(home, "db", "roles")
    assert "CREATE ROLE afilo_app LOGIN" in result.stdout
    assert "SCRAM-SHA-256$" in result.stdout
    state = json.loads((home / "server.json").read_text())
    assert state["role_passwords"]["afilo_app"] not in result.stdout + result.stderr
    owner_url = afilo_db(home, "db", "url").stdout.strip()
    run = subprocess.run(
        [str(pg_binary("psql")), owner_url, "-v", "ON_ERROR_STOP=1", "-q"],
        input=result.stdout, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    # The verifier in the SQL is of the embedded server's kept password: the URL still works.
    assert psql(app_url, "SELECT current_user") == "afilo_app"


def test_the_application_engine_connects_as_the_application_role(home: Path) -> None:
    afilo_db(home, "up")
    environment = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    environment["AFILO_HOME"] = str(home)
    probe = (
        "from sqlalchemy import text\n"
        "from afilo_db.db.engine import get_engine\n"
        "with get_engine().connect() as c:\n"
        "    print(c.execute(text('SELECT current_user')).scalar_one())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], env=environment, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "afilo_app"
