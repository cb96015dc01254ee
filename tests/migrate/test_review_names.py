"""`migrate review` on tables whose names SQL must quote (capitals, spaces, a keyword, a schema
of their own): the same findings, counts and verdict as on their lower-case twin. Before names
were kept quoted, a quoted table was looked up folded to lower case (found nowhere: nothing
predicted) and its rehearsal was reported unmeasured."""

from __future__ import annotations

import psycopg
import pytest

from afilo_db.migrate.review import Observer, Thresholds, measuring, review_sql
from afilo_db.migrate.review.findings import Severity

TWIN = "orders_twin"
QUOTED = ['"Orders"', '"Big Orders"', '"user"', '"Sales"."Orders"']
STATEMENTS = [
    "ALTER TABLE {} ALTER COLUMN amount TYPE bigint;",
    "ALTER TABLE {} ADD COLUMN note text NOT NULL;",
    "CREATE INDEX ix_amount ON {} (amount);",
    "UPDATE {} SET amount = amount + 1;",
    "DROP TABLE {};",
    "TRUNCATE {};",
]


@pytest.fixture
def tables(database_url: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute('CREATE SCHEMA "Sales"')
        for name in (TWIN, *QUOTED):
            connection.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, amount int)")
            connection.execute(f"INSERT INTO {name} SELECT n, n FROM generate_series(1, 20000) n")
            connection.execute(f"ANALYZE {name}")
    return database_url


def findings(url: str, sql: str) -> tuple[list[tuple[str, Severity, int | None]], bool]:
    thresholds = Thresholds()
    with measuring(url, "30s") as measurer:
        review = review_sql(measurer, sql, in_transaction=True, thresholds=thresholds)
    with psycopg.connect(url) as rehearsal:
        Observer(rehearsal, commits=False).revision(review, thresholds)
    found = sorted(
        (finding.rule, finding.severity, finding.count)
        for statement in review.statements
        for finding in statement.findings
    )
    return found, review.passed


@pytest.mark.parametrize("template", STATEMENTS)
def test_a_quoted_table_is_reviewed_as_its_lower_case_twin(tables: str, template: str) -> None:
    expected = findings(tables, template.format(TWIN))
    assert expected[0], "the twin's statement must be found risky for the test to mean anything"
    for name in QUOTED:
        assert findings(tables, template.format(name)) == expected, name
