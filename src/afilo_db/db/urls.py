"""Connection URLs: the libpq form people paste (Neon, Prisma) to what SQLAlchemy and psycopg take."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

# Query parameters some tools add for their own use; libpq refuses unknown ones.
_NON_LIBPQ_PARAMETERS = ("pgbouncer", "connection_limit", "pool_timeout", "schema")


def make_url(url: str) -> URL:
    """SQLAlchemy's URL parser, imported on first use: commands that never parse a URL (`db url`
    on the embedded server, `--help`) then start without importing SQLAlchemy."""
    from sqlalchemy.engine import make_url as parse

    return parse(url)


def is_pooled(url: str) -> bool:
    """True when the URL goes through a transaction-mode pooler (PgBouncer, Neon's -pooler host),
    where server-side prepared statements and session state do not survive a transaction."""
    parsed = make_url(url)
    flag = str(parsed.query.get("pgbouncer", "")).lower()
    return flag in ("1", "true", "yes") or "-pooler" in (parsed.host or "")


def sqlalchemy_url(url: str) -> URL:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {parsed.render_as_string(hide_password=True)}")
    return parsed.set(drivername="postgresql+psycopg").difference_update_query(
        _NON_LIBPQ_PARAMETERS
    )


def libpq_url(url: str) -> str:
    """The URL for psycopg.connect, pg_dump and psql (no driver suffix, no foreign parameters)."""
    return sqlalchemy_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def with_database(url: str, database: str) -> str:
    """The same server and credentials, another database (libpq form; for CREATE, DROP and
    RENAME DATABASE, which cannot run in the database they act on)."""
    return libpq_url(make_url(url).set(database=database).render_as_string(hide_password=False))


def database_name(url: str) -> str:
    name = make_url(url).database
    if not name:
        raise ValueError(f"the URL names no database: {redacted(url)}")
    return name
