"""`afilo-db migrate ...`: schema migrations."""

from __future__ import annotations

import typer

from afilo_db.cli.common import console, reported_errors
from afilo_db.db.target import resolve_target
from afilo_db.ops.migrate import deploy

migrate_app = typer.Typer(help="Schema migrations (Alembic).", no_args_is_help=True)


@migrate_app.command("deploy")
def migrate_deploy() -> None:
    """Apply every pending migration (safe to run concurrently: an advisory lock serializes runs)."""
    with reported_errors():
        applied = deploy(resolve_target().direct_url)
        console.print(f"applied: {', '.join(applied)}" if applied else "nothing to apply: at head")
