"""Each command imports only what it needs: the listing and `db url` must not pay for the
studio, Alembic, SQLAlchemy or the backups (their CPU time is quoted by `make bench`)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "sqlalchemy", "alembic", "starlette", "starlette_admin", "uvicorn", "pglast", "pydantic",
    "matplotlib",
)  # fmt: skip


def modules_loaded_by(*arguments: str) -> set[str]:
    program = (
        "import json, sys\n"
        f"sys.argv = ['afilo-db', *{list(arguments)!r}]\n"
        "from afilo_db.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})), file=sys.stderr)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    return set(json.loads(completed.stderr.strip().splitlines()[-1]))


def test_the_listing_imports_no_command() -> None:
    loaded = modules_loaded_by("--help")
    assert not loaded & {*HEAVY, "psycopg"}


@pytest.mark.parametrize("arguments", [("db", "url", "--help"), ("db", "status", "--help")])
def test_db_url_and_status_import_neither_the_models_nor_alembic(
    arguments: tuple[str, ...],
) -> None:
    loaded = modules_loaded_by(*arguments)
    assert not loaded & {"sqlalchemy", "alembic", "starlette", "starlette_admin", "pglast"}


def test_a_command_is_loaded_when_invoked() -> None:
    assert "alembic" in modules_loaded_by("migrate", "--help")


@pytest.mark.parametrize("arguments", [("report", "--help"), ("analytics", "--help")])
def test_the_analytics_commands_load_their_machinery_only_when_run(
    arguments: tuple[str, ...],
) -> None:
    # Typer itself loads pydantic for a command it registers.
    assert not modules_loaded_by(*arguments) & {*HEAVY, "psycopg"} - {"pydantic"}


def test_db_replica_loads_no_models_nor_charts() -> None:
    loaded = modules_loaded_by("db", "replica", "status", "--help")
    assert not loaded & {"sqlalchemy", "alembic", "starlette", "pglast", "matplotlib"}


@pytest.mark.parametrize("arguments", [("backup", "--help"), ("restore", "--help")])
def test_backup_and_restore_load_alembic_only_to_restore(arguments: tuple[str, ...]) -> None:
    # `backup create`, `verify`, `list` and `prune` need neither Alembic nor the models: only a
    # restore compares the backup's revision with the code's.
    loaded = modules_loaded_by(*arguments)
    assert not loaded & {"sqlalchemy", "alembic", "pglast", "matplotlib"}
