"""Which database afilo-db talks to: the configured one, or the embedded server started on demand."""

from __future__ import annotations

from dataclasses import dataclass

from afilo_db.config import Settings, get_settings
from afilo_db.db.embedded import APPLICATION_ROLE, SERVICE_LOGIN_ROLE, EmbeddedServer
from afilo_db.db.urls import is_pooled, libpq_url
from afilo_db.db.versions import ensure_supported_server


@dataclass(frozen=True)
class DatabaseTarget:
    app_url: str
    """What the application connects with (may be pooled); on the embedded server the
    application role, held to row-level security (its login is set up by `afilo-db up`)."""
    direct_url: str
    """Un-pooled: migrations, backups, admin work."""
    embedded: EmbeddedServer | None
    app_url_is_pooled: bool = False
    """Whether `app_url` goes through a transaction-mode pooler: decided on the configured URL,
    since `?pgbouncer=true` is not a libpq parameter and is not kept in `app_url`."""
    service_url: str | None = None
    """Trusted back-end work (webhooks, jobs) as the service role: SERVICE_DATABASE_URL, or on
    the embedded server that role with its generated password (set up by `afilo-db up`)."""


def embedded_server(settings: Settings | None = None) -> EmbeddedServer:
    return EmbeddedServer((settings or get_settings()).home)


def resolve_target(
    settings: Settings | None = None, *, check_version: bool = True
) -> DatabaseTarget:
    """The configured database, or the embedded one (started if it is not running).

    A configured server is checked against the supported versions once per process (one
    connection; `check_version=False` for commands that only print its URLs). The embedded
    server is not: it is the wheel's PostgreSQL 18 and pgvector, which the suite runs on."""
    settings = settings or get_settings()
    if settings.database_url is not None:
        direct = settings.direct_url or settings.database_url
        service = settings.service_database_url
        if check_version:
            ensure_supported_server(libpq_url(direct))
        return DatabaseTarget(
            libpq_url(settings.database_url),
            libpq_url(direct),
            None,
            app_url_is_pooled=is_pooled(settings.database_url),
            service_url=libpq_url(service) if service else None,
        )
    server = embedded_server(settings)
    server.start()
    return DatabaseTarget(
        server.role_url(APPLICATION_ROLE),
        server.url(),
        server,
        service_url=server.role_url(SERVICE_LOGIN_ROLE),
    )
