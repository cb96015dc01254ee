"""`afilo-db`: the operator's command line. It parses, calls the packages below, prints; it holds
no SQL.

Each command lives in a module of its own and is imported only when it runs (or when its own
`--help` is asked for): the top-level `--help` lists the commands from the table below without
importing any of them, so that no command pays for the studio's, Alembic's or the backups' imports.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from afilo_db.cli.debug import DEBUG_FLAG, DEBUG_VARIABLE, debugging


class Lazy:
    """A command registered by where it lives, 'module:attribute' (a Typer app or a function),
    with the one-line help the top-level listing shows."""

    def __init__(self, target: str, summary: str) -> None:
        self.target = target
        self.summary = summary

    def register(self, app: typer.Typer, name: str) -> None:
        module_name, attribute = self.target.split(":")
        value = getattr(importlib.import_module(module_name), attribute)
        if isinstance(value, typer.Typer):
            app.add_typer(value, name=name, help=self.summary)
        else:
            app.command(name)(value)


COMMANDS: dict[str, Lazy] = {
    "up": Lazy(
        "afilo_db.cli.up:up",
        "Start the embedded server, migrate, seed an empty database, print a summary.",
    ),
    "db": Lazy(
        "afilo_db.cli.db:db_app",
        "The database server and its contents: start, stop, status, url, roles, seed, push, "
        "replica.",
    ),
    "migrate": Lazy(
        "afilo_db.cli.migrate:migrate_app",
        "Schema migrations: new, review, test, apply, status, confirm, deploy.",
    ),
    "catalog": Lazy("afilo_db.cli.catalog:catalog_app", "The catalog as files: import."),
    "backup": Lazy(
        "afilo_db.cli.backup:backup_app",
        "Logical backups (pg_dump) with a manifest: create, list, prune, verify.",
    ),
    "restore": Lazy(
        "afilo_db.cli.restore:restore",
        "Restore a backup into a new database or in place, or the server to a point in time.",
    ),
    "pitr": Lazy(
        "afilo_db.cli.pitr:pitr_app",
        "Point-in-time recovery of the embedded server: enable, base-backup, status.",
    ),
    "export": Lazy("afilo_db.cli.export:export_app", "Export a user's data or whole tables."),
    "erase": Lazy("afilo_db.cli.erase:erase_app", "Erase a user's personal data."),
    "generate": Lazy(
        "afilo_db.cli.generate:generate_command",
        "Write the schema reference (schema.md) and its diagram (schema.svg).",
    ),
    "studio": Lazy("afilo_db.cli.studio:studio_app", "Browse and edit the data in the browser."),
    "report": Lazy(
        "afilo_db.cli.report:report_command",
        "A business report (revenue, MRR, churn, funnel, ...) as a table, CSV, JSON or chart.",
    ),
    "analytics": Lazy(
        "afilo_db.cli.analytics:analytics_app",
        "Upkeep of the events: retention, partitions ahead, the reports' pre-aggregates.",
    ),
    "kb": Lazy(
        "afilo_db.cli.kb:kb_app",
        "The chat bot's knowledge base: ingest, sync, search, ask, reembed.",
    ),
    "webhooks": Lazy(
        "afilo_db.cli.webhooks:webhooks_app",
        "Stripe and Clerk webhooks: serve the endpoint that mirrors them.",
    ),
    "user": Lazy("afilo_db.cli.user:user_app", "A user's profile, billing and entitlements."),
    "inspect": Lazy(
        "afilo_db.cli.inspect:inspect_app",
        "Database health: statistics as Supabase's `inspect db`, verdicts (check), the "
        "schema's promises, suggested indexes.",
    ),
}


def _listed_only() -> None:
    """Stands in for a command that this run does not invoke; never called."""


def _global_options(
    debug: Annotated[
        bool,
        typer.Option(
            DEBUG_FLAG,
            envvar=DEBUG_VARIABLE,
            help="On an error, show the full traceback besides the one-line message "
            "(also AFILO_DEBUG=1; accepted anywhere on the line).",
        ),
    ] = False,
) -> None:
    if debug:
        os.environ[DEBUG_VARIABLE] = "1"


def build_app(arguments: Sequence[str]) -> typer.Typer:
    """The command line for these arguments: the command they invoke loaded for real, every
    other one present only by name and summary (enough for the listing in `--help`)."""
    invoked = next((argument for argument in arguments if not argument.startswith("-")), None)
    app = typer.Typer(
        help="afilo-db: the Afilo marketplace's database. Run `afilo-db up` to start.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
    )
    app.callback()(_global_options)
    for name, entry in COMMANDS.items():
        if name == invoked:
            entry.register(app, name)
        else:
            app.command(name, help=entry.summary)(_listed_only)
    return app


def main() -> None:
    """Run the command line; whatever escapes a command becomes one line and an exit code."""
    arguments = [argument for argument in sys.argv[1:] if argument != DEBUG_FLAG]
    if len(arguments) < len(sys.argv) - 1:
        os.environ[DEBUG_VARIABLE] = "1"
    if debugging():
        logging.basicConfig(level=logging.WARNING)
    else:
        # Libraries log what they clean up after a failure (psycopg: "error ignored terminating
        # <Copy>"); the one line that explains the failure is ours.
        logging.getLogger().addHandler(logging.NullHandler())
    try:
        build_app(arguments)(arguments, prog_name="afilo-db")
    except SystemExit:
        raise
    except BaseException as error:  # nothing a user meets ends in a traceback
        from afilo_db.cli.common import report_failure

        raise SystemExit(report_failure(error)) from None
