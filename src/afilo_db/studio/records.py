"""A record and what hangs on it, read from the schema's foreign keys: the rows that point at it,
the rows it points at, and what deleting it would take along, detach or be refused by.

Everything here follows `Base.metadata`, so a table added to the models is covered without a line
of code here. Used by the studio to link related records and to word its delete confirmations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from sqlalchemy import (
    ColumnElement,
    ForeignKeyConstraint,
    Select,
    Table,
    and_,
    func,
    select,
    tuple_,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from afilo_db.data.ownership import derive_ownership, qualified
from afilo_db.models import Base

# The column that names a row to a person, first found wins; else its primary key.
LABEL_COLUMNS = ("title", "handle", "sku", "email", "stripe_subscription_id", "action", "role")
RELATED_ROWS_SHOWN = 10
_MAX_CASCADE_DEPTH = 8
# Generated or bulky columns that a listing of rows leaves out.
_NOT_LISTED = {"searchable_text", "embedding", "quantity_range", "description"}
_SHOWN_CHARACTERS = 120


def table(name: str) -> Table:
    return Base.metadata.tables[name]


def label_column(source: Table) -> str:
    return next((name for name in LABEL_COLUMNS if name in source.c), _primary_key(source)[0])


def _primary_key(source: Table) -> list[str]:
    return [column.name for column in source.primary_key.columns]


def _inbound(target: Table) -> list[tuple[Table, ForeignKeyConstraint]]:
    """Every foreign key of any table that references `target`, in a stable order."""
    found = [
        (child, constraint)
        for child in Base.metadata.sorted_tables
        for constraint in child.foreign_key_constraints
        if constraint.referred_table is target
    ]
    return sorted(found, key=lambda item: (item[0].name, item[1].column_keys))


def _is_association(source: Table) -> bool:
    """A membership table: its primary key is made of foreign keys only."""
    foreign = {column.name for column in source.columns if column.foreign_keys}
    return set(_primary_key(source)) <= foreign and len(source.foreign_key_constraints) == 2


def _references(constraint: ForeignKeyConstraint, parents: Select[Any]) -> ColumnElement[bool]:
    """`constraint`'s columns hold the key of one of the `parents` rows (a select of the
    referenced columns, in the constraint's order)."""
    local = [element.parent for element in constraint.elements]
    if len(local) == 1:
        return local[0].in_(parents)
    return tuple_(*local).in_(parents)


def key_condition(source: Table, key: Mapping[str, Any]) -> ColumnElement[bool]:
    return and_(*(source.c[name] == value for name, value in key.items()))


@dataclass(frozen=True)
class RelatedRow:
    key: dict[str, str]
    label: str


@dataclass(frozen=True)
class RelatedGroup:
    """Rows of `table` related to the record through a foreign key on `via`; `column` is the
    key's column that holds the record's primary key (what a list of `via` filters on), or None
    when the record's primary key has more than one column."""

    table: str
    via: str
    column: str | None
    count: int
    rows: list[RelatedRow]


def _holding_primary_key(constraint: ForeignKeyConstraint, target: Table) -> str | None:
    """The column of `constraint` that references `target`'s one-column primary key. A key may
    repeat more of the target's columns beside it (a variant's product status)."""
    keys = _primary_key(target)
    return next(
        (element.parent.name for element in constraint.elements if [element.column.name] == keys),
        None,
    )


@dataclass(frozen=True)
class Reference:
    """A row the record points at through its foreign key `column`."""

    column: str
    table: str
    key: dict[str, str]
    label: str


def _related_rows(session: Session, source: Table, condition: Any) -> list[RelatedRow]:
    label = label_column(source)
    keys = _primary_key(source)
    order = source.c["created_at"].desc() if "created_at" in source.c else source.c[keys[0]]
    statement = (
        select(*(source.c[name] for name in keys), source.c[label])
        .where(condition)
        .order_by(order)
        .limit(RELATED_ROWS_SHOWN)
    )
    return [
        RelatedRow(
            key={name: str(row[index]) for index, name in enumerate(keys)}, label=str(row[-1])
        )
        for row in session.execute(statement)
    ]


def related_groups(session: Session, table_name: str, key: Mapping[str, Any]) -> list[RelatedGroup]:
    """The rows that point at the record, table by table: a count and the newest few. Through a
    membership table the rows on its other side are given (product -> collections)."""
    target = table(table_name)
    groups: list[RelatedGroup] = []
    for child, constraint in _inbound(target):
        referenced = [element.column for element in constraint.elements]
        this_record = select(*referenced).where(key_condition(target, key))
        pointing = _references(constraint, this_record)
        column = _holding_primary_key(constraint, target)
        count = session.execute(
            select(func.count()).select_from(child).where(pointing)
        ).scalar_one()
        groups.append(
            RelatedGroup(
                child.name, child.name, column, count, _related_rows(session, child, pointing)
            )
        )
        if _is_association(child):
            other = next(c for c in child.foreign_key_constraints if c is not constraint)
            far = other.referred_table
            members = select(*(element.parent for element in other.elements)).where(pointing)
            far_key = [element.column for element in other.elements]
            condition = (
                far_key[0].in_(members) if len(far_key) == 1 else tuple_(*far_key).in_(members)
            )
            groups.append(
                RelatedGroup(
                    far.name, child.name, column, count, _related_rows(session, far, condition)
                )
            )
    return groups


def references(session: Session, table_name: str, key: Mapping[str, Any]) -> list[Reference]:
    """The rows the record points at, one per foreign key that is set."""
    source = table(table_name)
    row = session.execute(select(source).where(key_condition(source, key))).mappings().first()
    if row is None:
        return []
    found: list[Reference] = []
    for constraint in source.foreign_key_constraints:
        values = {element.column.name: row[element.parent.name] for element in constraint.elements}
        if any(value is None for value in values.values()):
            continue
        parent = constraint.referred_table
        parent_keys = _primary_key(parent)
        label = label_column(parent)
        hit = session.execute(
            select(*(parent.c[name] for name in parent_keys), parent.c[label]).where(
                key_condition(parent, values)
            )
        ).first()
        if hit is not None:
            found.append(
                Reference(
                    column=", ".join(constraint.column_keys),
                    table=parent.name,
                    key={name: str(hit[index]) for index, name in enumerate(parent_keys)},
                    label=str(hit[-1]),
                )
            )
    return found


@dataclass
class DeletionEffects:
    """What deleting a record does to other rows, by table: deleted with it (ON DELETE CASCADE,
    followed down), detached from it (SET NULL), or in the way (RESTRICT / NO ACTION: the
    database refuses the delete while any is there)."""

    deleted: dict[str, int] = field(default_factory=dict)
    detached: dict[str, int] = field(default_factory=dict)
    blocking: dict[str, int] = field(default_factory=dict)

    def describe(self) -> list[str]:
        def listed(counts: dict[str, int]) -> str:
            return ", ".join(f"{count:,} {name}" for name, count in counts.items())

        lines = []
        if self.blocking:
            lines.append(f"Refused while these point at it: {listed(self.blocking)}.")
        if self.deleted:
            lines.append(f"Also deletes: {listed(self.deleted)}.")
        if self.detached:
            lines.append(f"Unlinks (keeps, with the reference emptied): {listed(self.detached)}.")
        if not lines:
            lines.append("Nothing else refers to it: only this row is deleted.")
        return lines


def _add(counts: dict[str, int], name: str, count: int) -> None:
    if count:
        counts[name] = counts.get(name, 0) + count


def deletion_effects(session: Session, table_name: str, key: Mapping[str, Any]) -> DeletionEffects:
    """Counted in the database now; the delete itself is still decided by the database."""
    target = table(table_name)
    effects = DeletionEffects()
    _follow(
        session,
        target,
        lambda columns: select(*columns).where(key_condition(target, key)),
        effects,
        0,
    )
    return effects


def _follow(
    session: Session, parent: Table, parent_rows: Any, effects: DeletionEffects, depth: int
) -> None:
    """`parent_rows(columns)` selects the given columns of the parent rows being deleted."""
    if depth >= _MAX_CASCADE_DEPTH:
        return
    for child, constraint in _inbound(parent):
        referenced = [element.column for element in constraint.elements]
        condition = _references(constraint, parent_rows(referenced))
        count = session.execute(
            select(func.count()).select_from(child).where(condition)
        ).scalar_one()
        rule = (constraint.ondelete or "NO ACTION").upper()
        if rule == "CASCADE":
            _add(effects.deleted, child.name, count)
            if count:
                _follow(
                    session,
                    child,
                    lambda columns, child=child, condition=condition: (
                        select(*columns).select_from(child).where(condition)
                    ),
                    effects,
                    depth + 1,
                )
        elif rule in ("SET NULL", "SET DEFAULT"):
            _add(effects.detached, child.name, count)
        else:
            _add(effects.blocking, child.name, count)


def cascade_summary(table_name: str) -> str:
    """What deleting any row of the table may take along, from the schema alone (no counting)."""
    deleted: list[str] = []
    blocking: list[str] = []
    seen: set[str] = set()

    def walk(parent: Table, depth: int) -> None:
        for child, constraint in _inbound(parent):
            rule = (constraint.ondelete or "NO ACTION").upper()
            if rule == "CASCADE" and child.name not in seen and depth < _MAX_CASCADE_DEPTH:
                seen.add(child.name)
                deleted.append(child.name)
                walk(child, depth + 1)
            elif rule not in ("CASCADE", "SET NULL", "SET DEFAULT") and child.name not in blocking:
                blocking.append(child.name)

    walk(table(table_name), 0)
    parts = []
    if deleted:
        parts.append("their " + ", ".join(deleted) + " are deleted with them")
    if blocking:
        parts.append("the database refuses while " + ", ".join(blocking) + " refer to them")
    return "; ".join(parts) if parts else "nothing else is deleted with them"


@dataclass(frozen=True)
class VisibleRows:
    """A table as the current transaction's role and user see it."""

    table: str
    columns: list[str]
    rows: list[list[str]]
    count: int
    refused: str | None = None
    """Why nothing could be read (the role holds no grant on the table), else None."""


def visible_rows(session: Session, table_names: list[str], limit: int = 25) -> list[VisibleRows]:
    """Each table's rows as the session's current context sees them (with row-level security:
    only what the policies let through), newest first, at most `limit` a table. A table the role
    may not read is reported as refused, and the others are still read."""
    seen: list[VisibleRows] = []
    for name in table_names:
        source = table(name)
        columns = [column for column in source.columns if column.key not in _NOT_LISTED]
        order = (
            source.c["created_at"].desc()
            if "created_at" in source.c
            else source.c[_primary_key(source)[0]]
        )
        try:
            with session.begin_nested():
                count = session.execute(select(func.count()).select_from(source)).scalar_one()
                rows = session.execute(select(*columns).order_by(order).limit(limit)).all()
        except DBAPIError as error:
            if not isinstance(error.orig, pg_errors.InsufficientPrivilege):
                raise
            seen.append(VisibleRows(name, [], [], 0, str(error.orig).splitlines()[0]))
            continue
        seen.append(
            VisibleRows(
                name,
                [column.key for column in columns],
                [
                    ["" if value is None else str(value)[:_SHOWN_CHARACTERS] for value in row]
                    for row in rows
                ],
                count,
            )
        )
    return seen


def user_data_tables(session: Session) -> list[str]:
    """The tables that hold users' own data: the ones a compliance export gathers for a user,
    derived from the live schema's foreign keys by `afilo_db.data.ownership`."""
    connection = session.connection().connection.driver_connection
    if not isinstance(connection, psycopg.Connection):
        raise TypeError("the studio runs on psycopg 3")
    return [qualified(name) for name in derive_ownership(connection).tables]
