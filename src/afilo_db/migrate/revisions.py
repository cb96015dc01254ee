"""Applying and inspecting Alembic revisions."""

from __future__ import annotations

import hashlib
import io
import re
import sysconfig
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Column, MetaData, create_engine
from sqlalchemy.pool import NullPool

from afilo_db.db.urls import sqlalchemy_url
from afilo_db.errors import ConflictError, NotFoundError, OperationError, ValidationError
from afilo_db.migrations.rendering import build_indexes_concurrently
from afilo_db.migrations.support import (
    PACKAGED_VERSIONS,
    alembic_config,
    autogenerate_options,
    extra_versions_directory,
)
from afilo_db.models import Base


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


# -- the checklist's building blocks: revisions as files, their SQL, models against database ----

# Words that say nothing about a change: a revision named only with them is refused.
MEANINGLESS_WORDS = frozenset(
    [
        "update",
        "updates",
        "fix",
        "fixes",
        "change",
        "changes",
        "migration",
        "migrations",
        "misc",
        "wip",
        "tmp",
        "temp",
        "test",
        "stuff",
        "new",
        "schema",
        "db",
        "database",
        "edit",
        "edits",
        "patch",
        "auto",
        "rev",
        "revision",
    ]
)
# alembic_version.version_num is varchar(32).
REVISION_ID_LENGTH = 32


def revision_slug(message: str) -> str:
    """The file-name form of a revision's name; refuses an empty or meaningless name."""
    words = re.findall(r"[a-z0-9]+", message.lower())
    if not words:
        raise ValidationError({"name": "must describe the change, e.g. 'add product subtitle'"})
    if all(word in MEANINGLESS_WORDS or word.isdigit() for word in words):
        raise ValidationError(
            {"name": f"'{message}' says nothing about the change; name what changes and where"}
        )
    return "_".join(words)


def script_directory(url: str = "postgresql://") -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(url))


def revision_path(revision: str) -> Path:
    script = script_directory().get_revision(revision)
    if script is None or script.path is None:
        raise NotFoundError(f"revision {revision} not found")
    return Path(script.path)


def revision_checksum(revision: str) -> str:
    """sha256 of the revision file: what review, test and apply agree on."""
    return hashlib.sha256(revision_path(revision).read_bytes()).hexdigest()


def applied_revisions(url: str) -> list[str]:
    """Revisions the database has, oldest first."""
    current = current_revision(url)
    if current is None:
        return []
    script = script_directory(url)
    return list(reversed([rev.revision for rev in script.iterate_revisions(current, "base")]))


def model_differences(url: str, metadata: MetaData = Base.metadata) -> list[Any]:
    """What autogenerate would write to make the database match the models (empty: they match)."""
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts=autogenerate_options())
            differences: list[Any] = compare_metadata(context, metadata)
            return differences
    finally:
        engine.dispose()


_IN_MODELS_ONLY = "is in the models but not in the database"
_IN_DATABASE_ONLY = "is in the database but not in the models"


def _name_of(thing: Any) -> str:
    """What a schema object is called, for a person (never SQLAlchemy's repr)."""
    table = getattr(thing, "table", None)
    name = getattr(thing, "name", None) or getattr(thing, "identity", None)
    if isinstance(thing, Column) and table is not None:
        return f"column {table.name}.{thing.name} ({thing.type})"
    kind = type(thing).__name__.replace("Constraint", " constraint").replace("PG", "").lower()
    where = f" on {table.name}" if table is not None and getattr(table, "name", None) else ""
    return f"{kind.strip()} {name}{where}" if name else kind.strip()


def describe_difference(difference: Any) -> str:
    """One difference autogenerate found between the models and the database, in words."""
    if isinstance(difference, list):
        return "; ".join(describe_difference(item) for item in difference)
    if not isinstance(difference, tuple) or not difference:
        return _name_of(difference)
    kind, *rest = difference
    if kind.startswith("modify_") and len(rest) >= 6:
        _schema, table, column, _existing, database_value, model_value = rest[:6]
        what = kind.removeprefix("modify_")
        if what == "nullable":
            database_value = "NULL allowed" if database_value else "NOT NULL"
            model_value = "NULL allowed" if model_value else "NOT NULL"
        database_text = getattr(database_value, "arg", database_value)
        model_text = getattr(model_value, "arg", model_value)
        return (
            f"column {table}.{column}: {what} is {database_text} in the database, "
            f"{model_text} in the models"
        )
    subject = _name_of(rest[-1]) if rest else ""
    if kind.startswith(("add_", "create_")):
        return f"{subject} {_IN_MODELS_ONLY}"
    if kind.startswith(("remove_", "drop_")):
        return f"{subject} {_IN_DATABASE_ONLY}"
    return f"{kind.replace('_', ' ')}: {subject}"


def _next_revision_number() -> int:
    numbers = [
        int(match.group(1))
        for script in script_directory().walk_revisions()
        if (match := re.match(r"(\d+)_", script.revision))
    ]
    return max(numbers, default=0) + 1


def _format_with_ruff(config: Config) -> None:
    """Let a generated revision pass the project's lint (unused imports, formatting) when ruff is
    installed (a development checkout); an installed wheel writes it as Alembic renders it."""
    ruff = Path(sysconfig.get_path("scripts")) / "ruff"
    if not ruff.exists():
        return
    config.set_section_option("post_write_hooks", "hooks", "ruff_fix, ruff_format")
    for hook, arguments in (("ruff_fix", "check --fix --quiet"), ("ruff_format", "format --quiet")):
        config.set_section_option("post_write_hooks", f"{hook}.type", "exec")
        config.set_section_option("post_write_hooks", f"{hook}.executable", str(ruff))
        config.set_section_option(
            "post_write_hooks", f"{hook}.options", f"{arguments} REVISION_SCRIPT_FILENAME"
        )


def new_revision(url: str, message: str, metadata: MetaData = Base.metadata) -> Path | None:
    """Autogenerate a revision named after `message` from the difference between the models and
    the database (which must be at head). None when there is nothing to migrate."""
    slug = revision_slug(message)
    pending = pending_revisions(url)
    if pending:
        raise ConflictError(
            f"the database is not at head (pending: {', '.join(pending)}); "
            "apply them before generating a new revision"
        )
    if not model_differences(url, metadata):
        return None
    revision_id = f"{_next_revision_number():04d}_{slug}"[:REVISION_ID_LENGTH].rstrip("_")
    config = alembic_config(url)
    config.set_main_option("file_template", "%%(rev)s")
    config.attributes["target_metadata"] = metadata
    config.attributes["process_revision_directives"] = build_indexes_concurrently
    _format_with_ruff(config)
    directory = extra_versions_directory() or PACKAGED_VERSIONS
    script = command.revision(
        config, message=message, autogenerate=True, rev_id=revision_id, version_path=str(directory)
    )
    assert isinstance(script, Script) and script.path is not None
    return Path(script.path)


def revision_sql(url: str, revision: str) -> str:
    """The exact SQL `revision` runs on upgrade (Alembic offline mode), without the bookkeeping
    of alembic_version."""
    script = script_directory(url).get_revision(revision)
    if script is None:
        raise NotFoundError(f"revision {revision} not found")
    output = io.StringIO()
    config = alembic_config(url, output=output)
    down = script.down_revision
    if isinstance(down, tuple):
        raise OperationError(f"revision {revision} merges branches; review each branch instead")
    command.upgrade(config, f"{down}:{revision}" if down else revision, sql=True)
    return output.getvalue()


def upgrade_one(
    url: str,
    revision: str,
    session_settings: dict[str, str] | None = None,
    metadata: MetaData = Base.metadata,
) -> None:
    """Apply exactly `revision` (the next one), in one transaction of its own."""
    config = alembic_config(url)
    config.attributes["session_settings"] = session_settings or {}
    config.attributes["target_metadata"] = metadata
    command.upgrade(config, revision)
