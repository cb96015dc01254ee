"""Which rows belong to a user, derived from the live schema rather than listed by hand.

A row belongs to a user when it is their `user_profiles` row, or when a foreign key leads from it
to a row that belongs to them (chat_messages -> chat_conversations -> user_profiles), followed
transitively through the catalog of the live database. A table added later with a foreign key
to user_profiles is therefore included without anyone remembering to add it. References the
database does not enforce (events.user_id) are declared on the model column with `references()`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from afilo_db.models import Base, UserProfile

TableName = tuple[str, str]
"""(schema, table)"""

USER_TABLE: TableName = ("public", UserProfile.__tablename__)

# Foreign keys declared on a table itself (not the copies on partitions), outside system schemas.
FOREIGN_KEYS = """
SELECT cn.nspname, c.relname, pn.nspname, p.relname,
       array(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(attnum, i)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum ORDER BY u.i),
       array(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(attnum, i)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.attnum ORDER BY u.i)
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
JOIN pg_class p ON p.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace
WHERE k.contype = 'f' AND k.conparentid = 0 AND NOT c.relispartition
  AND cn.nspname NOT IN ('pg_catalog', 'information_schema')
"""


@dataclass(frozen=True)
class Reference:
    table: TableName
    columns: tuple[str, ...]
    parent: TableName
    parent_columns: tuple[str, ...]


@dataclass(frozen=True)
class Ownership:
    """Tables holding a user's rows, nearest first, and how each reaches user_profiles."""

    depth: dict[TableName, int]
    paths: dict[TableName, list[Reference]]

    @property
    def tables(self) -> list[TableName]:
        return sorted(self.depth, key=lambda table: (self.depth[table], table))

    def owned_condition(self, table: TableName, alias: str = "t") -> sql.Composable:
        """A condition on `alias` (a row of `table`) true for the rows of the user whose
        user_profiles.id is the query parameter %(user_id)s."""
        if table == USER_TABLE:
            return sql.SQL("{}.id = %(user_id)s").format(sql.Identifier(alias))
        inner = f"{alias}_{self.depth[table]}"
        alternatives = [
            sql.SQL(
                "({columns}) IN (SELECT {parent_columns} FROM {parent} AS {inner} WHERE {cond})"
            ).format(
                columns=sql.SQL(", ").join(sql.Identifier(alias, c) for c in reference.columns),
                parent_columns=sql.SQL(", ").join(
                    sql.Identifier(inner, c) for c in reference.parent_columns
                ),
                parent=sql.Identifier(*reference.parent),
                inner=sql.Identifier(inner),
                cond=self.owned_condition(reference.parent, inner),
            )
            for reference in self.paths[table]
        ]
        return sql.SQL("({})").format(sql.SQL(" OR ").join(alternatives))

    def owned_rows(self, table: TableName) -> sql.Composable:
        return sql.SQL("SELECT t.* FROM {} AS t WHERE {}").format(
            sql.Identifier(*table), self.owned_condition(table)
        )


def _declared_references(existing: set[TableName]) -> list[Reference]:
    references = []
    for table in Base.metadata.tables.values():
        name: TableName = (table.schema or "public", table.name)
        for column in table.columns:
            target = column.info.get("references")
            if isinstance(target, str) and name in existing:
                parent, parent_column = target.split(".")
                references.append(
                    Reference(name, (column.name,), ("public", parent), (parent_column,))
                )
    return references


def derive_ownership(connection: psycopg.Connection[Any]) -> Ownership:
    """Walk foreign keys (and declared references) backwards from user_profiles."""
    references = [
        Reference((str(r[0]), str(r[1])), tuple(r[4]), (str(r[2]), str(r[3])), tuple(r[5]))
        for r in connection.execute(FOREIGN_KEYS)
    ]
    existing = {
        (str(schema), str(name))
        for schema, name in connection.execute(
            "SELECT n.nspname, c.relname FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p')"
        )
    }
    references += _declared_references(existing)
    depth: dict[TableName, int] = {USER_TABLE: 0}
    paths: dict[TableName, list[Reference]] = {USER_TABLE: []}
    queue = deque([USER_TABLE])
    while queue:
        parent = queue.popleft()
        for reference in references:
            if reference.parent != parent or reference.table == parent:
                continue
            if reference.table not in depth:
                depth[reference.table] = depth[parent] + 1
                paths[reference.table] = []
                queue.append(reference.table)
            # Only references to nearer tables: the conditions nest and must not loop.
            if depth[parent] < depth[reference.table]:
                paths[reference.table].append(reference)
    return Ownership(depth=depth, paths=paths)


def find_user_id(connection: psycopg.Connection[Any], clerk_user_id: str) -> Any:
    """user_profiles.id of a Clerk user, or None."""
    row = connection.execute(
        sql.SQL("SELECT id FROM {} WHERE clerk_user_id = %s").format(sql.Identifier(*USER_TABLE)),
        (clerk_user_id,),
    ).fetchone()
    return row[0] if row else None


def qualified(table: TableName) -> str:
    return table[1] if table[0] == "public" else f"{table[0]}.{table[1]}"
