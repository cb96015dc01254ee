"""`afilo-db` in scripts and pipes, and a new user finding their way: off a terminal every
command that reports a result prints one JSON document with --json; nothing is wrapped or cut;
`up` prints its phases and two users to try; `user list` finds people a page at a time; `user
show` says why a subscription grants nothing. One `up` for the module, on a database of its own;
the commands in the test's process (tests/cli/invoke.py), the ones about wrapping in their own."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from afilo_db.db.embedded import EmbeddedServer
from afilo_db.knowledge.embedders import get_embedder
from tests.cli.invoke import as_a_process, in_process
from tests.conftest import create_database, drop_database, vectors_shared_by_the_run

_numbers = itertools.count()


@dataclass
class Shop:
    url: str
    home: Path
    up: subprocess.CompletedProcess[str]

    def run(self, *args: str, own_process: bool = False) -> subprocess.CompletedProcess[str]:
        """The command as a script runs it: stdout and stderr are pipes, not a terminal; no
        COLUMNS to hint a width. In this process, or in `own_process` (tests/cli/invoke.py)."""
        environment = {"COLUMNS": None, "LINES": None, "DATABASE_URL": self.url,
                       "AFILO_HOME": str(self.home)}  # fmt: skip
        run = as_a_process if own_process else in_process
        return run(environment, *args, cwd=self.home)

    def json(self, *args: str, own_process: bool = False) -> Any:
        result = self.run(*args, own_process=own_process)
        assert result.returncode == 0, (args, result.stderr)
        return json.loads(result.stdout)


@pytest.fixture(scope="module")
def shop(
    server: EmbeddedServer, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shop]:
    name = f"scripts_{os.getpid()}_{next(_numbers)}"
    url = create_database(server, name, template=template_database)
    home = tmp_path_factory.mktemp("scripts")
    shop = Shop(url, home, subprocess.CompletedProcess([], 0))
    with vectors_shared_by_the_run(get_embedder()):  # `up` embeds the demo data's texts
        shop.up = shop.run("up", "--json")
    yield shop
    drop_database(server, name)


def _clerk_ids(shop: Shop) -> list[str]:
    with psycopg.connect(shop.url) as connection:
        rows = connection.execute("SELECT clerk_user_id FROM user_profiles ORDER BY created_at, id")
        return [str(row[0]) for row in rows]


def test_up_prints_its_phases_and_two_users_to_try(shop: Shop) -> None:
    assert shop.up.returncode == 0, shop.up.stderr
    document = json.loads(shop.up.stdout)
    assert document["seeded"] is True and document["counts"]["products"] == 24
    assert [user["clerk_user_id"] for user in document["users_to_try"]] == _clerk_ids(shop)[:2]
    phases = shop.up.stderr
    for phase in (
        "starting the database server",
        "migrating: 0 pending revision(s)",
        "seeding the demo catalog",
        "delivering the demo shop's webhooks",
        "embedding the catalog's passages",
    ):
        assert phase in phases, phases

    again = shop.run("up")
    assert again.returncode == 0, again.stderr
    for user in document["users_to_try"]:
        assert f"try: afilo-db user show {user['clerk_user_id']} ({user['email']})" in again.stdout


def test_every_reporting_command_prints_json_off_a_terminal(shop: Shop) -> None:
    first, second = _clerk_ids(shop)[:2]
    out = shop.home / "out"
    out.mkdir(exist_ok=True)  # export refuses a folder that does not exist
    backups = str(shop.home / "backups")
    assert shop.json("migrate", "deploy", "--json") == {"applied": []}
    assert shop.json("up", "--json")["seeded"] is False
    assert shop.json("user", "show", first, "--json")["profile"]["clerk_user_id"] == first
    assert shop.json("user", "list", "--json")["users"][0]["clerk_user_id"] == first
    exported = shop.json("export", "user", first, "--out", str(out / "user.json"), "--json")
    assert exported["rows"]["user_profiles"] == 1 and (out / "user.json").is_file()
    tables = shop.json("export", "tables", "--format", "jsonl", "--out", str(out), "--json")
    assert tables["rows"]["products"] == 24
    created = shop.json("backup", "create", "--dir", backups, "--json")
    assert Path(created["path"]).is_dir()
    verified = shop.json("backup", "verify", created["id"], "--dir", backups, "--json")
    assert verified["verification"]["ok"] is True
    assert shop.json("backup", "list", "--dir", backups, "--json")[0]["id"] == created["id"]
    pruned = shop.json(
        "backup", "prune", "--keep-last", "1", "--dry-run", "--dir", backups, "--json"
    )
    assert pruned == {"dry_run": True, "removed": []}
    copy = f"scripts_copy_{os.getpid()}"
    try:
        restored = shop.json("restore", created["id"], "--into", copy, "--dir", backups, "--json")
        assert restored["database"] == copy
    finally:
        with psycopg.connect(shop.url, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {copy}")
    assert shop.json("kb", "search", "licence", "--mode", "fulltext", "--json")
    assert shop.json("erase", "user", second, "--yes", "--json")["rows"]["user_profiles"] == 1


def test_tables_and_errors_are_not_wrapped_or_cut_off_a_terminal(shop: Shop) -> None:
    # Processes of their own: whether output is a terminal is decided as a process starts.
    listed = shop.run("user", "list", own_process=True)
    assert listed.returncode == 0, listed.stderr
    users = shop.json("user", "list", "--json")["users"]
    for user in users:
        line = next(line for line in listed.stdout.splitlines() if user["clerk_user_id"] in line)
        assert user["email"] in line and "…" not in line
    long_name = "x" * 150
    missing = shop.run("user", "show", f"user_{long_name}", own_process=True)
    assert missing.returncode == 3
    assert missing.stderr.count("\n") == 1 and long_name in missing.stderr


def test_user_list_pages_and_finds_by_email(shop: Shop) -> None:
    everyone = _clerk_ids(shop)
    seen: list[str] = []
    arguments = ["user", "list", "--limit", "3", "--json"]
    page = shop.json(*arguments)
    while True:
        seen += [user["clerk_user_id"] for user in page["users"]]
        if page["next"] is None:
            break
        page = shop.json(*arguments, "--after", page["next"])
    assert seen == everyone

    email = shop.json("user", "list", "--json")["users"][0]["email"]
    found = shop.json("user", "list", "--email", email.split("@")[0].upper(), "--json")
    assert email in [user["email"] for user in found["users"]]
    assert shop.json("user", "list", "--email", "100%_not_a_pattern", "--json")["users"] == []

    bad = shop.run("user", "list", "--after", "not-a-cursor")
    assert bad.returncode == 2 and "after" in bad.stderr


def test_user_show_says_why_a_subscription_grants_nothing(shop: Shop) -> None:
    with psycopg.connect(shop.url) as connection:
        clerk_user_id, stripe_id = connection.execute(
            """UPDATE user_subscriptions s SET status = 'active',
                 current_period_start = '2026-01-05', current_period_end = '2026-02-05'
               FROM user_profiles u
               WHERE u.id = s.user_id AND s.is_current
                 AND s.id = (SELECT id FROM user_subscriptions WHERE is_current ORDER BY id LIMIT 1)
               RETURNING u.clerk_user_id, s.stripe_subscription_id"""
        ).fetchone()  # type: ignore[misc]
    shown = shop.run("user", "show", clerk_user_id)
    assert f"subscription {stripe_id} grants nothing: period ended 2026-02-05" in shown.stdout
    document = shop.json("user", "show", clerk_user_id, "--json")
    assert {"stripe_subscription_id": stripe_id, "why": "period ended 2026-02-05"} in document[
        "subscriptions_granting_nothing"
    ]
