"""The generic plan the search statement runs, shown by EXPLAIN (shared with bench.knowledge)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
from psycopg import sql

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def generic_plan(
    connection: psycopg.Connection[Any], statement: str, parameters: Mapping[str, Any]
) -> Any:
    """EXPLAIN (FORMAT JSON) of `statement` (psycopg's named placeholders) prepared and planned
    generically, as the search runs it. EXPLAIN of a statement with parameter values would plan
    with the values; EXPLAIN EXECUTE of a prepared one under force_generic_plan shows the generic
    plan (PostgreSQL 16's EXPLAIN (GENERIC_PLAN) would too, but not on 15). In a transaction of
    its own, or a savepoint of the caller's: nothing of it stays."""
    names = list(dict.fromkeys(_PLACEHOLDER.findall(statement)))
    positional = _PLACEHOLDER.sub(lambda match: f"${names.index(match[1]) + 1}", statement)
    values = ", ".join(sql.Literal(parameters[name]).as_string(connection) for name in names)
    with connection.transaction():
        connection.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        connection.execute(f"PREPARE generic_plan AS {positional}")
        row = connection.execute(f"EXPLAIN (FORMAT JSON) EXECUTE generic_plan({values})").fetchone()
        connection.execute("DEALLOCATE generic_plan")
    assert row is not None
    return row[0]


def plan_nodes(plan: Any) -> Iterator[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan."""
    if isinstance(plan, dict):
        if "Node Type" in plan:
            yield plan
        for value in plan.values():
            yield from plan_nodes(value)
    elif isinstance(plan, list):
        for value in plan:
            yield from plan_nodes(value)
