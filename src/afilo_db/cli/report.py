"""`afilo-db report NAME`: a report as a table in the terminal, CSV, JSON, or a chart (PNG, SVG)."""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from afilo_db.cli.common import console, errors, reported_errors
from afilo_db.errors import ValidationError

# Kept in step with afilo_db.analytics.reports.REPORTS (a test checks): listing them here keeps
# `--help` free of the analytics imports.
REPORT_NAMES = (
    "revenue", "mrr", "revenue-retention", "churn", "retention", "subscriptions", "trials",
    "downloads", "funnel", "bot", "subscription-status",
)  # fmt: skip
DEFAULT_CONVERSION_WINDOW_HOURS = 24
# Off a terminal, a table is as wide as it needs: rich shrinks nothing below this.
UNLIMITED_WIDTH = 10_000


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    png = "png"
    svg = "svg"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:,}" if value == value.to_integral_value() else f"{value:,.4f}".rstrip("0")
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _json_value(value: Any) -> Any:
    # Every figure is a JSON number (docs/analytics-definitions.md: money has at most 2
    # decimals, rates 4, so a double renders each exactly as the database computed it).
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _parse_day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError({option: "must be a date, like 2026-01-31"}) from None


def report_command(
    name: Annotated[str, typer.Argument(help="One of: " + ", ".join(REPORT_NAMES) + ".")],
    date_from: Annotated[
        str | None,
        typer.Option(
            "--from", help="First day (YYYY-MM-DD, UTC). Default: 11 months ago, the 1st."
        ),
    ] = None,
    date_to: Annotated[
        str | None, typer.Option("--to", help="Last day, included. Default: today.")
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="table, csv, json, or a chart: png, svg.")
    ] = OutputFormat.table,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file instead of stdout.")
    ] = None,
    refresh: Annotated[
        bool,
        typer.Option(
            help="Refresh the pre-aggregates on the primary first (cheap: new days only)."
        ),
    ] = True,
    conversion_window: Annotated[
        int,
        typer.Option(
            "--conversion-window",
            help="The funnel's conversion window, in hours: how long after a visitor's first "
            "product view the cart and the purchase may come (1 to 2160).",
        ),
    ] = DEFAULT_CONVERSION_WINDOW_HOURS,
    currency: Annotated[
        str | None,
        typer.Option(
            "--currency",
            help="Convert every amount to this currency (USD, EUR, ...) at the fixed rates of "
            "docs/analytics-definitions.md. Default: each currency on its own.",
        ),
    ] = None,
) -> None:
    """Run a report: revenue by month, MRR and its movements, revenue churn and retention,
    customer churn, retention by cohort, subscription movements by tier, trial conversion,
    downloads per product, the view-cart-purchase funnel, the chat bot's resolution, latency and
    satisfaction, subscriptions by tier and status. docs/analytics-definitions.md defines each
    one and the JSON it prints. Exit codes: 0 done, 2 bad input (named), 1 otherwise.

    It reads from the read replica (REPLICA_URL, or the embedded one started by `afilo-db db
    replica start`) when it is healthy and no further behind than REPLICA_MAX_LAG_SECONDS, from
    the primary otherwise; stderr says which server answered and how stale it may be."""
    from afilo_db.analytics.reports import DateRange, ReportOptions
    from afilo_db.analytics.sources import run_reports
    from afilo_db.config import get_settings
    from afilo_db.db.replica import replica_url_for
    from afilo_db.db.target import resolve_target

    with reported_errors():
        if name not in REPORT_NAMES:
            raise ValidationError({"NAME": "must be one of " + ", ".join(REPORT_NAMES)})
        if output_format is OutputFormat.png and out is None and sys.stdout.isatty():
            raise ValidationError({"--out": "a PNG goes to a file (or a pipe), not the terminal"})
        start, end = _parse_day(date_from, "--from"), _parse_day(date_to, "--to")
        # A missing end is today (or the start, if later); a missing start, twelve months back.
        end = end or max(DateRange.default().end, start or DateRange.default().end)
        date_range = DateRange(start or DateRange.default(end).start, end)
        try:
            options = ReportOptions(
                timedelta(hours=conversion_window), currency.upper() if currency else None
            )
        except ValidationError as error:
            options_named = {"conversion_window": "--conversion-window", "currency": "--currency"}
            raise ValidationError(
                {options_named[field]: rule for field, rule in error.problems.items()}
            ) from None
        settings = get_settings()
        primary = resolve_target(settings).direct_url
        run = run_reports(
            [name],
            date_range,
            primary_url=primary,
            replica_url=replica_url_for(primary, settings),
            max_lag_seconds=settings.replica_max_lag_seconds,
            refresh=refresh,
            options=options,
        )
        table = run.tables[0]
        errors.print(run.answer.describe(), highlight=False)
        if output_format in (OutputFormat.png, OutputFormat.svg):
            from afilo_db.analytics.charts import render

            _write(render(table, "png" if output_format is OutputFormat.png else "svg"), out)
            return
        names = [column.name for column in table.columns]
        if output_format is OutputFormat.json:
            document = {
                "report": table.name,
                "title": table.title,
                "period": {"from": date_range.start.isoformat(), "to": date_range.end.isoformat()}
                if table.date_range
                else {"as_of": datetime.now(UTC).isoformat(timespec="seconds")},
                "source": {
                    "server": run.answer.server,
                    "address": run.answer.address,
                    "lag_seconds": round(run.answer.lag_seconds, 3),
                    "note": run.answer.note or None,
                    "rollups_refreshed_at": _iso(run.answer.rollups_refreshed_at),
                },
                "columns": [{"name": column.name, "kind": column.kind} for column in table.columns],
                "rows": [
                    {key: _json_value(value) for key, value in zip(names, row, strict=True)}
                    for row in table.rows
                ],
            }
            _write((json.dumps(document, indent=2) + "\n").encode(), out)
        elif output_format is OutputFormat.csv:
            text = io.StringIO()
            writer = csv.writer(text)
            writer.writerow(names)
            writer.writerows([["" if v is None else v for v in row] for row in table.rows])
            _write(text.getvalue().encode(), out)
        else:
            rich_table = Table(title=table.heading)
            for column in table.columns:
                rich_table.add_column(
                    column.name, justify="left" if column.kind == "text" else "right"
                )
            for row in table.rows:
                rich_table.add_row(*(_cell(value) for value in row))
            if out is None and console.is_terminal:
                console.print(rich_table)
                return
            # Off a terminal nothing is cut to fit a width: the table is as wide as its figures.
            capture = io.StringIO()
            Console(file=capture, width=UNLIMITED_WIDTH).print(rich_table)
            lines = [line.rstrip() for line in capture.getvalue().splitlines()]
            if out is None:
                sys.stdout.write("\n".join(lines) + "\n")
            else:
                out.write_text("\n".join(lines) + "\n")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _write(data: bytes, out: Path | None) -> None:
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        out.write_bytes(data)
        errors.print(f"written to {out}", highlight=False)
