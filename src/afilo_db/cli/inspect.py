"""`afilo-db inspect`: the database's health from PostgreSQL's statistics (docs/inspect.md)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from afilo_db.cli.common import JsonOption, console, errors, reported_errors
from afilo_db.config import get_settings
from afilo_db.errors import ValidationError
from afilo_db.inspect.queries import (
    QUERIES,
    Query,
    StatementStatisticsMissingError,
    inspecting,
    json_value,
)

inspect_app = typer.Typer(
    no_args_is_help=True,
    help="Database health from PostgreSQL's statistics, one read-only query a command, through "
    "the direct URL; `check` gives verdicts and exits 1 when one is bad.",
)

ReplicaOption = Annotated[
    bool,
    typer.Option(
        "--replica",
        help="Ask the read replica (REPLICA_URL, or the embedded one when it runs) instead of "
        "the primary.",
    ),
]
STATUS_STYLE = {"ok": "green", "bad": "bold red", "unknown": "yellow"}


def _direct_url() -> str:
    from afilo_db.db.target import resolve_target

    return resolve_target(get_settings()).direct_url


def _replica_url(primary_url: str) -> str | None:
    from afilo_db.db.replica import replica_url_for

    return replica_url_for(primary_url, get_settings())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(json_value(value))


def _print_json(document: dict[str, Any]) -> None:
    # Plain print, as every other command prints its --json: no console in between.
    print(json.dumps(document, default=json_value, indent=2))


def show_query(query: Query, *, as_json: bool, on_replica: bool) -> None:
    with reported_errors():
        primary = _direct_url()
        url = primary
        if on_replica:
            if not query.on_replica:
                raise ValidationError({"--replica": f"`{query.name}` describes the primary only"})
            replica = _replica_url(primary)
            if replica is None:
                raise ValidationError(
                    {"--replica": "no replica: set REPLICA_URL or run `afilo-db db replica start`"}
                )
            url = replica
        server = "replica" if on_replica else "primary"
        with inspecting(url, get_settings().afilo_inspect_statement_timeout_ms) as inspector:
            try:
                result = inspector.run(query)
            except StatementStatisticsMissingError as missing:
                # Not a failure: the server just does not collect them yet; say how to.
                errors.print(f"[yellow]note:[/] {escape(str(missing))}", highlight=False)
                if as_json:
                    _print_json(
                        {"query": query.name, "server": server, "rows": [], "note": str(missing)}
                    )
                return
        if as_json:
            _print_json({"query": query.name, "server": server, "rows": result.records()})
            return
        table = Table(title=f"{query.name} ({server})")
        for column in result.columns:
            table.add_column(column)
        for row in result.rows:
            table.add_row(*(escape(_cell(value)) for value in row))
        console.print(table)


def _query_command(query: Query) -> Callable[..., None]:
    def command(as_json: JsonOption = False, replica: ReplicaOption = False) -> None:
        show_query(query, as_json=as_json, on_replica=replica)

    command.__doc__ = query.summary
    return command


for _query in QUERIES:
    inspect_app.command(_query.name)(_query_command(_query))


@inspect_app.command("check")
def check_command(as_json: JsonOption = False) -> None:
    """Verdicts against the documented thresholds (AFILO_INSPECT_* settings,
    REPLICA_MAX_LAG_SECONDS): cache hit, unused indexes, bloat, long transactions, blocked
    sessions, replica lag, and the schema's promises (declared indexes present, valid and used;
    row-level security enabled and forced; no BYPASSRLS on the application's logins).

    Exit 0: no verdict is bad; 1: at least one is bad (for cron and CI); 6: the database is
    unreachable."""
    from afilo_db.db.urls import make_url
    from afilo_db.inspect.promises import promise_checks
    from afilo_db.inspect.verdicts import Thresholds, any_bad, run_checks

    with reported_errors():
        from afilo_db.db.target import resolve_target

        settings = get_settings()
        target = resolve_target(settings)
        thresholds = Thresholds.from_settings(settings)
        application_login = make_url(target.app_url).username
        with inspecting(
            target.direct_url, settings.afilo_inspect_statement_timeout_ms
        ) as inspector:
            findings = run_checks(
                inspector,
                thresholds,
                replica_url=_replica_url(target.direct_url),
                extra=promise_checks(application_login),
            )
        bad = any_bad(findings)
        if as_json:
            _print_json({"ok": not bad, "findings": [finding.as_json() for finding in findings]})
        else:
            table = Table(title="afilo-db inspect check")
            for column in ("status", "check", "subject", "detail"):
                table.add_column(column)
            for finding in findings:
                style = STATUS_STYLE[finding.status]
                table.add_row(
                    f"[{style}]{finding.status}[/]",
                    finding.check,
                    escape(finding.subject),
                    escape(finding.detail),
                )
            console.print(table)
    if bad:
        raise typer.Exit(1)


@inspect_app.command("suggest")
def suggest_command(as_json: JsonOption = False) -> None:
    """Suggested indexes for the slowest statements in pg_stat_statements: where the generic
    plan (EXPLAIN GENERIC_PLAN, PostgreSQL 16+) is dominated by a sequential scan with a filter
    on a table of at least AFILO_INSPECT_MIN_TABLE_ROWS rows, the index on the filter's
    columns, with the model declaration and the `migrate new` command that add it
    CONCURRENTLY. Nothing is changed.

    Exit 0 (with or without suggestions; without pg_stat_statements, a note says how to enable
    it); 6: the database is unreachable."""
    from afilo_db.inspect.suggestions import suggest_indexes

    with reported_errors():
        settings = get_settings()
        with inspecting(_direct_url(), settings.afilo_inspect_statement_timeout_ms) as inspector:
            try:
                suggestions, skipped = suggest_indexes(
                    inspector, min_rows=settings.afilo_inspect_min_table_rows
                )
            except StatementStatisticsMissingError as missing:
                errors.print(f"[yellow]note:[/] {escape(str(missing))}", highlight=False)
                if as_json:
                    _print_json({"suggestions": [], "skipped": [], "note": str(missing)})
                return
        if as_json:
            _print_json(
                {
                    "suggestions": [suggestion.as_json() for suggestion in suggestions],
                    "skipped": [
                        {"statement": item.statement, "reason": item.reason} for item in skipped
                    ],
                }
            )
            return
        if not suggestions:
            console.print("no index to suggest: no slow statement is dominated by a scan")
        for suggestion in suggestions:
            where = suggestion.model or f"the model of {suggestion.table}"
            console.print(
                f"[bold]{escape(suggestion.index_name)}[/]: {escape(suggestion.reason)}\n"
                f"  statement ({suggestion.calls:,} calls, {suggestion.mean_ms:,.2f} ms on "
                f"average): {escape(suggestion.statement)}\n"
                f"  1. declare {escape(suggestion.declaration)} in {escape(where)}'s "
                "__table_args__\n"
                f"  2. {escape(suggestion.migrate_command)}  (writes "
                f"{escape(suggestion.create_sql)})",
                highlight=False,
            )
        for item in skipped:
            errors.print(
                f"skipped: {escape(item.statement)}: {escape(item.reason)}", highlight=False
            )
