"""The backups' seeded database: made once per test process as a template, copied per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from afilo_db.data import seed
from afilo_db.db.embedded import EmbeddedServer
from tests.conftest import database_copy, template_of_the_process

# More than the demo's products, with a seed value of their own: backups and restores of every
# kind of row, compared table by table.
PRODUCTS = 60
SEED_VALUE = 3


@pytest.fixture(scope="session")
def backup_template(server: EmbeddedServer, template_database: str) -> Iterator[str]:
    """The seed that backups are taken of, written once per test process: each test that backs
    it up, damages or restores it works on a copy of its own (seeded_url)."""
    yield from template_of_the_process(
        server,
        f"backup_seeded_{os.getpid()}",
        template_database,
        lambda connection: seed.seed(connection, products=PRODUCTS, seed_value=SEED_VALUE),
    )


@pytest.fixture
def seeded_url(server: EmbeddedServer, backup_template: str) -> Iterator[str]:
    yield from database_copy(server, backup_template, "backup")


@pytest.fixture
def backups(tmp_path: Path) -> Path:
    return tmp_path / "backups"
