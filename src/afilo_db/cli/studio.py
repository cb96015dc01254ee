"""`afilo-db studio`: the data in the browser."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from afilo_db.cli.common import console, errors, reported_errors, require_free_port
from afilo_db.config import get_settings
from afilo_db.db.engine import create_app_engine
from afilo_db.db.target import resolve_target
from afilo_db.errors import OperationError
from afilo_db.security import login
from afilo_db.studio import StudioOptions, create_studio, new_token
from afilo_db.studio.app import BASE_PATH

studio_app = typer.Typer()

LOOPBACK = "127.0.0.1"


@studio_app.callback(invoke_without_command=True)
def studio(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 5555,
    host: Annotated[
        str,
        typer.Option(help="Address to listen on. Anything but 127.0.0.1 exposes the studio."),
    ] = LOOPBACK,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Browse only: every way to write is hidden.")
    ] = False,
) -> None:
    """Serve the studio on http://127.0.0.1:PORT/studio/ until Ctrl-C.

    Log in with the password in AFILO_STUDIO_PASSWORD or, when it is not set, with the one-time
    token printed at start (valid until the studio stops). It browses every table as the owner;
    "View as a user" reads through the application role with row-level security.
    """
    with reported_errors():
        require_free_port(host, port)
        target = resolve_target()
        password = get_settings().afilo_studio_password
        secret = password.get_secret_value() if password is not None else new_token()
        engine = create_app_engine(target.direct_url)
        try:
            app_engine = create_app_engine(login.app_url(target))
        except OperationError as error:
            errors.print(f"view as a user is unavailable: {error}", highlight=False)
            app_engine = None
        try:
            studio = create_studio(engine, StudioOptions(secret, read_only), app_engine)
            console.print(f"afilo-db studio: http://{host}:{port}{BASE_PATH}/", highlight=False)
            if password is None:
                console.print(f"one-time login token: {secret}", highlight=False)
            if read_only:
                console.print("read-only: nothing can be changed")
            if host != LOOPBACK:
                errors.print(f"[bold yellow]warning:[/] listening on {host}, not only this machine")
            uvicorn.run(studio, host=host, port=port, log_level="warning")
        finally:
            engine.dispose()
            if app_engine is not None:
                app_engine.dispose()
