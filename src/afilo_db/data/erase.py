"""Erasing a user's personal data (the right to erasure), keeping what the law requires.

Every column declared `personal()` on the models, in every row that belongs to the user (see
ownership), becomes NULL or its declared replacement; the rows themselves stay, so billing
records (subscriptions, purchases) keep their amounts and totals do not move. The erasure is
recorded in user_activity_log, in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy import Column, Table

from afilo_db.data.ownership import Ownership, TableName, derive_ownership, find_user_id, qualified
from afilo_db.errors import ConflictError, NotFoundError
from afilo_db.models import Base, UserActivityLog

ERASED_ACTION = "user.erased"
ERASING_ACTOR = "afilo-db erase"


@dataclass(frozen=True)
class Erasure:
    user_id: Any
    rows: dict[str, int]
    """Rows anonymized, per table."""


def personal_columns(table: Table) -> list[Column[Any]]:
    return [column for column in table.columns if column.info.get("personal")]


def _model(table: TableName) -> Table | None:
    key = table[1] if table[0] == "public" else f"{table[0]}.{table[1]}"
    return Base.metadata.tables.get(key)


def _refuse_undescribed_tables(
    connection: psycopg.Connection[Any], ownership: Ownership, user_id: Any
) -> None:
    """A table holding the user's rows that no model describes may hold personal data nobody
    declared: refuse rather than report an erasure that left it behind."""
    undescribed = []
    for table in ownership.tables:
        if _model(table) is None:
            query = sql.SQL("SELECT count(*) FROM ({}) AS t").format(ownership.owned_rows(table))
            row = connection.execute(query, {"user_id": user_id}).fetchone()
            if row is not None and row[0]:
                undescribed.append(qualified(table))
    if undescribed:
        raise ConflictError(
            f"tables {', '.join(undescribed)} hold this user's rows but no model declares which of"
            " their columns are personal; add them to the models (personal() on those columns)"
        )


def erase_user(url: str, clerk_user_id: str) -> Erasure:
    """Erase the user's personal data in a transaction of its own (the operator command)."""
    with psycopg.connect(url) as connection:
        erasure = erase_user_in(connection, clerk_user_id)
        connection.commit()
    return erasure


def erase_user_in(
    connection: psycopg.Connection[Any],
    clerk_user_id: str,
    *,
    actor: str = ERASING_ACTOR,
    event_id: str | None = None,
) -> Erasure:
    """Erase the user's personal data in the caller's transaction (the caller commits), as the
    owner or as the service role (Clerk's user.deleted): the service role may blank personal
    columns and nothing else. `event_id` names the provider event that asked for it in the log."""
    user_id = find_user_id(connection, clerk_user_id)
    if user_id is None:
        raise NotFoundError(f"no user with clerk_user_id {clerk_user_id!r}")
    # Two erasures of one user at once would both pass the lookup; the row lock serializes.
    connection.execute("SELECT 1 FROM user_profiles WHERE id = %s FOR UPDATE", (user_id,))
    ownership = derive_ownership(connection)
    _refuse_undescribed_tables(connection, ownership, user_id)
    rows: dict[str, int] = {}
    for table in ownership.tables:
        model = _model(table)
        columns = personal_columns(model) if model is not None else []
        if not columns:
            continue
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(
                sql.Identifier(column.name), sql.SQL(column.info.get("erased") or "NULL")
            )
            for column in columns
        )
        cursor = connection.execute(
            sql.SQL("UPDATE {} AS t SET {} WHERE {}").format(
                sql.Identifier(*table), assignments, ownership.owned_condition(table)
            ),
            {"user_id": user_id},
        )
        rows[qualified(table)] = cursor.rowcount
    connection.execute(
        sql.SQL(
            "INSERT INTO {} (user_id, actor, action, entity_type, entity_id, details, event_id)"
            " VALUES (%s, %s, %s, 'user_profiles', %s, %s, %s)"
        ).format(sql.Identifier(UserActivityLog.__tablename__)),
        (user_id, actor, ERASED_ACTION, str(user_id), Jsonb({"anonymized_rows": rows}), event_id),
    )
    return Erasure(user_id=user_id, rows=rows)
