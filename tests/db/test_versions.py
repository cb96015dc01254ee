"""The supported floor (PostgreSQL 15, pgvector 0.8.0, btree_gist), checked when a command first
connects to a configured server: a server faked to report an older version, an extension too old
or missing, each refused in one line naming the version found and the one required (exit code 7)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from afilo_db.db.versions import (
    check_server,
    server_version_at_least,
    unsupported_reasons,
    version_key,
)
from afilo_db.errors import UnsupportedServerError
from tests.cli.test_errors import assert_one_line
from tests.cli.test_migrate_commands import run
from tests.version_proxy import server_reporting_version

SUPPORTED_EXTENSIONS: dict[str, tuple[bool, str | None]] = {
    "vector": (True, "0.8.6"),
    "btree_gist": (True, "1.7"),
}


@pytest.fixture
def server_reporting_14(database_url: str) -> Iterator[str]:
    with server_reporting_version(database_url, "14.11") as url:
        yield url


def test_the_relay_makes_the_server_report_another_version(server_reporting_14: str) -> None:
    with psycopg.connect(server_reporting_14) as connection:
        assert connection.info.server_version == 140011
        assert not server_version_at_least(connection, 15)
        assert connection.execute("SELECT 1").fetchone() == (1,)


def test_a_server_older_than_15_is_refused_by_every_command(server_reporting_14: str) -> None:
    for arguments in (["migrate", "status"], ["report", "revenue"], ["user", "show", "user_x"]):
        result = run({"DATABASE_URL": server_reporting_14}, *arguments)
        assert_one_line(result, 7, "PostgreSQL 14.11 found, 15 or newer required")


def test_postgresql_15_is_accepted(database_url: str) -> None:
    with server_reporting_version(database_url, "15.18 (Debian 15.18-0+deb12u1)") as url:
        result = run({"DATABASE_URL": url}, "migrate", "status")
    assert result.returncode == 0, result.stderr


def test_an_installed_extension_too_old_is_refused(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        # A pgvector 0.7 as far as anyone asking the catalog can tell.
        connection.execute("UPDATE pg_extension SET extversion = '0.7.4' WHERE extname = 'vector'")
    result = run({"DATABASE_URL": database_url}, "migrate", "status")
    assert_one_line(result, 7, "extension vector 0.7.4 installed, pgvector 0.8.0 or newer required")
    assert "ALTER EXTENSION vector UPDATE" in result.stderr


def test_a_fresh_database_is_judged_by_the_versions_it_would_install(
    empty_database_url: str,
) -> None:
    with psycopg.connect(empty_database_url) as connection:
        check_server(connection)  # nothing installed yet: the server's available versions pass


@pytest.mark.parametrize(
    ("server_version", "extensions", "words"),
    [
        (140011, SUPPORTED_EXTENSIONS, "PostgreSQL 14.11 found, 15 or newer required"),
        (
            180001,
            {"vector": (False, "0.4.1"), "btree_gist": (True, "1.7")},
            "extension vector 0.4.1 available, pgvector 0.8.0 or newer required",
        ),
        (
            170004,
            {"vector": (True, "0.8.0")},
            "extension btree_gist not available on the server",
        ),
    ],
)
def test_each_reason_names_the_version_found_and_the_one_required(
    server_version: int, extensions: dict[str, tuple[bool, str | None]], words: str
) -> None:
    assert any(words in reason for reason in unsupported_reasons(server_version, extensions))


@pytest.mark.parametrize("server_version", [150000, 160009, 170005, 180001, 190000])
def test_supported_servers_pass(server_version: int) -> None:
    assert unsupported_reasons(server_version, SUPPORTED_EXTENSIONS) == []


def test_versions_compare_as_numbers() -> None:
    assert version_key("0.10.0") > version_key("0.8.0")
    assert version_key("0.8.0-dev") == (0, 8, 0)


def test_the_check_raises_the_documented_error(server_reporting_14: str) -> None:
    with (
        psycopg.connect(server_reporting_14) as connection,
        pytest.raises(UnsupportedServerError) as raised,
    ):
        check_server(connection)
    assert raised.value.exit_code == 7
