"""Alembic environment: run by `afilo-db migrate ...` through afilo_db.migrate.revisions, never by hand."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from afilo_db.db.urls import sqlalchemy_url
from afilo_db.migrations.support import MIGRATION_LOCK_KEY, autogenerate_options, include_name
from afilo_db.models import Base

LOCK_POLL_SECONDS = 0.2

config = context.config
# Callers may compare against other models (tests, benchmarks) and tune the run (apply).
target_metadata = config.attributes.get("target_metadata", Base.metadata)
session_settings: dict[str, str] = config.attributes.get("session_settings", {})


def _record_step(
    ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
) -> None:
    """Tell the caller which revisions this run applied or reverted (not a concurrent run)."""
    config.attributes.setdefault("steps", []).append(
        (step.up_revision_id if step.is_upgrade else step.down_revision_ids, step.is_upgrade)
    )


def run_migrations_offline() -> None:
    context.configure(
        url=sqlalchemy_url(config.attributes["url"]),
        target_metadata=target_metadata,
        literal_binds=True,
        include_name=include_name,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _wait_for_the_migration_lock(connection: Connection) -> None:
    """Concurrent deploys: the second waits here, then reads the version table afresh
    (run_migrations reads it after this) and finds nothing left to do.

    A session lock, not a transaction's: a revision that builds an index concurrently commits
    half-way (autocommit_block), which would release a transaction's lock to the other deploy.
    Tried, not waited for inside a statement: CREATE INDEX CONCURRENTLY waits for every open
    transaction to end, the waiting deploy's included, and the two would deadlock."""
    while True:
        taken = connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
        ).scalar_one()
        connection.commit()
        if taken:
            return
        time.sleep(LOCK_POLL_SECONDS)


def run_migrations_online() -> None:
    engine = create_engine(sqlalchemy_url(config.attributes["url"]), poolclass=NullPool)
    with engine.connect() as connection:
        for name, value in session_settings.items():
            connection.execute(
                text("SELECT set_config(:name, :value, false)"), {"name": name, "value": value}
            )
        connection.commit()
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            on_version_apply=_record_step,
            process_revision_directives=config.attributes.get("process_revision_directives"),
            **autogenerate_options(),
        )
        _wait_for_the_migration_lock(connection)
        try:
            with context.begin_transaction():
                context.run_migrations()
        finally:
            # A lost connection has released it already.
            with contextlib.suppress(DBAPIError):
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
                connection.commit()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
