"""`afilo-db user show`: one user's profile, billing history and entitlements."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from afilo_db.cli.common import JsonOption, console, reported_errors
from afilo_db.db.engine import create_app_engine
from afilo_db.db.target import resolve_target
from afilo_db.services.accounts import Account, account

user_app = typer.Typer(help="Users: profile, billing, entitlements.", no_args_is_help=True)

PROFILE = ("clerk_user_id", "email", "display_name", "subscription_tier", "stripe_customer_id",
           "state_event_id", "state_as_of", "created_at")  # fmt: skip
SUBSCRIPTION = ("stripe_subscription_id", "is_current", "status", "tier", "stripe_price_id",
                "amount", "currency", "current_period_start", "current_period_end",
                "cancel_at_period_end", "canceled_at", "state_event_id", "state_as_of")  # fmt: skip
PURCHASE = ("id", "product_id", "status", "amount", "currency", "stripe_payment_intent_id",
            "stripe_checkout_session_id", "state_event_id", "created_at")  # fmt: skip
ENTITLEMENT = ("product_handle", "reason", "valid_until")


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
