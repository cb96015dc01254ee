"""What the Alembic environment and the migrate operations share."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TextIO

from alembic.config import Config

from afilo_db.config import get_settings
from afilo_db.migrations import comparators, entities
from afilo_db.models.analytics import EVENT_PARTITION_PREFIX

# Advisory lock key held (for the session) while migrations run: 'afilo-mg' as a 64-bit integer.
MIGRATION_LOCK_KEY = int.from_bytes(b"afilo-mg", "big", signed=True)

# afilo-db's own bookkeeping (which revision was reviewed, tested, applied, ...): kept out of the
# models and out of the revision chain, created on demand.
OPS_SCHEMA = "afilo_ops"

PACKAGED_VERSIONS = Path(__file__).parent / "versions"

# Importing these registers them with Alembic; the names are kept for readers.
CUSTOM_COMPARATORS = (
    comparators.compare_check_and_exclude_constraints,
    comparators.compare_index_definitions,
    entities.compare_policies,
)
entities.register()


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Leave out of autogenerate the monthly partitions of `events` (data, not schema) and
    afilo-db's bookkeeping schema."""
    if type_ == "schema":
        return name != OPS_SCHEMA
    return not (type_ == "table" and name is not None and name.startswith(EVENT_PARTITION_PREFIX))


def autogenerate_options() -> dict[str, Any]:
    """MigrationContext options every comparison between models and database uses."""
    return {"include_name": include_name, "compare_type": True, "include_schemas": False}


def extra_versions_directory() -> Path | None:
    """Where `migrate new` writes, in addition to the packaged revisions (AFILO_MIGRATIONS_DIR)."""
    return get_settings().afilo_migrations_dir


def alembic_config(url: str, output: TextIO | None = None) -> Config:
    config = Config(output_buffer=output)
    config.set_main_option("script_location", "afilo_db:migrations")
    locations = [PACKAGED_VERSIONS]
    extra = extra_versions_directory()
    if extra is not None:
        extra.mkdir(parents=True, exist_ok=True)
        locations.append(extra.resolve())
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(str(path) for path in locations))
    # Passed as an attribute, not an ini option: ini values treat '%' in passwords specially.
    config.attributes["url"] = url
    return config
