"""`afilo-db up`: everything a new user needs, in one command that is safe to repeat."""

from __future__ import annotations

from afilo_db.cli.common import console, print_counts, reported_errors
from afilo_db.data.up import bring_up
from afilo_db.db.target import resolve_target
from afilo_db.db.urls import redacted
from afilo_db.security import login


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
