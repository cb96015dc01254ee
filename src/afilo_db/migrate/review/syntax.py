"""Small readers of pglast's parse trees."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pglast import ast
from pglast.stream import RawStream
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


def relation_name(node: ast.RangeVar | None) -> str | None:
    if node is None:
        return None
    return f"{node.schemaname}.{node.relname}" if node.schemaname else str(node.relname)


def identifier(name: str) -> pgsql.Composable:
    return pgsql.SQL(".").join(pgsql.Identifier(part) for part in name.split("."))


def column_names(names: Any) -> list[str]:
    return [str(item.sval) for item in names or ()]
