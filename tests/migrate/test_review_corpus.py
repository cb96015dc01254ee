"""`migrate review` on a corpus of migrations written for it (tests/migration_corpus/*.sql),
each with the findings it must produce, against a seeded database.

A corpus file starts with comment lines: `-- expect: rule:severity, ...` (the afilo-db findings,
exactly; empty for a safe migration) and optionally `-- in-transaction: no` (the SQL runs outside
a transaction block, as in an autocommit block).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from afilo_db.data.seed import seed
from afilo_db.db.embedded import EmbeddedServer
from afilo_db.migrate.review import measuring, review_sql
from tests.conftest import create_database, drop_database

CORPUS = sorted((Path(__file__).parent.parent / "migration_corpus").glob("*.sql"))


def directives(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        if not line.startswith("-- "):
            break
        key, _, value = line[3:].partition(":")
        found[key.strip()] = value.strip()
    return found


@pytest.fixture(scope="module")
def seeded_url(server: EmbeddedServer, template_database: str) -> Iterator[str]:
    name = f"corpus_{os.getpid()}"
    url = create_database(server, name, template=template_database)
    with psycopg.connect(url) as connection:
        seed(connection, products=30)
        connection.commit()
    yield url
    drop_database(server, name)


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30
    safe = [path for path in CORPUS if not directives(path)["expect"]]
    assert len(safe) >= 8 and len(CORPUS) - len(safe) >= 20


@pytest.mark.parametrize("path", CORPUS, ids=[path.stem for path in CORPUS])
def test_review_finds_what_the_migration_must_produce(seeded_url: str, path: Path) -> None:
    wanted = directives(path)
    expected = {item.strip() for item in wanted["expect"].split(",") if item.strip()}
    with measuring(seeded_url) as measurer:
        review = review_sql(
            measurer, path.read_text(), in_transaction=wanted.get("in-transaction") != "no"
        )
    found = {
        f"{finding.rule}:{finding.severity}"
        for statement in review.statements
        for finding in statement.findings
    }
    assert found == expected
    assert review.passed == (not any(item.endswith(":error") for item in expected))
