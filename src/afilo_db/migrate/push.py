"""`db push`: make the database match the models without writing a revision (development only,
as `prisma db push`). Changes that lose data are measured first and refused unless accepted."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import psycopg
from alembic.autogenerate import produce_migrations
from alembic.operations import Operations, ops
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, create_engine
from sqlalchemy.pool import NullPool

from afilo_db.db.urls import sqlalchemy_url
from afilo_db.errors import ConflictError
from afilo_db.migrate import revisions
from afilo_db.migrate.review import Finding, measuring, review_sql
from afilo_db.migrations.support import autogenerate_options
from afilo_db.models import Base

# Review findings that mean rows or values would be lost, or rows already break the change.
LOSS_RULES = ("data-loss", "constraint-violated")


@dataclass
class PushResult:
    changes: list[str] = field(default_factory=list)
    sql: str = ""
    accepted_losses: list[Finding] = field(default_factory=list)
    reset: bool = False


def _flatten(operations: list[ops.MigrateOperation]) -> list[ops.MigrateOperation]:
    flat: list[ops.MigrateOperation] = []
    for operation in operations:
        if isinstance(operation, ops.OpContainer):
            flat.extend(_flatten(list(operation.ops)))
        else:
            flat.append(operation)
    return flat


def _as_sql(operations: list[ops.MigrateOperation]) -> str:
    buffer = io.StringIO()
    context = MigrationContext.configure(
        dialect_name="postgresql",
        opts={"as_sql": True, "output_buffer": buffer, "literal_binds": True},
    )
    runner = Operations(context)
    for operation in operations:
        runner.invoke(operation)
    return buffer.getvalue()


def reset_schema(url: str) -> None:
    """Drop the public schema with everything in it, recreate it and migrate to head."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")
    revisions.deploy(url)


def push(
    url: str,
    accept_data_loss: bool = False,
    force_reset: bool = False,
    metadata: MetaData = Base.metadata,
) -> PushResult:
    result = PushResult(reset=force_reset)
    if force_reset:
        reset_schema(url)
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            context = MigrationContext.configure(connection, opts=autogenerate_options())
            script = produce_migrations(context, metadata)
            assert script.upgrade_ops is not None
            operations = _flatten(list(script.upgrade_ops.ops))
            if not operations:
                return result
            result.sql = _as_sql(operations)
            with measuring(url) as measurer:
                review = review_sql(measurer, result.sql)
            losses = [finding for finding in review.findings if finding.rule in LOSS_RULES]
            if losses and not accept_data_loss:
                raise ConflictError(
                    "refusing to push changes that lose data or that existing rows break "
                    "(use --accept-data-loss): " + "; ".join(loss.message for loss in losses)
                )
            result.accepted_losses = losses
            runner = Operations(context)
            for operation in operations:
                runner.invoke(operation)
                result.changes.append(_as_sql([operation]).strip())
    finally:
        engine.dispose()
    return result
