"""`afilo-db`: the operator's command line. It parses, calls ops, prints; it holds no SQL.

Each command group lives in its own module and is registered here.
"""

from __future__ import annotations

import typer

from afilo_db.cli.backup import backup_app
from afilo_db.cli.catalog import catalog_app
from afilo_db.cli.common import console, print_counts, reported_errors
from afilo_db.cli.db import db_app
from afilo_db.cli.erase import erase_app
from afilo_db.cli.export import export_app
from afilo_db.cli.generate import generate_command
from afilo_db.cli.migrate import migrate_app
from afilo_db.cli.pitr import pitr_app
from afilo_db.cli.restore import restore
from afilo_db.cli.studio import studio_app
from afilo_db.data.up import bring_up
from afilo_db.db.target import resolve_target
from afilo_db.db.urls import redacted
from afilo_db.security import login

app = typer.Typer(
    help="afilo-db: the Afilo marketplace's database. Run `afilo-db up` to start.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db_app, name="db")
app.add_typer(migrate_app, name="migrate")
app.add_typer(catalog_app, name="catalog")
app.add_typer(backup_app, name="backup")
app.command()(restore)
app.add_typer(pitr_app, name="pitr")
app.add_typer(export_app, name="export")
app.add_typer(erase_app, name="erase")
app.command("generate")(generate_command)
app.add_typer(studio_app, name="studio")


@app.command()
def up() -> None:
    """Start the embedded server if needed, apply migrations, seed an empty database with demo
    data, and print a summary. Running it again changes nothing."""
    with reported_errors():
        target = resolve_target()
        result = bring_up(target.direct_url)
        console.print(f"database: [bold]{redacted(target.direct_url)}[/]")
        if result.applied:
            console.print(f"migrations applied: {', '.join(result.applied)}")
        else:
            console.print("migrations: already at head")
        console.print("demo data: " + ("seeded" if result.seeded else "present, left unchanged"))
        print_counts(result.counts)
        if target.embedded is not None:
            login.app_url(target)
            console.print("owner URL for psql: [bold]afilo-db db url[/]")
            console.print("application URL (row-level security): [bold]afilo-db db url --app[/]")


def main() -> None:
    app()
