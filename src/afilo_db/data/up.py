"""Whole-database operations the CLI's `up` and `db` commands are made of."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import NullPool, create_engine
from sqlalchemy.orm import Session

from afilo_db.data import seed as seeding
from afilo_db.db.urls import sqlalchemy_url
from afilo_db.knowledge.catalog import drain_queue
from afilo_db.knowledge.embedders import get_embedder
from afilo_db.migrate.revisions import deploy, pending_revisions
from afilo_db.models import Base


def table_names() -> list[str]:
    """Every table of the schema, parents before children."""
    return [table.name for table in Base.metadata.sorted_tables]


def data_table_names() -> list[str]:
    """The tables that hold data, not configuration (billing_settings): what `up` finds empty
    and `db seed --reset` empties."""
    return [
        table.name for table in Base.metadata.sorted_tables if not table.info.get("configuration")
    ]


def table_counts(connection: psycopg.Connection[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in table_names():
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))
        row = connection.execute(query).fetchone()
        counts[name] = int(row[0]) if row else 0
    return counts


def is_empty(connection: psycopg.Connection[Any]) -> bool:
    counts = table_counts(connection)
    return all(counts[name] == 0 for name in data_table_names())


def truncate_all(connection: psycopg.Connection[Any]) -> None:
    tables = sql.SQL(", ").join(sql.Identifier(name) for name in data_table_names())
    connection.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(tables))


@dataclass(frozen=True)
class UpResult:
    applied: list[str]
    seeded: bool
    counts: dict[str, int]


UpProgress = Callable[[str, int, int | None], None]
"""progress(phase, done, total or None when not known beforehand), phases in the order run."""

Populate = Callable[[Session, UpProgress], None]
"""Fill an empty database with the demo data, in the session's transaction (never committing)."""


def driver_connection(session: Session) -> psycopg.Connection[Any]:
    """The session's own psycopg connection, in its transaction (for COPY and the functions that
    take one)."""
    connection = session.connection().connection.driver_connection
    assert isinstance(connection, psycopg.Connection), "afilo-db runs on psycopg 3"
    return connection


def seed_catalog(session: Session, progress: UpProgress) -> psycopg.Connection[Any]:
    """The demo catalog and the sample knowledge base, without customers: the first step of a
    `Populate`. Gives the session's own psycopg connection (COPY, analytics `ingest`)."""
    connection = driver_connection(session)
    tables_done = 0

    def seeding_progress(_table: str, _rows: int, done: bool) -> None:
        nonlocal tables_done
        tables_done += int(done)
        progress("seeding the demo catalog (tables)", tables_done, len(seeding.SEED_TABLES))

    seeding.seed(connection, products=seeding.DEMO_PRODUCTS, users=0, progress=seeding_progress)
    return connection


def bring_up(
    url: str, populate: Populate, progress: UpProgress = lambda _phase, _done, _total: None
) -> UpResult:
    """Migrate to head and, if the database holds no data at all, fill it with `populate`, in one
    transaction: a failure leaves the database empty, and the next run tries again."""
    pending = len(pending_revisions(url))
    progress(f"migrating: {pending} pending revision(s)", 0, pending or None)
    applied = deploy(url)
    progress(f"migrating: {pending} pending revision(s)", len(applied), pending or None)
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with Session(engine) as session, session.begin():
            connection = driver_connection(session)
            seeded = False
            # Serialize concurrent `up` runs so the emptiness check and the seed are one decision.
            connection.execute("SELECT pg_advisory_xact_lock(hashtext('afilo-db up'))")
            if is_empty(connection):
                populate(session, progress)
                # The demo catalog is small: its passages are embedded now, not left queued.
                embedded = 0

                def embedding_progress(chunks: int) -> None:
                    nonlocal embedded
                    embedded += chunks
                    progress("embedding the catalog's passages", embedded, None)

                progress("loading the embedding model", 0, None)
                embedder = get_embedder()
                drain_queue(connection, embedder=embedder, progress=embedding_progress)
                seeded = True
            counts = table_counts(connection)
        return UpResult(applied=applied, seeded=seeded, counts=counts)
    finally:
        engine.dispose()
