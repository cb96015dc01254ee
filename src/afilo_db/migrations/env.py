"""Alembic environment: run by `afilo-db migrate ...` through afilo_db.ops.migrate, never by hand."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from afilo_db.db.urls import sqlalchemy_url
from afilo_db.migrations.support import MIGRATION_LOCK_KEY, include_name
from afilo_db.models import Base

config = context.config


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
        target_metadata=Base.metadata,
        literal_binds=True,
        include_name=include_name,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(sqlalchemy_url(config.attributes["url"]), poolclass=NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            include_name=include_name,
            compare_type=True,
            on_version_apply=_record_step,
        )
        with context.begin_transaction():
            # Concurrent deploys: the second waits here, then reads the version table afresh
            # (run_migrations reads it after this) and finds nothing left to do.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
