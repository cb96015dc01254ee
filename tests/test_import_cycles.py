"""No module of afilo_db imports itself back, through any chain: the import-linter contracts
(`make lint`) see cycles between the siblings of a package, this sees every one, a package and
its own modules included (`afilo_db.cli` <-> `afilo_db.cli.common` was one). Imports inside
functions and under TYPE_CHECKING count: they are the cycle, only put off."""

from __future__ import annotations

import grimp


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The groups of modules that import one another (Tarjan's strongly connected components)."""
    order: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        order[module] = lowest[module] = len(order)
        stack.append(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in order:
                visit(imported)
                lowest[module] = min(lowest[module], lowest[imported])
            elif imported in stack:
                lowest[module] = min(lowest[module], order[imported])
        if lowest[module] == order[module]:
            group = [stack.pop()]
            while group[-1] != module:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in order:
            visit(module)
    return found


def test_no_import_cycles_in_afilo_db() -> None:
    # As the import contracts: a type named under TYPE_CHECKING imports nothing at run time.
    assert cycles(grimp.build_graph("afilo_db", exclude_type_checking_imports=True)) == []


def test_a_planted_cycle_is_found() -> None:
    graph = grimp.ImportGraph()
    for importer, imported in [("a", "a.b"), ("a.b", "a.c"), ("a.c", "a"), ("a", "d")]:
        graph.add_import(importer=importer, imported=imported)
    assert cycles(graph) == [["a", "a.b", "a.c"]]
