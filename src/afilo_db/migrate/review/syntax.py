"""Small readers of pglast's parse trees."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from pglast import ast
from pglast.stream import RawStream, maybe_double_quote_name
from psycopg import sql as pgsql


def walk(node: Any) -> Iterator[ast.Node]:
    if isinstance(node, ast.Node):
        yield node
        for name in node:
            yield from walk(getattr(node, name))
    elif isinstance(node, tuple | list):
        for item in node:
            yield from walk(item)


def deparse(node: Any) -> str:
    return str(RawStream()(node))


# A relation's name is kept as PostgreSQL writes a regclass (`oid::regclass::text`): each part
# quoted where SQL needs it ("Orders", "user"), so that a name from a statement and a name from
# the catalog compare equal, to_regclass reads it as written, and messages show it as SQL does.
_NAME_PART = re.compile(r'"((?:[^"]|"")*)"|([^."]+)')


def qualified_name(parts: Iterable[str]) -> str:
    """The name of the object whose name parts (unquoted, as the parser gives them) are `parts`."""
    return ".".join(maybe_double_quote_name(part) for part in parts)


def relation_name(node: ast.RangeVar | None) -> str | None:
    if node is None:
        return None
    return qualified_name(part for part in (node.schemaname, node.relname) if part)


def identifier(name: str) -> pgsql.Composable:
    """`name` (see qualified_name) composed into a statement."""
    parts = [
        # An unquoted part is folded to lower case, as PostgreSQL reads it.
        match[2].lower() if match[2] is not None else match[1].replace('""', '"')
        for match in _NAME_PART.finditer(name)
    ]
    return pgsql.SQL(".").join(pgsql.Identifier(part) for part in parts)


def column_names(names: Any) -> list[str]:
    return [str(item.sval) for item in names or ()]
