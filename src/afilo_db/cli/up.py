"""`afilo-db up`: everything a new user needs, in one command that is safe to repeat."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from afilo_db.cli.common import (
    JsonOption,
    console,
    errors,
    print_counts,
    progress_bar,
    reported_errors,
)
from afilo_db.config import get_settings
from afilo_db.data.up import UpProgress, bring_up
from afilo_db.db.engine import create_app_engine
from afilo_db.db.target import resolve_target
from afilo_db.db.urls import redacted
from afilo_db.demo import populate
from afilo_db.security import login
from afilo_db.services.accounts import list_users

USERS_TO_TRY = 2


@contextmanager
def phases() -> Iterator[UpProgress]:
    """Each phase as a line on stderr when it begins (kept in a log, off a terminal too), and a
    bar under it for the work that is counted."""
    with progress_bar("{task.description}") as bar:
        task = bar.add_task("", total=None)
        started = time.monotonic()
        current = ""

        def report(phase: str, done: int, total: int | None) -> None:
            nonlocal current
            if phase != current:
                current = phase
                bar.console.print(f"{time.monotonic() - started:5.1f}s {phase}", highlight=False)
            bar.update(task, description=phase, completed=done, total=total)

        yield report


def _users_to_try(url: str) -> list[dict[str, str]]:
    engine = create_app_engine(url)
    try:
        with Session(engine) as session:
            users = list_users(session, limit=USERS_TO_TRY).users
            return [{"clerk_user_id": user.clerk_user_id, "email": user.email} for user in users]
    finally:
        engine.dispose()


def up(as_json: JsonOption = False) -> None:
    """Start the embedded server if needed, apply migrations, seed an empty database with demo
    data, and print a summary with two users to try. Running it again changes nothing.

    Each phase is printed on stderr as it begins (starting the server, migrating N revisions,
    seeding, embedding the passages), with a progress bar where the work is counted."""
    with reported_errors():
        get_settings()  # a bad setting is refused in its one line, before any phase is printed
        with phases() as progress:
            progress("starting the database server", 0, None)
            target = resolve_target()
            result = bring_up(target.direct_url, populate, progress)
            if target.embedded is not None:
                progress("setting the application role's login", 0, None)
                login.app_url(target)
        users = _users_to_try(target.direct_url)
        if as_json:
            document = {
                "database": redacted(target.direct_url),
                "migrations_applied": result.applied,
                "seeded": result.seeded,
                "counts": result.counts,
                "users_to_try": users,
            }
            print(json.dumps(document))
            return
        console.print(f"database: [bold]{redacted(target.direct_url)}[/]")
        if result.applied:
            console.print(f"migrations applied: {', '.join(result.applied)}")
        else:
            console.print("migrations: already at head")
        console.print("demo data: " + ("seeded" if result.seeded else "present, left unchanged"))
        print_counts(result.counts)
        for user in users:
            console.print(
                f"try: [bold]afilo-db user show {user['clerk_user_id']}[/] ({user['email']})",
                highlight=False,
            )
        if target.embedded is not None:
            console.print("owner URL for psql: [bold]afilo-db db url[/]")
            console.print("application URL (row-level security): [bold]afilo-db db url --app[/]")
        errors.print("more users: afilo-db user list; a tour: README.md", highlight=False)
