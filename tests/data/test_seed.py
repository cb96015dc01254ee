"""The seed is deterministic and writes consistent data."""

from __future__ import annotations

import psycopg

from afilo_db.data import seed
from afilo_db.data.up import data_table_names, table_counts, table_names


def table_fingerprints(connection: psycopg.Connection[tuple[object, ...]]) -> dict[str, str]:
    fingerprints = {}
    for name in data_table_names():
        row = connection.execute(
            f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {name} t"
        ).fetchone()
        assert row is not None
        fingerprints[name] = str(row[0])
    return fingerprints


def test_same_seed_gives_the_same_data(database_url: str, empty_database_url: str) -> None:
    from afilo_db.migrate.revisions import deploy

    deploy(empty_database_url)
    fingerprints = []
    for url in (database_url, empty_database_url):
        with psycopg.connect(url) as connection:
            seed.seed(connection, products=300, seed_value=7)
            connection.commit()
            fingerprints.append(table_fingerprints(connection))
    assert fingerprints[0] == fingerprints[1]


def test_another_seed_gives_other_data(connection: psycopg.Connection[tuple[object, ...]]) -> None:
    assert seed.product_plan(1, 0).row != seed.product_plan(2, 0).row
    seed.seed(connection, products=50, seed_value=1)
    connection.commit()
    counts = table_counts(connection)
    assert counts["products"] == 50
    assert all(counts[name] > 0 for name in table_names()), counts


def test_progress_reports_every_row(connection: psycopg.Connection[tuple[object, ...]]) -> None:
    reported: list[int] = []
    seed.seed(connection, products=120, progress=reported.append)
    connection.commit()
    counts = table_counts(connection)
    assert sum(reported) == sum(counts[name] for name in data_table_names())
