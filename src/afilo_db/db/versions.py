"""The PostgreSQL servers afilo-db supports, and the check that a configured one is among them.

The floor: PostgreSQL 15 (the oldest release Supabase offers, and the one the suite runs on
besides the embedded 18: `make test-pg15`), pgvector 0.8.0 (`hnsw.iterative_scan`, which the
knowledge search sets), btree_gist (the pricing tiers' EXCLUDE constraint).
Features of newer releases are used only after asking the server's version
(`server_version_at_least`): MAINTAIN (17), pg_input_is_valid (16), transaction_timeout (17).

The check runs once per process, on the first connection a command makes to a configured server
(`afilo_db.db.target.resolve_target`); it reads the version libpq already received when the
connection opened, and the extensions in one query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from afilo_db.errors import UnsupportedServerError

if TYPE_CHECKING:  # psycopg is imported when a connection is made: `db url` and --help need none
    import psycopg

MINIMUM_SERVER_VERSION = 150000
"""PostgreSQL 15, as libpq numbers versions (major * 10000 + minor)."""
NEWEST_TESTED_MAJOR = 18


@dataclass(frozen=True)
class RequiredExtension:
    name: str
    """As CREATE EXTENSION names it."""
    project: str
    """What a provider's documentation calls it."""
    minimum_version: str


REQUIRED_EXTENSIONS = (
    RequiredExtension("vector", "pgvector", "0.8.0"),
    RequiredExtension("btree_gist", "btree_gist (contrib)", "1.0"),
)

# The installed version where the extension exists, else the one CREATE EXTENSION would install
# (read only then: pg_available_extensions reads every control file on the server's disk).
_EXTENSIONS_QUERY = """
SELECT wanted.name, installed.extversion IS NOT NULL,
       coalesce(installed.extversion,
                (SELECT default_version FROM pg_available_extensions available
                  WHERE available.name = wanted.name))
  FROM unnest(%s::text[]) AS wanted(name)
  LEFT JOIN pg_extension installed ON installed.extname = wanted.name
"""


def version_key(version: str) -> tuple[int, ...]:
    """'0.8.0' -> (0, 8, 0); suffixes such as '-dev' or 'beta1' count as their numbers only."""
    return tuple(int(number) for number in re.findall(r"\d+", version))


def server_version_name(version_number: int) -> str:
    """libpq's 150018 -> '15.18'."""
    return f"{version_number // 10000}.{version_number % 10000}"


def server_version_at_least(connection: psycopg.Connection[Any], major: int) -> bool:
    """Whether the server is PostgreSQL `major` or newer (no round trip: libpq knows it)."""
    return connection.info.server_version >= major * 10000


def unsupported_reasons(
    server_version: int, extensions: dict[str, tuple[bool, str | None]]
) -> list[str]:
    """What is below the floor, one sentence each naming the version found and the one required.
    `extensions`: name -> (installed, version installed or else available, None if neither)."""
    reasons = []
    if server_version < MINIMUM_SERVER_VERSION:
        reasons.append(
            f"PostgreSQL {server_version_name(server_version)} found, "
            f"{server_version_name(MINIMUM_SERVER_VERSION).split('.')[0]} or newer required "
            f"(supported: 15 to {NEWEST_TESTED_MAJOR}); upgrade the server or ask the provider "
            "for a newer version"
        )
    for extension in REQUIRED_EXTENSIONS:
        installed, version = extensions.get(extension.name, (False, None))
        required = f"{extension.project} {extension.minimum_version} or newer required"
        if version is None:
            reasons.append(
                f"extension {extension.name} not available on the server, {required}: ask the "
                "provider (or the server's administrator) to install it"
            )
        elif version_key(version) < version_key(extension.minimum_version):
            state = "installed" if installed else "available"
            remedy = (
                f"ALTER EXTENSION {extension.name} UPDATE, as the extension's owner"
                if installed
                else f"ask the provider for a newer {extension.project}"
            )
            reasons.append(f"extension {extension.name} {version} {state}, {required}: {remedy}")
    return reasons


def check_server(connection: psycopg.Connection[Any]) -> None:
    """Raise UnsupportedServerError when the server or an extension is below the floor."""
    rows = connection.execute(
        _EXTENSIONS_QUERY, ([extension.name for extension in REQUIRED_EXTENSIONS],)
    ).fetchall()
    extensions = {str(name): (bool(installed), version) for name, installed, version in rows}
    reasons = unsupported_reasons(connection.info.server_version, extensions)
    if reasons:
        raise UnsupportedServerError("unsupported database server: " + "; ".join(reasons))


@lru_cache(maxsize=8)
def ensure_supported_server(url: str) -> None:
    """`check_server` on `url`, once per process and URL."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        check_server(connection)
