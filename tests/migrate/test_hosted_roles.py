"""A hosted database's reality, made on the test server: the owner is no superuser (CREATEROLE,
CREATEDB, BYPASSRLS, as Neon's and Supabase's are), the extensions were created by another role
(the provider, a DBA), pg_authid is out of reach and ALTER SYSTEM refused. Every migrate command
works; what needs the server's files says what to ask for instead."""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import errors, sql
from sqlalchemy.engine import make_url

from afilo_db.db.embedded import EmbeddedServer
from afilo_db.security.roles import APP_ROLE, SERVICE_ROLE
from tests.cli.test_errors import assert_one_line
from tests.cli.test_migrate_commands import run
from tests.conftest import create_database, drop_database

_numbers = itertools.count()


@dataclass(frozen=True)
class HostedDatabase:
    owner_url: str
    superuser_url: str


@pytest.fixture
def hosted(server: EmbeddedServer, template_database: str) -> Iterator[HostedDatabase]:
    """A database owned by a non-superuser, its extensions created by the superuser."""
    suffix = f"{os.getpid()}_{next(_numbers)}"
    owner, name, password = f"hosted_owner_{suffix}", f"hosted_{suffix}", secrets.token_hex(12)
    with psycopg.connect(server.url("postgres"), autocommit=True) as superuser:
        superuser.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEROLE CREATEDB BYPASSRLS PASSWORD {}").format(
                sql.Identifier(owner), sql.Literal(password)
            )
        )
        # The application roles exist on this cluster already (made by the template's migration):
        # a provider's owner administers the roles it made, which ADMIN OPTION stands for here.
        superuser.execute(
            sql.SQL("GRANT {}, {} TO {} WITH ADMIN OPTION").format(
                sql.Identifier(APP_ROLE), sql.Identifier(SERVICE_ROLE), sql.Identifier(owner)
            )
        )
    create_database(server, name)
    superuser_url = server.url(name)
    with psycopg.connect(superuser_url, autocommit=True) as superuser:
        superuser.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
            sql.Identifier(name), sql.Identifier(owner)
        ))  # fmt: skip
        superuser.execute("CREATE EXTENSION vector")
        superuser.execute("CREATE EXTENSION btree_gist")
    owner_url = (
        make_url(superuser_url)
        .set(username=owner, password=password)
        .render_as_string(hide_password=False)
    )
    yield HostedDatabase(owner_url, superuser_url)
    drop_database(server, name)
    with psycopg.connect(server.url("postgres"), autocommit=True) as superuser:
        superuser.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(owner)))


def test_the_situation_is_a_hosted_one(hosted: HostedDatabase) -> None:
    with psycopg.connect(hosted.owner_url, autocommit=True) as owner:
        row = owner.execute(
            "SELECT rolsuper, rolcreaterole, rolbypassrls, (SELECT count(*) FROM pg_extension"
            " WHERE extowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user)"
            " AND extname IN ('vector', 'btree_gist')) FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert row == (False, True, True, 2)
        with pytest.raises(errors.InsufficientPrivilege):
            owner.execute("SELECT rolpassword FROM pg_authid")
        with pytest.raises(errors.InsufficientPrivilege):
            owner.execute("ALTER SYSTEM SET work_mem = '8MB'")


def test_every_migrate_command_works_for_an_owner_that_did_not_create_the_extensions(
    hosted: HostedDatabase, tmp_path: Path
) -> None:
    environment = {"DATABASE_URL": hosted.owner_url, "AFILO_MIGRATIONS_DIR": str(tmp_path)}
    deployed = run(environment, "migrate", "deploy")
    assert deployed.returncode == 0, deployed.stderr
    status = run(environment, "migrate", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert '"pending": []' in status.stdout and '"model_drift": []' in status.stdout
    new = run(environment, "migrate", "new", "nothing changed")
    assert new.returncode == 0, new.stderr
    assert "nothing to migrate" in new.stdout
    tested = run(environment, "migrate", "test")
    assert tested.returncode == 0, tested.stderr


def test_what_needs_the_servers_files_says_it_is_the_hosts_job(hosted: HostedDatabase) -> None:
    result = run({"DATABASE_URL": hosted.owner_url}, "pitr", "enable")
    assert_one_line(result, 1, "point-in-time recovery of a hosted database is the host's job")
