"""`afilo-db erase ...`: the right to erasure."""

from __future__ import annotations

from typing import Annotated

import typer

from afilo_db.cli.common import JsonOption, console, print_counts, print_json, reported_errors
from afilo_db.data.erase import erase_user
from afilo_db.db.target import resolve_target
from afilo_db.errors import ValidationError

erase_app = typer.Typer(help="Erase a user's personal data.", no_args_is_help=True)


@erase_app.command("user")
def user(
    clerk_user_id: Annotated[str, typer.Argument(metavar="CLERK_USER_ID")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Blank or replace every personal field (declared on the models) in every row that belongs
    to the user; keep billing records (subscriptions, purchases) with their amounts; record the
    erasure in user_activity_log."""
    with reported_errors():
        if not yes:
            raise ValidationError({"yes": "erasure cannot be undone: add --yes"})
        erasure = erase_user(resolve_target().direct_url, clerk_user_id)
        if as_json:
            print_json({"user_id": erasure.user_id, "rows": erasure.rows})
            return
        print_counts(erasure.rows)
        console.print(f"erased the personal data of user {erasure.user_id}")
