"""The seed is deterministic and writes consistent data."""

from __future__ import annotations

import psycopg

from afilo_db.data import seed
from afilo_db.data.up import data_table_names, table_counts


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


def seeded_tables() -> list[str]:
    """Every table of data (not configuration) but what is derived: the reports' rollups, which
    `analytics.rollups.refresh` makes from the events (and the days awaiting it, which the events'
    trigger marks), the knowledge base's sync queue, which the catalog's triggers fill, its word
    counts, which the knowledge base's triggers keep, the count of refused webhook
    deliveries, which a shop that refused none leaves empty, and the links from payments to
    invoices, which the webhook events' trigger writes from invoices naming their payments (the
    seed's name none)."""
    return [
        name
        for name in data_table_names()
        if not name.startswith("analytics_")
        and name
        not in (
            "knowledge_sync_queue", "knowledge_terms", "webhook_refusals",
            "stripe_invoice_payments",
        )
    ]  # fmt: skip


def test_another_seed_gives_other_data(connection: psycopg.Connection[tuple[object, ...]]) -> None:
    assert seed.product_plan(1, 0).row != seed.product_plan(2, 0).row
    seed.seed(connection, products=50, seed_value=1)
    connection.commit()
    counts = table_counts(connection)
    assert counts["products"] == 50
    assert all(counts[name] > 0 for name in seeded_tables()), counts


def test_progress_reports_every_table_and_row(
    connection: psycopg.Connection[tuple[object, ...]],
) -> None:
    """One honest bar: its total (the tables) is reached exactly when the last one is written,
    and the rows reported are the rows written."""
    reported: list[tuple[str, int, bool]] = []
    seed.seed(connection, products=1200, progress=lambda *report: reported.append(report))
    connection.commit()
    finished = [(table, rows) for table, rows, done in reported if done]
    assert [table for table, _rows in finished] == list(seed.SEED_TABLES)
    counts = table_counts(connection)
    assert sum(rows for _table, rows in finished) == sum(counts[name] for name in seeded_tables())
    assert all(counts[table] == rows for table, rows in finished)
    # Partial reports come before their table's final one and never exceed it.
    for table, rows, _done in reported:
        assert rows <= dict(finished)[table]
