"""`afilo-db inspect`, run as a user runs it: verdicts and their exit codes, JSON for scripts,
the hint when pg_stat_statements is missing, a replica asked for where none is configured."""

from __future__ import annotations

import json
from urllib.parse import quote

import psycopg
import pytest

from afilo_db.db.embedded import APPLICATION_ROLE, EmbeddedServer
from afilo_db.db.urls import database_name
from tests.cli.test_report_commands import afilo_db


@pytest.fixture
def environment(database_url: str, server: EmbeddedServer, app_password: str) -> dict[str, str]:
    """As deployed: the application's login in DATABASE_URL, the owner's in DIRECT_URL."""
    app_url = (
        f"postgresql://{APPLICATION_ROLE}:{quote(app_password, safe='')}"
        f"@127.0.0.1:{server.port}/{database_name(database_url)}"
    )
    return {"DATABASE_URL": app_url, "DIRECT_URL": database_url, "REPLICA_URL": ""}


def test_check_exits_0_when_healthy_and_1_on_a_bad_verdict(
    environment: dict[str, str], database_url: str
) -> None:
    healthy = afilo_db("inspect", "check", "--json", environment=environment, check=False)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    document = json.loads(healthy.stdout)
    assert document["ok"] is True
    checks = {finding["check"] for finding in document["findings"]}
    assert {"bloat", "blocking", "long-transaction", "unused-index", "replica-lag",
            "declared-index", "row-security", "roles"} <= checks  # fmt: skip

    with psycopg.connect(database_url, autocommit=True) as owner:
        owner.execute("ALTER TABLE products NO FORCE ROW LEVEL SECURITY")
        broken = afilo_db("inspect", "check", environment=environment, check=False)
        assert broken.returncode == 1
        assert "row-security" in broken.stdout and "products" in broken.stdout
        owner.execute("ALTER TABLE products FORCE ROW LEVEL SECURITY")


def test_a_query_as_json_and_the_hint_without_pg_stat_statements(
    environment: dict[str, str],
) -> None:
    sizes = json.loads(afilo_db("inspect", "table-sizes", "--json", environment=environment).stdout)
    assert sizes["query"] == "table-sizes" and sizes["server"] == "primary"
    assert "public.products" in {row["table"] for row in sizes["rows"]}

    outliers = afilo_db("inspect", "outliers", "--json", environment=environment)
    assert json.loads(outliers.stdout)["rows"] == []
    assert "CREATE EXTENSION pg_stat_statements" in outliers.stderr


def test_asking_a_replica_where_none_is_configured(environment: dict[str, str]) -> None:
    result = afilo_db("inspect", "bloat", "--replica", environment=environment, check=False)
    assert result.returncode == 2
    assert "--replica" in result.stderr and "REPLICA_URL" in result.stderr
