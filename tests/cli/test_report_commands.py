"""`afilo-db report`, `afilo-db analytics` and `afilo-db db replica`, run as a user runs them."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from pathlib import Path

import pytest

from afilo_db.db.embedded import EmbeddedServer
from afilo_db.db.replica import EmbeddedReplica
from tests.analytics.conftest import Shop, shop
from tests.cli.invoke import as_a_process, in_process

__all__ = ["shop"]

FEB_MAR = ("--from", "2026-02-01", "--to", "2026-03-31")


def afilo_db(
    *args: str, environment: dict[str, str], check: bool = True, own_process: bool = False
) -> subprocess.CompletedProcess[str]:
    """The command in this process, or in `own_process` for what only a process shows (what it
    prints into a pipe of a terminal's width): tests/cli/invoke.py."""
    run = as_a_process if own_process else in_process
    result = run({"COLUMNS": "200", **environment}, *args)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def on(shop: Shop, **extra: str) -> dict[str, str]:
    return {"DATABASE_URL": shop.url, "DIRECT_URL": shop.url, **extra}


def test_report_as_json_has_numbers_the_period_and_the_source(shop: Shop) -> None:
    result = afilo_db("report", "mrr", *FEB_MAR, "--format", "json", environment=on(shop))
    document = json.loads(result.stdout)
    assert document["period"] == {"from": "2026-02-01", "to": "2026-03-31"}
    assert document["source"]["server"] == "primary"
    assert document["source"]["address"].endswith(shop.url.rsplit("/", 1)[1])
    assert [column["name"] for column in document["columns"]][:3] == ["month", "currency",
                                                                       "mrr_at_start"]  # fmt: skip
    assert document["rows"][-1] == {"month": "2026-03", "currency": "USD", "mrr_at_start": 70,
                                    "new": 100, "expansion": 20, "contraction": 20, "churn": 30,
                                    "reactivation": 0, "net_new": 70, "mrr": 140, "customers": 3,
                                    "arpu": 46.67}  # fmt: skip
    assert "answered by the primary" in result.stderr
    status = json.loads(afilo_db("report", "subscription-status", "--format", "json",
                                 environment=on(shop)).stdout)  # fmt: skip
    assert set(status["period"]) == {"as_of"}
    assert status["rows"][0] == {"tier": "starter", "status": "active", "subscriptions": 1}


@pytest.mark.parametrize(
    ("option", "value", "rule"),
    [("--conversion-window", "0", "from 1 hour"), ("--currency", "XYZ", "must be one of")],
)
def test_a_bad_report_option_is_refused_by_name(
    shop: Shop, option: str, value: str, rule: str
) -> None:
    result = afilo_db("report", "funnel", option, value, environment=on(shop), check=False)
    assert result.returncode == 2
    assert option in result.stderr and rule in result.stderr


def test_a_report_in_one_reporting_currency(shop: Shop) -> None:
    result = afilo_db("report", "revenue", *FEB_MAR, "--currency", "eur", "--format", "json",
                      environment=on(shop))  # fmt: skip
    rows = json.loads(result.stdout)["rows"]
    # Each amount converted (1 USD = 1 / 1.08 EUR) and rounded to the cent, then summed.
    assert rows[0] == {"month": "2026-02", "currency": "EUR", "one_off": 23.15,
                       "recurring": 64.82, "refunds": 0, "net": 87.97}  # fmt: skip
    assert [row["currency"] for row in rows] == ["EUR", "EUR"]


def test_a_table_off_a_terminal_never_cuts_a_figure(shop: Shop) -> None:
    narrow = on(shop, COLUMNS="40")
    table = afilo_db("report", "mrr", *FEB_MAR, environment=narrow, own_process=True).stdout
    assert "…" not in table
    assert "46.67" in table and "mrr_at_start" in table
    assert "2026-02-01 to 2026-03-31" in table


def test_report_as_csv_and_as_a_table(shop: Shop) -> None:
    result = afilo_db("report", "funnel", *FEB_MAR, "--format", "csv", environment=on(shop))
    assert list(csv.reader(io.StringIO(result.stdout))) == [
        ["month", "viewed", "carted", "purchased", "view_to_cart", "cart_to_purchase",
         "view_to_purchase"],
        ["2026-03", "4", "2", "1", "0.5000", "0.5000", "0.2500"],
    ]  # fmt: skip
    table = afilo_db("report", "revenue", *FEB_MAR, environment=on(shop)).stdout
    assert "Revenue by month" in table and "190" in table


def test_report_as_charts(shop: Shop, tmp_path: Path) -> None:
    png = tmp_path / "revenue.png"
    afilo_db("report", "revenue", *FEB_MAR, "--format", "png", "--out", str(png),
             environment=on(shop))  # fmt: skip
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    svg = afilo_db("report", "downloads", *FEB_MAR, "--format", "svg", environment=on(shop))
    assert "<svg" in svg.stdout and "Product P1" in svg.stdout


def test_an_unreachable_replica_falls_back_to_the_primary(shop: Shop) -> None:
    nowhere = "postgresql://postgres:x@127.0.0.1:1/afilo"
    result = afilo_db("report", "bot", *FEB_MAR, "--format", "json",
                      environment=on(shop, REPLICA_URL=nowhere))  # fmt: skip
    document = json.loads(result.stdout)
    assert document["source"]["server"] == "primary"
    assert "unreachable" in document["source"]["note"]
    assert "x@" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (("report", "profit"), "NAME"),
        (("report", "mrr", "--from", "March"), "--from"),
        (("report", "mrr", "--from", "2026-04-01", "--to", "2026-03-01"), "from"),
        (("analytics", "retention", "--keep-months", "-2"), "keep_months"),
    ],
)
def test_bad_input_exits_2_naming_the_field(
    shop: Shop, arguments: tuple[str, ...], named: str
) -> None:
    result = afilo_db(*arguments, environment=on(shop), check=False)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr


def test_retention_dry_run_then_for_real(shop: Shop) -> None:
    dry = json.loads(afilo_db("analytics", "retention", "--keep-months", "1200", "--dry-run",
                              "--json", environment=on(shop)).stdout)  # fmt: skip
    assert dry["dry_run"] and dry["dropped"] == []
    refreshed = afilo_db("analytics", "refresh", environment=on(shop))
    assert "day(s) aggregated" in refreshed.stdout


@pytest.mark.embedded_only("the replica is a pg_basebackup of the embedded server in AFILO_HOME")
def test_db_replica_start_status_stop(server: EmbeddedServer) -> None:
    environment = {"AFILO_HOME": str(server.home)}
    environment_without_urls = {key: value for key, value in os.environ.items()
                                if key not in ("DATABASE_URL", "DIRECT_URL", "REPLICA_URL")}  # fmt: skip
    try:
        started = afilo_db("db", "replica", "start",
                           environment={**environment_without_urls, **environment})  # fmt: skip
        assert "replica running on 127.0.0.1:" in started.stdout
        status = json.loads(afilo_db("db", "replica", "status", "--json",
                                     environment=environment).stdout)  # fmt: skip
        assert status["running"] and status["streaming"]
        assert status["port"] != server.port
        stopped = afilo_db("db", "replica", "stop", environment=environment)
        assert "stopped" in stopped.stdout
        assert "stopped" in afilo_db("db", "replica", "status", environment=environment).stdout
    finally:
        EmbeddedReplica(server).destroy()
