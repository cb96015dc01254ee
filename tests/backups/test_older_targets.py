"""Restores into a server older than the bundled pg_restore: the settings it does not know are
taken out of what pg_restore sends (PostgreSQL 15 and 16 have no transaction_timeout). The
server is faked to report 15 (tests/version_proxy.py); `make test-pg15` runs the same on a real 15.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from afilo_db.backups.create import create_backup
from afilo_db.backups.manifest import dump_path
from afilo_db.backups.restore import restore_archive, restore_into
from afilo_db.backups.verify import verify_backup
from afilo_db.db.databases import copy_database, drop_database
from afilo_db.db.embedded import EmbeddedServer
from afilo_db.db.programs import settings_unknown_to, without_settings
from afilo_db.db.urls import with_database
from afilo_db.errors import OperationError
from tests.backups.test_backup import database_state
from tests.conftest import vectors_shared_by_the_run
from tests.version_proxy import server_reporting_version

SCRIPT = b"""SET statement_timeout = 0;
SET transaction_timeout = 0;
SET lock_timeout = 0;
COPY public.notes (body) FROM stdin;
SET transaction_timeout = 0;
\\.
SET transaction_timeout = 0;
"""


def test_settings_a_server_lacks_are_taken_out_but_never_from_rows() -> None:
    unknown = settings_unknown_to(150018)
    assert unknown == {b"transaction_timeout"}
    kept = b"".join(without_settings(SCRIPT.splitlines(keepends=True), unknown))
    assert kept == (
        b"SET statement_timeout = 0;\nSET lock_timeout = 0;\n"
        b"COPY public.notes (body) FROM stdin;\nSET transaction_timeout = 0;\n\\.\n"
    )


def test_servers_from_17_get_everything() -> None:
    assert settings_unknown_to(170000) == frozenset()
    assert settings_unknown_to(180001) == frozenset()


def test_backup_verify_and_restore_into_a_server_reporting_15(
    database_url: str, server: EmbeddedServer, tmp_path: Path
) -> None:
    from afilo_db.data import seed
    from afilo_db.knowledge.embedders import get_embedder

    with vectors_shared_by_the_run(get_embedder()), psycopg.connect(database_url) as connection:
        seed.seed(connection, products=20, seed_value=5)
        connection.commit()
    backed_up = database_state(database_url)
    name = f"restored_old_{os.getpid()}"
    # pg_dump itself would read the catalogs as 15 had them: the backup is taken from 18.
    manifest = create_backup(database_url, directory=tmp_path)
    with server_reporting_version(database_url, "15.18") as old_url:
        verified = verify_backup(manifest.id, old_url, directory=tmp_path)
        assert verified.verified, verified.verification
        try:
            result = restore_into(manifest.id, old_url, name, directory=tmp_path)
            assert database_state(with_database(database_url, name)) == backed_up
            assert result.revision_state == "current"
        finally:
            drop_database(server.url(), name)


def test_a_failing_restore_into_an_older_server_says_why(
    database_url: str, server: EmbeddedServer, tmp_path: Path
) -> None:
    manifest = create_backup(database_url, directory=tmp_path)
    with (
        server_reporting_version(database_url, "16.4") as old_url,
        pytest.raises(OperationError, match="already exists"),
    ):
        restore_archive(dump_path(manifest.id, tmp_path), old_url)  # not empty: a clash


def test_copying_a_busy_database(database_url: str, server: EmbeddedServer) -> None:
    """pg_dump reads the catalogs by the version the server reports, so this one runs on the
    real server only: through pg_restore on 17 and later, filtered into psql on 15 and 16."""
    name = f"copied_{os.getpid()}"
    with psycopg.connect(database_url):  # another session: no CREATE DATABASE ... TEMPLATE
        try:
            assert copy_database(database_url, name) == "pg_dump | pg_restore"
            assert database_state(with_database(database_url, name)) == database_state(database_url)
        finally:
            drop_database(server.url(), name)
