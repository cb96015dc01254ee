"""Alembic environment: run by `afilo-db migrate ...` through afilo_db.migrate.revisions, never by hand."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from afilo_db.db.urls import sqlalchemy_url
from afilo_db.migrations.support import MIGRATION_LOCK_KEY, autogenerate_options, include_name
from afilo_db.models import Base

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
