"""What the Alembic environment and the migrate operations share."""

from __future__ import annotations

from alembic.config import Config

from afilo_db.models.analytics import EVENT_PARTITION_PREFIX

# pg_advisory_xact_lock key held while migrations run: 'afilo-mg' as a 64-bit integer.
MIGRATION_LOCK_KEY = int.from_bytes(b"afilo-mg", "big", signed=True)


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Leave the monthly partitions of `events` out of autogenerate: they are data, not schema."""
    return not (type_ == "table" and name is not None and name.startswith(EVENT_PARTITION_PREFIX))


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "afilo_db:migrations")
    # Passed as an attribute, not an ini option: ini values treat '%' in passwords specially.
    config.attributes["url"] = url
    return config
