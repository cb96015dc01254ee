"""`afilo-db db ...`: the embedded server and the data in it."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

import typer

from afilo_db.cli.common import (
    JsonOption,
    console,
    errors,
    print_counts,
    print_json,
    progress_bar,
    reported_errors,
)
from afilo_db.config import get_settings
from afilo_db.db.target import embedded_server, resolve_target
from afilo_db.errors import ConflictError, OperationError, ValidationError

db_app = typer.Typer(
    help="The database server: start, stop, status, url, roles, seed, push, replica.",
    no_args_is_help=True,
)
replica_app = typer.Typer(
    help="A streaming read replica of the embedded server, for the reports: start, stop, status.",
    no_args_is_help=True,
)
db_app.add_typer(replica_app, name="replica")


def _require_embedded(command: str) -> None:
    if not get_settings().uses_embedded_server:
        raise OperationError(
            f"`db {command}` manages the embedded server; DATABASE_URL is set, so there is none"
        )


@db_app.command()
def start() -> None:
    """Start the embedded server (initializing it in $AFILO_HOME on first use)."""
    with reported_errors():
        _require_embedded("start")
        status = embedded_server().start()
        console.print(f"embedded PostgreSQL running on 127.0.0.1:{status.port} (pid {status.pid})")


@db_app.command()
def stop() -> None:
    """Stop the embedded server. Its data stays in $AFILO_HOME."""
    with reported_errors():
        _require_embedded("stop")
        stopped = embedded_server().stop()
        console.print("stopped" if stopped else "not running")


@db_app.command()
def status(as_json: JsonOption = False) -> None:
    """Is the embedded server initialized and running, on which port, with its data where."""
    with reported_errors():
        _require_embedded("status")
        state = embedded_server().status()
        if as_json:
            payload: dict[str, Any] = asdict(state)
            payload["data_directory"] = str(state.data_directory)
            payload["log_file"] = str(state.log_file)
            print(json.dumps(payload))
            return
        if not state.initialized:
            console.print(f"not initialized (AFILO_HOME={get_settings().home})")
        elif state.running:
            console.print(f"running on 127.0.0.1:{state.port} (pid {state.pid})")
        else:
            console.print("stopped")
        console.print(f"data: {state.data_directory}\nlog:  {state.log_file}")


@db_app.command()
def url(
    app: Annotated[
        bool,
        typer.Option(
            "--app",
            help="The application's URL instead: the application role (afilo_app), held to "
            "row-level security. With DATABASE_URL set, prints DATABASE_URL.",
        ),
    ] = False,
    service: Annotated[
        bool,
        typer.Option(
            "--service",
            help="The service URL instead: the service role (afilo_service) that webhook "
            "handlers and admin jobs log in as. With DATABASE_URL set, prints SERVICE_DATABASE_URL.",
        ),
    ] = False,
) -> None:
    """Print the owner's connection URL on a line of its own (usable with psql). Starts the
    embedded server if it is not running. With DATABASE_URL set, prints DIRECT_URL."""
    with reported_errors():
        if app and service:
            raise ValidationError({"--service": "give either --app or --service, not both"})
        # Printing a URL connects to nothing: scripts call it before the server is up.
        target = resolve_target(check_version=False)
        if app or service:
            from afilo_db.security import login

            print(login.service_url(target) if service else login.app_url(target))
        else:
            print(target.direct_url)


@db_app.command("roles")
def roles_command() -> None:
    """Print the SQL that creates the application and service roles and sets both roles'
    passwords, for a database where migrations may not create roles. Run it as a role
    with CREATEROLE (`afilo-db db roles | psql "$DIRECT_URL"`), then `afilo-db migrate deploy`.
    On a hosted database a new password is generated and shown on stderr, once."""
    from afilo_db.security.login import roles_script
    from afilo_db.security.roles import APP_ROLE

    with reported_errors():
        script = roles_script(resolve_target())
        print(script.sql, end="")
        for role, password in script.new_passwords.items():
            setting = "DATABASE_URL" if role == APP_ROLE else "SERVICE_DATABASE_URL"
            errors.print(
                f"password of {role} (put it in {setting}; it is not stored anywhere): {password}",
                highlight=False,
            )
        if not script.owner_bypasses_rls:
            errors.print(
                f"[bold yellow]warning:[/] the owner {script.owner} does not bypass row-level "
                "security: with FORCE ROW LEVEL SECURITY it sees no rows. Give it BYPASSRLS "
                f"(as a superuser: ALTER ROLE {script.owner} BYPASSRLS).",
                highlight=False,
            )


@db_app.command("seed")
def seed_command(
    scale: Annotated[int, typer.Option(min=1, max=10_000_000, help="Number of products.")] = 10_000,
    seed_value: Annotated[
        int | None, typer.Option("--seed", help="Same seed, same data. Default: the demo's.")
    ] = None,
    reset: Annotated[bool, typer.Option(help="Delete all existing data first.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Fill the database with a catalog of SCALE products and matching users, billing, carts,
    chats and events, with COPY. Refuses a database that has data, unless --reset."""
    # Imported here, not at the top: `db url` and `db status` must not pay for the models.
    from afilo_db.data import seed, up
    from afilo_db.db.databases import admin_connection
    from afilo_db.migrate.revisions import deploy

    with reported_errors():
        target = resolve_target()
        deploy(target.direct_url)
        with admin_connection(target.direct_url) as connection:
            if reset:
                up.truncate_all(connection)
            elif not up.is_empty(connection):
                raise ConflictError(
                    "the database already has data; use --reset to replace it with the seed"
                )
            # Over the tables: their number is known, their rows only once generated.
            with progress_bar("{task.description}") as progress:
                task = progress.add_task("seeding", total=len(seed.SEED_TABLES))

                def report(table: str, rows: int, done: bool) -> None:
                    progress.update(
                        task, advance=int(done), description=f"seeding {table}: {rows:,} rows"
                    )

                counts = seed.seed(
                    connection,
                    products=scale,
                    seed_value=seed.DEMO_SEED if seed_value is None else seed_value,
                    progress=report,
                )
            connection.commit()
            if as_json:
                print_json(
                    {
                        "products": counts.products,
                        "users": counts.users,
                        "rows": up.table_counts(connection),
                    }
                )
                return
            console.print(f"seeded {counts.products:,} products and {counts.users:,} users")
            print_counts(up.table_counts(connection))


@db_app.command("push")
def push_command(
    accept_data_loss: Annotated[
        bool, typer.Option(help="Apply changes that drop rows or values, or that rows break.")
    ] = False,
    force_reset: Annotated[
        bool, typer.Option(help="Drop the schema with all its data, migrate, then push.")
    ] = False,
) -> None:
    """Development only: make the database match the models without writing a migration.
    Changes that lose data (a dropped table or column holding rows, a narrowed type, a unique
    constraint existing rows break) are refused with what would be lost, unless
    --accept-data-loss."""
    from afilo_db.migrate.push import push

    with reported_errors():
        result = push(
            resolve_target().direct_url,
            accept_data_loss=accept_data_loss,
            force_reset=force_reset,
        )
        if result.reset:
            console.print("schema dropped and recreated")
        for loss in result.accepted_losses:
            console.print(f"[yellow]accepted:[/] {loss.message}", highlight=False)
        for change in result.changes:
            console.print(change, highlight=False)
        if not result.changes:
            console.print("the database already matches the models")


@replica_app.command("start")
def replica_start() -> None:
    """Start a streaming replica of the embedded server on a port of its own (127.0.0.1),
    cloning it with pg_basebackup into $AFILO_HOME/replica the first time. While it runs, and
    REPLICA_URL is unset, `afilo-db report` reads from it."""
    from afilo_db.db.replica import EmbeddedReplica

    with reported_errors():
        _require_embedded("replica start")
        replica = EmbeddedReplica(embedded_server())
        cloning = not replica.exists
        if cloning:
            errors.print("cloning the primary with pg_basebackup ...")
        status = replica.start()
        console.print(
            f"replica running on 127.0.0.1:{status.port} (pid {status.pid}), "
            f"streaming from the primary; data: {status.data_directory}"
        )


@replica_app.command("stop")
def replica_stop() -> None:
    """Stop the replica; its data stays, and it catches up when started again. Reports then
    read from the primary."""
    from afilo_db.db.replica import EmbeddedReplica

    with reported_errors():
        _require_embedded("replica stop")
        stopped = EmbeddedReplica(embedded_server()).stop()
        console.print("stopped" if stopped else "not running")


@replica_app.command("status")
def replica_status(as_json: JsonOption = False) -> None:
    """Is the replica running, streaming, how much WAL it has yet to replay, and is its replay
    paused."""
    from afilo_db.db.replica import EmbeddedReplica

    with reported_errors():
        _require_embedded("replica status")
        state = EmbeddedReplica(embedded_server()).status()
        if as_json:
            print(json.dumps({"initialized": state.server.initialized,
                              "running": state.server.running, "port": state.server.port,
                              "pid": state.server.pid, "streaming": state.streaming,
                              "lag_bytes": state.lag_bytes,
                              "replay_paused": state.replay_paused,
                              "data_directory": str(state.server.data_directory)}))  # fmt: skip
            return
        if not state.server.initialized:
            console.print("no replica (start one with `afilo-db db replica start`)")
        elif not state.server.running:
            console.print("stopped")
        else:
            streaming = "streaming" if state.streaming else "not streaming"
            lag = "" if state.lag_bytes is None else f", {state.lag_bytes:,} bytes behind"
            paused = (
                ", replay PAUSED (resume: SELECT pg_wal_replay_resume())"
                if state.replay_paused
                else ""
            )
            console.print(f"running on 127.0.0.1:{state.server.port}, {streaming}{lag}{paused}")
