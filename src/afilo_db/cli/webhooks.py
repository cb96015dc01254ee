"""`afilo-db webhooks serve`: the Stripe and Clerk webhook endpoint; `webhooks unresolved` and
`webhooks refusals`: what it could not finish and what it refused; `webhooks retry`: the
unresolved events applied again."""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import multiprocessing
import os
import signal
import sys
from typing import Annotated, Any

import typer
import uvicorn
from rich.table import Table
from sqlalchemy.orm import Session

from afilo_db.billing import endpoint
from afilo_db.billing.endpoint import WebhookApp, WebhookSecrets, create_webhook_app
from afilo_db.billing.parked import refusal_counts, retry, waiting_events
from afilo_db.cli.common import (
    JsonOption,
    console,
    errors,
    phase_progress,
    reported_errors,
    require_free_port,
)
from afilo_db.config import get_settings
from afilo_db.db.engine import create_app_engine
from afilo_db.db.target import resolve_target
from afilo_db.errors import ValidationError
from afilo_db.security import login

webhooks_app = typer.Typer(help="Stripe and Clerk webhooks.", no_args_is_help=True)

LOOPBACK = "127.0.0.1"


def _log_each_delivery() -> None:
    """One line on stderr per delivery: provider, HTTP status, event type and id, outcome, time
    (never a body or a secret). A worker process of several (uvicorn starts each with
    multiprocessing, one has no parent process) names itself by its pid, so that the lines of
    one process can be told from the others'."""
    one_of_several = multiprocessing.parent_process() is not None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s {'[%(process)d] ' if one_of_several else ''}%(message)s")
    )
    delivery_log = logging.getLogger(endpoint.__name__)
    delivery_log.addHandler(handler)
    delivery_log.setLevel(logging.INFO)


def _secrets() -> WebhookSecrets:
    settings = get_settings()
    return WebhookSecrets(
        stripe=settings.stripe_webhook_secret.get_secret_value()
        if settings.stripe_webhook_secret
        else None,
        clerk=settings.clerk_webhook_secret.get_secret_value()
        if settings.clerk_webhook_secret
        else None,
    )


def worker_app() -> WebhookApp:
    """The endpoint as each process of `webhooks serve` builds it, on a pool of its own: uvicorn
    imports this by name in every worker process, where an app cannot be handed over."""
    engine = create_app_engine(login.service_url(resolve_target(check_version=False)))
    atexit.register(engine.dispose)
    _log_each_delivery()
    return create_webhook_app(engine, _secrets())


# One interpreter serves HTTP, verifies and runs the handlers' Python for every delivery: on a
# busy endpoint it holds one core whatever the database could take (docs/benchmarks.md,
# "Webhooks"). A process a core, up to a few: each keeps its own pool of DB_POOL_SIZE
# connections, which a database with a low connection limit must allow for.
DEFAULT_WORKERS = min(
    4,
    # The cores this process may use where the platform says (Linux), else the machine's.
    len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1,
)


@webhooks_app.command("serve")
def serve(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8787,
    host: Annotated[
        str, typer.Option(help="Address to listen on. Anything but 127.0.0.1 exposes it.")
    ] = LOOPBACK,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Server processes sharing the port, each with a pool of DB_POOL_SIZE "
            "connections to the database. Default: one a CPU core this process may use, at "
            "most 4.",
            show_default=False,
        ),
    ] = DEFAULT_WORKERS,
) -> None:
    """Receive Stripe events on POST /webhooks/stripe and Clerk events on POST /webhooks/clerk
    until Ctrl-C, as the service role (SERVICE_DATABASE_URL, or the embedded server's).

    Signatures are checked with STRIPE_WEBHOOK_SECRET and CLERK_WEBHOOK_SECRET (at least one
    must be set; the other provider's deliveries are refused with 503). Forward to it from your
    back end, or in development with `stripe listen --forward-to 127.0.0.1:8787/webhooks/stripe`.
    Each delivery is logged on stderr in one line: provider, status, event type and id, outcome,
    and with several processes the pid of the one that served it.

    Ctrl-C or SIGTERM stops it once the deliveries in flight are answered: exit code 0. A port
    in use: 4.
    """
    with reported_errors():
        require_free_port(host, port)
        secrets = _secrets()
        if secrets.stripe is None and secrets.clerk is None:
            raise ValidationError(
                {"STRIPE_WEBHOOK_SECRET": "set it, or CLERK_WEBHOOK_SECRET, or both"}
            )
        # Checked here, once, so that a missing service login fails before a URL is printed.
        login.service_url(resolve_target())
        for provider, secret in (("stripe", secrets.stripe), ("clerk", secrets.clerk)):
            state = "" if secret else " (no secret: refused)"
            console.print(f"{provider}: http://{host}:{port}/webhooks/{provider}{state}")
        if host != LOOPBACK:
            errors.print(f"[bold yellow]warning:[/] listening on {host}, not only this machine")
        # Stopping is what Ctrl-C and SIGTERM ask for, so both end in 0 once the deliveries in
        # flight are answered, served by one process or several: uvicorn's supervisor of several
        # returns, but one process raises the signal again once shut down, which would end in
        # Ctrl-C's 130 or in death by SIGTERM. SIGTERM is made Ctrl-C's twin for that.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.run(
                f"{__name__}:{worker_app.__name__}",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_level="warning",
            )


WAITING = ("provider", "event_id", "event_type", "outcome", "attempts", "received_at", "reason")
REFUSAL = ("provider", "status", "reason", "deliveries", "first_at", "last_at")
RETRIED = ("provider", "event_id", "event_type", "outcome", "reason")


def _print(title: str, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row[name] is None else str(row[name]) for name in columns))
    console.print(table)


@webhooks_app.command("unresolved")
def unresolved(
    deferred: Annotated[
        bool,
        typer.Option(
            "--deferred", help="Also list the events still deferred (waiting for a retry)."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """The events parked as unresolved, answered 200 so that their provider stopped retrying and
    kept with their payload and the reason: each waited for something that never arrived (a
    user, a purchase) through the bound on retries, or its content breaks a rule (an unknown
    price, a malformed id: the reason names the field and the rule). `webhooks retry` applies
    them again. Exit code 0: none; 1: some (listed)."""
    with reported_errors():
        engine = create_app_engine(resolve_target().direct_url)
        try:
            with Session(engine) as session:
                rows = [
                    {name: getattr(event, name) for name in WAITING}
                    for event in waiting_events(session, with_deferred=deferred)
                ]
        finally:
            engine.dispose()
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        _print("unresolved events" + (" and deferred ones" if deferred else ""), rows, WAITING)
    if any(row["outcome"] == "unresolved" for row in rows):
        raise typer.Exit(1)


@webhooks_app.command("retry")
def retry_unresolved(
    event_ids: Annotated[
        list[str] | None,
        typer.Argument(
            help="The unresolved events to apply again, by their provider's id (evt_..., "
            "msg_...). None: use --all.",
            show_default=False,
        ),
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Apply every unresolved event again, oldest first.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Apply unresolved events again, once what they needed is there: the user or purchase an
    event waited for, the variant whose price it names, a fix of what its content broke. Each is
    applied as its provider's delivery would be, in a transaction of its own, as the service
    role; one that still cannot apply stays unresolved, and the reason is printed. Exit code 0:
    every one applied (or recorded, ignored, applied meanwhile); 1: some still unresolved; 2: no
    event named, or one that is not unresolved (nothing applied)."""
    with reported_errors():
        if bool(event_ids) == every:
            raise ValidationError(
                {"event_ids": "name the unresolved events to retry, or pass --all (not both)"}
            )
        engine = create_app_engine(login.service_url(resolve_target()))
        try:
            with phase_progress() as progress:
                retried = [
                    {
                        "provider": each.provider,
                        "event_id": each.event_id,
                        "event_type": each.event_type,
                        "outcome": each.result.outcome.value,
                        "reason": each.result.reason,
                    }
                    for each in retry(engine, None if every else event_ids, progress)
                ]
        finally:
            engine.dispose()
    if as_json:
        print(json.dumps(retried, indent=2))
    else:
        _print("retried events", retried, RETRIED)
    if any(row["outcome"] == "unresolved" for row in retried):
        raise typer.Exit(1)


@webhooks_app.command("refusals")
def refusals(as_json: JsonOption = False) -> None:
    """Deliveries refused before anything was stored (bad or expired signature, body too large,
    not an event, one that cannot even be stored as parked), counted by provider, HTTP status and reason: a wrong
    signing secret or a flood of forgeries shows here. Exit code 0."""
    with reported_errors():
        engine = create_app_engine(resolve_target().direct_url)
        try:
            with Session(engine) as session:
                rows = [
                    {name: getattr(refusal, name) for name in REFUSAL}
                    for refusal in refusal_counts(session)
                ]
        finally:
            engine.dispose()
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        _print("refused deliveries", rows, REFUSAL)
