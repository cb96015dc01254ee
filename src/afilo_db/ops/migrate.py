"""Applying and inspecting Alembic revisions."""

from __future__ import annotations

from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from afilo_db.db.urls import sqlalchemy_url
from afilo_db.migrations.support import alembic_config


def current_revision(url: str) -> str | None:
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("postgresql://")).get_current_head()


def pending_revisions(url: str) -> list[str]:
    """Revisions not yet applied, oldest first."""
    script = ScriptDirectory.from_config(alembic_config(url))
    current = current_revision(url)
    pending = [rev.revision for rev in script.iterate_revisions("heads", current)]
    return list(reversed(pending))


def deploy(url: str) -> list[str]:
    """Apply every pending revision; return the ones this call applied (empty: nothing to do).

    Safe to run concurrently: the environment holds an advisory lock, so a second run waits and
    then finds the version table at head.
    """
    config = alembic_config(url)
    command.upgrade(config, "head")
    return [
        str(revision) for revision, is_upgrade in config.attributes.get("steps", []) if is_upgrade
    ]


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)
