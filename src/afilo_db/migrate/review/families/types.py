"""Enums and domains: a value added and used in one transaction, a constraint added to a
domain, checked against every column of that type."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pglast import ast
from pglast.enums import ConstrType
from psycopg import sql as pgsql

from afilo_db.migrate.review.classification import classify_alter_domain
from afilo_db.migrate.review.families.registry import compares
from afilo_db.migrate.review.findings import StatementReview
from afilo_db.migrate.review.locks import SHARE
from afilo_db.migrate.review.measurements import MeasurementError
from afilo_db.migrate.review.syntax import deparse, identifier, relation_name, walk

if TYPE_CHECKING:
    from afilo_db.migrate.review.analysis import Analyzer


@compares(ast.AlterEnumStmt)
def alter_enum(analyzer: Analyzer, statement: StatementReview, node: ast.AlterEnumStmt) -> None:
    if node.newVal and not node.oldVal:
        name = ".".join(part.sval for part in node.typeName or ())
        analyzer.transaction.enum_values.setdefault(name.split(".")[-1], set()).add(node.newVal)


def enum_value_used(analyzer: Analyzer, statement: StatementReview, node: ast.Node) -> None:
    if not analyzer.transaction.enum_values or isinstance(node, ast.AlterEnumStmt):
        return
    literals = {
        str(item.val.sval)
        for item in walk(node)
        if isinstance(item, ast.A_Const) and isinstance(item.val, ast.String)
    }
    for enum, values in analyzer.transaction.enum_values.items():
        used = literals & values
        if not used:
            continue
        named = any(
            isinstance(item, ast.TypeName) and item.names and item.names[-1].sval == enum
            for item in walk(node)
        )
        tables = [relation_name(item) for item in walk(node) if isinstance(item, ast.RangeVar)]
        typed_column = any(
            analyzer.m.value(
                "SELECT EXISTS (SELECT FROM pg_attribute a JOIN pg_type t"
                " ON t.oid = a.atttypid WHERE a.attrelid = to_regclass(%s)"
                " AND t.typname = %s AND NOT a.attisdropped)",
                (table, enum),
            )
            for table in tables
            if table and analyzer.m.table_exists(table)
        )
        if named or typed_column:
            statement.find(
                "enum-value-used-in-transaction",
                "error",
                f"{', '.join(sorted(used))} is added to {enum} in this transaction: "
                "PostgreSQL refuses to use it before the transaction commits",
            )


@compares(ast.AlterDomainStmt)
def alter_domain(analyzer: Analyzer, statement: StatementReview, node: ast.AlterDomainStmt) -> None:
    """A constraint added to (or validated on) a domain is checked against every column of that
    type, each table held SHARE (no writes) while it is scanned."""
    domain = ".".join(part.sval for part in node.typeName or ())
    form = str(node.subtype)
    classification = classify_alter_domain(form)
    if classification is None:
        statement.find(
            "unclassified",
            "error",
            f"ALTER DOMAIN {domain} ({form}): a form the review's allow list does not have",
        )
        return
    statement.predicted = classification.as_dict()
    violation = _domain_violation(analyzer, domain, form, node.def_, node.name)
    if violation is None:
        return
    columns = analyzer.m.rows(
        "SELECT a.attrelid::regclass::text, a.attname FROM pg_attribute a"
        " JOIN pg_class c ON c.oid = a.attrelid WHERE a.atttypid = to_regtype(%s)"
        " AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'm')"
        " ORDER BY 1, 2",
        (domain,),
    )
    violations = 0
    largest: tuple[int, str] | None = None
    for table, column in columns:
        statement.other_locks[table] = SHARE
        rows = analyzer.m.size(table).rows
        largest = max(largest or (rows, table), (rows, table))
        violations += analyzer.measure(
            statement,
            f"rows of {table}.{column} breaking it",
            pgsql.SQL(
                "SELECT count(*) FROM (SELECT {} AS value FROM {}) AS checked WHERE {}"
            ).format(pgsql.Identifier(column), identifier(table), pgsql.SQL(violation)),
        )
    if largest is None:
        return
    analyzer.existing(statement, largest[1])
    analyzer.lock(statement, SHARE)
    statement.scans = True
    if violations:
        statement.find(
            "constraint-violated",
            "error",
            f"{violations} rows of the columns of type {domain} already break it: ALTER DOMAIN "
            "fails on them",
            violations,
        )
    elif largest[0]:
        statement.find(
            "constraint-scan",
            analyzer.scanning(statement),
            f"ALTER DOMAIN {domain} scans every column of that type under SHARE (no writes), "
            f"{largest[1]} the largest ({analyzer.size_words(statement)})",
            largest[0],
        )


def _domain_violation(
    analyzer: Analyzer, domain: str, form: str, definition: Any, name: str | None
) -> str | None:
    """The condition a row of a column of the domain meets when it breaks the constraint being
    added or validated (the value is `value`); None when nothing is checked."""
    if form == "O":
        return "value IS NULL"
    if form == "V":
        text = analyzer.m.value(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE contypid = to_regtype(%s) AND conname = %s",
            (domain, name),
        )
        if text is None:
            raise MeasurementError(f"domain {domain} has no constraint {name}")
        expression = str(text).removesuffix(" NOT VALID").removeprefix("CHECK ")
        return f"NOT {expression}"
    if form != "C" or not isinstance(definition, ast.Constraint):
        return None
    if definition.skip_validation:
        return None  # NOT VALID: only new values are checked
    if definition.contype == ConstrType.CONSTR_NOTNULL:
        return "value IS NULL"
    if definition.contype == ConstrType.CONSTR_CHECK:
        return f"NOT ({deparse(definition.raw_expr)})"
    return None
