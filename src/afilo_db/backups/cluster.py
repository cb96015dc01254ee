"""What a restore needs beyond the database's own tables: the server's roles (without their
passwords: a backup is no place for them) and the database-level settings (ALTER DATABASE ... SET,
ALTER ROLE ... IN DATABASE ... SET), which pg_dump of one database leaves out.

Saved beside the dump as `roles.sql` (pg_dumpall --roles-only --no-role-passwords) and
`database_settings.json`; put back by an in-place restore, each statement on its own, so that a
role that already exists, or one this login may not alter (a hosted server's), is reported, not
fatal.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
from psycopg import sql

from afilo_db.db.programs import run_program
from afilo_db.db.urls import database_name

ROLES_FILE = "roles.sql"
SETTINGS_FILE = "database_settings.json"

DATABASE_SETTINGS = """
SELECT r.rolname, unnest(s.setconfig)
FROM pg_db_role_setting s
JOIN pg_database d ON d.oid = s.setdatabase
LEFT JOIN pg_roles r ON r.oid = s.setrole
WHERE d.datname = current_database()
ORDER BY 1 NULLS FIRST, 2
"""


def save_cluster_objects(url: str, folder: Path) -> None:
    """Write the roles and the database-level settings of the database at `url` into `folder`."""
    roles = run_program("pg_dumpall", url, "--roles-only", "--no-role-passwords")
    (folder / ROLES_FILE).write_text(roles)
    with psycopg.connect(url, autocommit=True) as connection:
        settings = [
            {"role": role, "setting": str(setting)}
            for role, setting in connection.execute(DATABASE_SETTINGS)
        ]
    (folder / SETTINGS_FILE).write_text(json.dumps(settings, indent=2))


def _statements(script: str) -> list[str]:
    """pg_dumpall's statements: one per line ending in ';', comments and blank lines aside."""
    return [
        line
        for line in (raw.strip() for raw in script.splitlines())
        if line and not line.startswith("--") and line.endswith(";")
    ]


def restore_cluster_objects(url: str, folder: Path) -> list[str]:
    """Create the missing roles, give them their attributes and memberships, and set the database
    settings again; what could not be done, in words (a backup made before this existed has
    neither file: nothing to do)."""
    notes: list[str] = []
    roles_file, settings_file = folder / ROLES_FILE, folder / SETTINGS_FILE
    with psycopg.connect(url, autocommit=True) as connection:
        if roles_file.is_file():
            for statement in _statements(roles_file.read_text()):
                if statement.upper().startswith(("SET ", "\\")):
                    continue
                try:
                    connection.execute(statement.encode())
                except psycopg.errors.DuplicateObject:
                    continue  # the role exists; its attributes follow in ALTER ROLE
                except psycopg.Error as error:
                    notes.append(f"{statement[:80]}: {error.diag.message_primary or error}")
        if settings_file.is_file():
            database = sql.Identifier(database_name(url))
            for item in json.loads(settings_file.read_text()):
                name, _, value = str(item["setting"]).partition("=")
                target = (
                    sql.SQL("ALTER ROLE {} IN DATABASE {}").format(
                        sql.Identifier(item["role"]), database
                    )
                    if item["role"]
                    else sql.SQL("ALTER DATABASE {}").format(database)
                )
                setting = sql.SQL("{} SET {} = {}").format(
                    target, sql.Identifier(name), sql.Literal(value)
                )
                try:
                    connection.execute(setting)
                except psycopg.Error as error:
                    notes.append(f"setting {item['setting']}: {error.diag.message_primary}")
    return notes
