"""`afilo-db`: the operator's command line. It parses, calls the packages below, prints; it holds
no SQL.

Each command lives in a module of its own and is imported only when it runs (or when its own
`--help` is asked for): the top-level `--help` lists the commands from the table below without
importing any of them, so that no command pays for the studio's, Alembic's or the backups' imports.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import typer


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
        "The database server and its contents: start, stop, status, url, roles, seed, push.",
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
    "webhooks": Lazy(
        "afilo_db.cli.webhooks:webhooks_app",
        "Stripe and Clerk webhooks: serve the endpoint that mirrors them.",
    ),
    "user": Lazy("afilo_db.cli.user:user_app", "A user's profile, billing and entitlements."),
}


def _listed_only() -> None:
    """Stands in for a command that this run does not invoke; never called."""


def build_app(arguments: Sequence[str]) -> typer.Typer:
    """The command line for these arguments: the command they invoke loaded for real, every
    other one present only by name and summary (enough for the listing in `--help`)."""
    invoked = next((argument for argument in arguments if not argument.startswith("-")), None)
    app = typer.Typer(
        help="afilo-db: the Afilo marketplace's database. Run `afilo-db up` to start.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
    )
    for name, entry in COMMANDS.items():
        if name == invoked:
            entry.register(app, name)
        else:
            app.command(name, help=entry.summary)(_listed_only)
    return app


def main() -> None:
    build_app(sys.argv[1:])()
