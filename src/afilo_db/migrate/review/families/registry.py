"""The comparators, registered by the statement node they examine (as Alembic's autogenerate
registers its comparators by kind): one module per family, `comparator_for` finds them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pglast import ast

from afilo_db.migrate.review.findings import StatementReview

if TYPE_CHECKING:
    from afilo_db.migrate.review.analysis import Analyzer

Comparator = Callable[["Analyzer", StatementReview, Any], None]
ComparatorT = TypeVar("ComparatorT", bound=Comparator)

COMPARATORS: dict[str, Comparator] = {}


def compares(node: type[ast.Node]) -> Callable[[ComparatorT], ComparatorT]:
    """Register the decorated function as the comparator of `node` statements."""

    def register(comparator: ComparatorT) -> ComparatorT:
        if node.__name__ in COMPARATORS:
            raise RuntimeError(f"two comparators for {node.__name__}")
        COMPARATORS[node.__name__] = comparator
        return comparator

    return register
