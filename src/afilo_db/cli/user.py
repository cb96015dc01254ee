"""`afilo-db user show`: one user's profile, billing history and entitlements."""

from __future__ import annotations

import json
import shlex
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from afilo_db.cli.common import JsonOption, console, errors, reported_errors
from afilo_db.db.engine import create_app_engine
from afilo_db.db.target import resolve_target
from afilo_db.services.accounts import USER_PAGE_LIMIT, Account, account, list_users

user_app = typer.Typer(help="Users: profile, billing, entitlements.", no_args_is_help=True)

PROFILE = ("clerk_user_id", "email", "display_name", "subscription_tier", "stripe_customer_id",
           "state_event_id", "state_as_of", "created_at")  # fmt: skip
SUBSCRIPTION = ("stripe_subscription_id", "is_current", "status", "tier", "stripe_price_id",
                "amount", "currency", "current_period_start", "current_period_end",
                "cancel_at_period_end", "canceled_at", "state_event_id", "state_as_of")  # fmt: skip
PURCHASE = ("id", "product_id", "status", "amount", "currency", "stripe_payment_intent_id",
            "stripe_checkout_session_id", "state_event_id", "created_at")  # fmt: skip
ENTITLEMENT = ("product_handle", "reason", "valid_until")
LISTED = ("clerk_user_id", "email", "display_name", "subscription_tier", "created_at")


def _row(item: Any, columns: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(item, name) for name in columns}


def _document(found: Account) -> dict[str, Any]:
    return {
        "profile": _row(found.profile, PROFILE),
        "subscriptions": [_row(item, SUBSCRIPTION) for item in found.subscriptions],
        "purchases": [_row(item, PURCHASE) for item in found.purchases],
        "entitlements": [
            _row(item, (*ENTITLEMENT, "product_id", "subscription_id", "purchase_id"))
            for item in found.entitlements
        ],
        "subscriptions_granting_nothing": [
            {"stripe_subscription_id": stripe_id, "why": why}
            for stripe_id, why in found.idle.items()
        ],
    }


def _table(title: str, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row[name] is None else str(row[name]) for name in columns))
    return table


@user_app.command("show")
def show(
    clerk_user_id: Annotated[str, typer.Argument(metavar="CLERK_ID")],
    as_json: JsonOption = False,
) -> None:
    """The user's profile, subscription history (every state, the current one marked), purchases,
    and what they may download now with the reason (the database's one entitlement rule)."""
    with reported_errors():
        engine = create_app_engine(resolve_target().direct_url)
        try:
            with Session(engine) as session:
                document = _document(account(session, clerk_user_id))
        finally:
            engine.dispose()
        if as_json:
            print(json.dumps(document, indent=2, default=str))
            return
        profile = document["profile"]
        for name in PROFILE:
            console.print(
                f"{name}: {'' if profile[name] is None else profile[name]}", highlight=False
            )
        console.print(_table("subscription history", document["subscriptions"], SUBSCRIPTION[:9]))
        console.print(_table("purchases", document["purchases"], PURCHASE[1:7]))
        console.print(_table("may download now", document["entitlements"], ENTITLEMENT))
        for item in document["subscriptions_granting_nothing"]:
            console.print(
                f"subscription {item['stripe_subscription_id']} grants nothing: {item['why']}",
                highlight=False,
            )


@user_app.command("list")
def list_command(
    email: Annotated[
        str | None,
        typer.Option(help="Only users whose email contains this text (case-insensitively)."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Users a page.")] = USER_PAGE_LIMIT,
    after: Annotated[
        str | None,
        typer.Option(help="The cursor printed after the previous page: the page that follows."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The users, oldest first, a page at a time, with the Clerk id that `user show`, `export
    user`, `erase user` and `kb ask --user` take. When more follow, the command for the next
    page is printed on stderr (with --json: the cursor is "next")."""
    with reported_errors():
        engine = create_app_engine(resolve_target().direct_url)
        try:
            with Session(engine) as session:
                page = list_users(session, email=email, limit=limit, after=after)
                users = [_row(user, LISTED) for user in page.users]
        finally:
            engine.dispose()
        if as_json:
            print(json.dumps({"users": users, "next": page.next}, default=str))
            return
        console.print(_table(f"users ({len(users)})", users, LISTED))
        if page.next is not None:
            same_filter = f" --email {shlex.quote(email)}" if email else ""
            errors.print(
                f"next page: afilo-db user list{same_filter} --after {page.next}", highlight=False
            )
