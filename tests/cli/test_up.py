"""`afilo-db` as a user runs it: a fresh AFILO_HOME, the embedded server, `up` twice, psql. The
commands run in the test's process (tests/cli/invoke.py); the second `up`, the webhook server and
the application's engine in processes of their own."""

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
from afilo_db.knowledge.embedders import get_embedder
from tests.cli.invoke import as_a_process, in_process
from tests.conftest import vectors_shared_by_the_run
from tests.db.test_schema import EXPECTED_INDEXES, EXPECTED_TABLES

pytestmark = pytest.mark.embedded_only("`up` starts the embedded server in a fresh home")


def afilo_db(
    home: Path, *args: str, check: bool = True, own_process: bool = False
) -> subprocess.CompletedProcess[str]:
    """The command on `home` in this process, or in `own_process` (tests/cli/invoke.py)."""
    run = as_a_process if own_process else in_process
    result = run({"DATABASE_URL": None, "AFILO_HOME": str(home), "COLUMNS": "200"}, *args)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def first_up(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    """A fresh home after its first `up`, and what that printed: every test of the module reads
    the home `up` made, whichever of them runs (`-k`) and in whatever order."""
    path = tmp_path_factory.mktemp("user-home") / "afilo"
    with vectors_shared_by_the_run(get_embedder()):  # `up` embeds the demo data's texts
        first = afilo_db(path, "up")
    yield path, first
    EmbeddedServer(path).destroy()


@pytest.fixture(scope="module")
def home(first_up: tuple[Path, subprocess.CompletedProcess[str]]) -> Path:
    return first_up[0]


def test_up_on_an_empty_home_then_again(
    first_up: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    home, first = first_up
    assert "migrations applied: 0001_baseline" in first.stdout
    assert "demo data: seeded" in first.stdout
    assert "│ products " in first.stdout

    # Once as a process of its own, as a user starts it: the console script end to end.
    second = afilo_db(home, "up", own_process=True)
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
    environment = {"AFILO_HOME": str(home), "DATABASE_URL": "postgresql://x@h/db"}
    result = in_process(environment, "db", "stop")
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


def test_up_sets_up_the_service_login(home: Path) -> None:
    service_url = afilo_db(home, "db", "url", "--service").stdout.strip()
    assert service_url.startswith("postgresql://afilo_service:") and "@127.0.0.1:" in service_url
    # Its own login, held to the service policies: every user's rows, no user context needed.
    assert (
        psql(service_url, "SELECT current_user, count(*) > 0 FROM cart_items") == "afilo_service|t"
    )
    state = json.loads((home / "server.json").read_text())
    assert state["role_passwords"]["afilo_service"] in service_url
    # The application role cannot become it.
    app_url = afilo_db(home, "db", "url", "--app").stdout.strip()
    refused = subprocess.run(
        [str(pg_binary("psql")), app_url, "-v", "ON_ERROR_STOP=1", "-c", "SET ROLE afilo_service"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "permission denied" in refused.stderr
    both = afilo_db(home, "db", "url", "--app", "--service", check=False)
    assert both.returncode == 2 and "--service" in both.stderr


def test_user_show(home: Path) -> None:
    owner_url = afilo_db(home, "db", "url").stdout.strip()
    clerk_user_id = psql(owner_url, "SELECT u.clerk_user_id FROM user_profiles u"
                                    " JOIN purchases p ON p.user_id = u.id"
                                    " WHERE p.status = 'paid' ORDER BY 1 LIMIT 1")  # fmt: skip
    document = json.loads(afilo_db(home, "user", "show", clerk_user_id, "--json").stdout)
    assert document["profile"]["clerk_user_id"] == clerk_user_id
    assert set(document) == {
        "profile",
        "subscriptions",
        "purchases",
        "entitlements",
        "subscriptions_granting_nothing",
    }
    expected = psql(owner_url, "SELECT count(*) FROM products p, user_profiles u,"
                               " download_entitlements(u.id, p.id)"
                               f" WHERE u.clerk_user_id = '{clerk_user_id}'")  # fmt: skip
    assert len(document["entitlements"]) == int(expected) > 0
    assert all(item["reason"] for item in document["entitlements"])
    printed = afilo_db(home, "user", "show", clerk_user_id).stdout
    assert "subscription history" in printed and "may download now" in printed
    missing = afilo_db(home, "user", "show", "user_nobody00001", check=False)
    assert missing.returncode == 3


def test_webhooks_serve_needs_a_secret_and_serves_on_loopback(home: Path) -> None:
    refused = afilo_db(home, "webhooks", "serve", check=False)
    assert refused.returncode == 2 and "STRIPE_WEBHOOK_SECRET" in refused.stderr

    import socket
    import time

    from tests.billing.providers import CLERK_SECRET, clerk_delivery, clerk_user

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    environment.update({"AFILO_HOME": str(home), "CLERK_WEBHOOK_SECRET": CLERK_SECRET})
    served = subprocess.Popen(
        # One process: the several-process path has its own test (tests/billing/test_concurrency).
        [sys.executable, "-m", "afilo_db", "webhooks", "serve", "--port", str(port), "--workers", "1"],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        import httpx2

        now_ms = int(time.time() * 1000)
        delivery = clerk_delivery("msg_cliserve0001", "user.created", now_ms,
                                  clerk_user("user_cliserve001", "serve@example.com", now_ms))  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx2.post(f"http://127.0.0.1:{port}{delivery.path}",
                                       content=delivery.body, headers=delivery.headers)  # fmt: skip
                break
            except httpx2.ConnectError:
                assert served.poll() is None, served.communicate()
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert response.status_code == 200 and response.json()["status"] == "applied"
        stripe = httpx2.post(f"http://127.0.0.1:{port}/webhooks/stripe", content=b"{}")
        assert stripe.status_code == 503
    finally:
        served.terminate()
        _, logged = served.communicate(timeout=30)
    # One line per delivery, without its body.
    assert "clerk msg_cliserve0001 user.created: 200 applied in " in logged, logged
    assert "stripe delivery refused: 503 no signing secret configured" in logged, logged
    assert "serve@example.com" not in logged
    owner_url = afilo_db(home, "db", "url").stdout.strip()
    assert psql(owner_url, "SELECT email FROM user_profiles"
                           " WHERE clerk_user_id = 'user_cliserve001'") == "serve@example.com"  # fmt: skip
