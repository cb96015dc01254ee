"""Declarative base, naming convention and the column types every domain shares."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from sqlalchemy import DateTime, MetaData, Text, func, text
from sqlalchemy.orm import DeclarativeBase, mapped_column

# Names read well in errors and migrations: ck_products_handle_format, uq_products_handle, ...
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}

# Time-ordered UUIDs keep inserts at the right edge of the primary-key index. The function is
# created by the baseline migration (PostgreSQL < 18 has no uuidv7()).
UUID7_DEFAULT = text("uuid_generate_v7()")

UuidPk = Annotated[uuid.UUID, mapped_column(primary_key=True, server_default=UUID7_DEFAULT)]
CreatedAt = Annotated[
    datetime, mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
]
UpdatedAt = Annotated[
    datetime,
    mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    ),
]
Currency = Annotated[str, mapped_column(Text, nullable=False, server_default="USD")]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        str: Text,
        datetime: DateTime(timezone=True),
    }


def personal(erased: str | None = None) -> dict[str, object]:
    """Column `info` marking personal data, the one list that export, erasure and their tests read.

    On erasure the value becomes NULL, or the SQL expression `erased` where the column cannot be
    NULL (it may use the row's other columns, e.g. its id, to stay unique).
    """
    return {"personal": True, "erased": erased}


def performance_critical() -> dict[str, object]:
    """`info` of an index (or of a unique column, for its unique index) that a hot read relies on,
    the one list `afilo-db inspect check` reads: such an index must exist, be valid, and have
    been used since the statistics reset (the tests prove with EXPLAIN that the reads can use it)."""
    return {"performance_critical": True}


def references(target: str) -> dict[str, object]:
    """Column `info` for a reference the database does not enforce (no foreign key), given as
    'table.column', so that ownership derived from foreign keys still follows it."""
    return {"references": target}
