"""Issue 14 item 6: files holding secrets or personal data are the owner's alone and written
whole; folders above the embedded server gain search permission only."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import psycopg
import pytest

from afilo_db.data.export import export_tables, export_user
from afilo_db.data.seed import seed
from afilo_db.db import embedded
from afilo_db.db.embedded import EmbeddedServer
from afilo_db.files import private_atomic_file

pytestmark = pytest.mark.embedded_only("the embedded server's files")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_state_file_is_replaced_whole_and_private(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path / "home")
    server.home.mkdir()
    previous = os.umask(0o022)
    try:
        server._write_state({"password": "first", "port": 5})
        assert mode_of(server.home / "server.json") == 0o600
        inode = (server.home / "server.json").stat().st_ino

        class CrashError(Exception):
            pass

        def write_half() -> None:
            with private_atomic_file(server.home / "server.json") as out:
                out.write(b'{"password": "sec')
                raise CrashError

        # A crash while the new state is written leaves the old one readable, and no debris.
        with pytest.raises(CrashError):
            write_half()
        assert json.loads((server.home / "server.json").read_text())["password"] == "first"
        assert [path.name for path in server.home.iterdir()] == ["server.json"]

        server._write_state({"password": "second", "port": 5})
        assert (server.home / "server.json").stat().st_ino != inode  # renamed over, not rewritten
        assert mode_of(server.home / "server.json") == 0o600
    finally:
        os.umask(previous)


def test_exports_are_readable_by_their_owner_only(database_url: str, tmp_path: Path) -> None:
    with psycopg.connect(database_url) as connection:
        seed(connection, products=20)
        connection.commit()
        clerk_user_id = connection.execute(
            "SELECT clerk_user_id FROM user_profiles LIMIT 1"
        ).fetchone()
    assert clerk_user_id is not None
    previous = os.umask(0o022)
    try:
        export_user(database_url, str(clerk_user_id[0]), tmp_path / "user.json")
        export_tables(database_url, "csv", tmp_path / "tables")
    finally:
        os.umask(previous)
    assert mode_of(tmp_path / "user.json") == 0o600
    written = list((tmp_path / "tables").iterdir())
    assert written and all(mode_of(path) == 0o600 for path in written)


def test_parents_gain_search_permission_only(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    folder.mkdir(parents=True)
    for path in (tmp_path / "a", folder):
        path.chmod(0o700)
    embedded._let_others_traverse(folder)
    for path in (tmp_path / "a", folder):
        assert mode_of(path) == 0o701  # others may pass through, not list
