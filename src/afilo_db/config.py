"""Settings, read from the environment and from a `.env` file in the working directory."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="The application's URL; may point at a pooler (PgBouncer, Neon's -pooler host).",
    )
    direct_url: str | None = Field(
        default=None,
        description="Un-pooled URL for migrations, backups and admin work; defaults to DATABASE_URL.",
    )
    replica_url: str | None = Field(
        default=None,
        description="A read replica (a Neon read replica in production) the reports read from "
        "when it is healthy.",
    )
    replica_max_lag_seconds: float = Field(
        default=30.0,
        ge=0,
        le=86_400,
        description="A replica further behind the primary than this is skipped by the reports.",
    )
    service_database_url: str | None = Field(
        default=None,
        description="Trusted back-end work (webhook handlers, admin jobs), as the service role.",
    )
    afilo_home: Path = Field(
        default=Path(".afilo"),
        description="Where the embedded server keeps its data (and, later, backups).",
    )
    afilo_migrations_dir: Path | None = Field(
        default=None,
        description="A directory of revisions besides the packaged ones; `migrate new` writes there.",
    )

    db_pool_size: int = Field(default=5, ge=1, le=100, description="Connections kept open.")
    db_max_overflow: int = Field(
        default=5, ge=0, le=100, description="Extra connections allowed under load."
    )
    db_pool_timeout_seconds: float = Field(
        default=10, gt=0, description="How long to wait for a free connection."
    )
    db_pool_ping_after_idle_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Ping a pooled connection before use when it has been idle this long "
        "(0: before every use).",
    )
    db_pooler_prepared_statements: bool = Field(
        default=False,
        description="The transaction-mode pooler keeps protocol-level prepared statements "
        "(PgBouncer >= 1.21 with max_prepared_statements, as Neon's): prepare behind it too.",
    )
    db_statement_timeout_ms: int = Field(
        default=15_000, ge=0, description="Default statement timeout; 0 disables it."
    )

    afilo_review_tiny_rows: int = Field(
        default=0,
        ge=0,
        description="`migrate review`: a table of at most this many rows is tiny; a statement "
        "that blocks it while working through it is a note there, an error elsewhere.",
    )
    afilo_review_large_rows: int = Field(
        default=10_000,
        ge=1,
        description="`migrate review`: from this many rows a table is large; scans under a "
        "lock and one UPDATE of this many rows are errors, not warnings.",
    )
    afilo_review_large_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1,
        description="`migrate review`: from this many bytes (with indexes and TOAST) a table "
        "is large, whatever its row count.",
    )
    afilo_review_measure_timeout: str = Field(
        default="60s",
        pattern=r"^\s*\d+(\.\d+)?\s*(us|ms|s|min|h|d)?\s*$",
        description="`migrate review`: how long one measurement, or one statement on the "
        "rehearsal copy, may take (lock waits included) before it counts as unmeasured, an "
        "error.",
    )

    afilo_inspect_statement_timeout_ms: int = Field(
        default=10_000,
        ge=1,
        le=600_000,
        description="`inspect`: how long one of its queries may run before it is cancelled.",
    )
    afilo_inspect_cache_hit_min: float = Field(
        default=0.99,
        ge=0,
        le=1,
        description="`inspect check`: tables or indexes served from shared buffers less often "
        "than this (a fraction) are a bad verdict.",
    )
    afilo_inspect_dead_tuples_max: float = Field(
        default=0.20,
        ge=0,
        le=1,
        description="`inspect check`: a table whose dead rows are more than this fraction of "
        "its rows (and at least 50) is bloated.",
    )
    afilo_inspect_transaction_max_minutes: float = Field(
        default=5.0,
        gt=0,
        description="`inspect check`: a transaction open longer than this is a bad verdict.",
    )
    afilo_inspect_blocked_max_seconds: float = Field(
        default=5.0,
        ge=0,
        description="`inspect check`: a session waiting on another's lock longer than this is "
        "a bad verdict.",
    )
    afilo_inspect_min_table_scans: int = Field(
        default=100,
        ge=0,
        description="`inspect check`: an index is judged unused only once its table has been "
        "read this many times since the statistics reset.",
    )
    afilo_inspect_min_table_rows: int = Field(
        default=10_000,
        ge=0,
        description="`inspect`: a table estimated smaller than this is best read by a scan: "
        "its indexes are not judged unused, and `suggest` proposes none for it.",
    )

    afilo_studio_password: SecretStr | None = Field(
        default=None,
        description="The studio's login password; unset: a one-time token is printed at start.",
    )

    stripe_webhook_secret: SecretStr | None = Field(
        default=None, description="Stripe's signing secret of the webhook endpoint (whsec_...)."
    )
    clerk_webhook_secret: SecretStr | None = Field(
        default=None,
        description="Clerk's (Svix) signing secret of the webhook endpoint (whsec_...).",
    )
    clerk_jwks_url: str | None = Field(
        default=None,
        description="Clerk's published keys, https://<frontend-api>/.well-known/jwks.json.",
    )
    clerk_issuer: str | None = Field(
        default=None,
        description="The `iss` Clerk session tokens must carry (the Frontend API URL).",
    )
    clerk_authorized_parties: tuple[str, ...] = Field(
        default=(), description="Origins a session token's `azp` may name; empty: not checked."
    )

    @field_validator("database_url", "direct_url", "replica_url", "service_database_url")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @property
    def uses_embedded_server(self) -> bool:
        return self.database_url is None

    @property
    def home(self) -> Path:
        return self.afilo_home.expanduser().resolve()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
