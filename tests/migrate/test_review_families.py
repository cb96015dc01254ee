"""One test per comparator family of `migrate review`, each on a small table of its own, with
the prediction (the comparators) and the observation on a rehearsal copy side by side."""

from __future__ import annotations

import psycopg
import pytest

from afilo_db.migrate.review import (
    Observer,
    RevisionReview,
    StatementReview,
    Thresholds,
    measuring,
    review_sql,
)
from afilo_db.security.roles import APP_ROLE

ROWS = 40
THINGS = f"""
CREATE TABLE things (id integer PRIMARY KEY, owner_id integer, label text, amount integer);
INSERT INTO things SELECT i, i % 4, 'thing ' || i, i - 3 FROM generate_series(1, {ROWS}) AS i;
ALTER TABLE things ENABLE ROW LEVEL SECURITY;
CREATE POLICY things_own ON things FOR SELECT TO {APP_ROLE} USING (owner_id = 1);
GRANT SELECT, DELETE ON things TO {APP_ROLE};
"""


@pytest.fixture
def things_url(database_url: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(THINGS)
    return database_url


def reviewed(url: str, sql: str, in_transaction: bool = True) -> RevisionReview:
    """The review of `sql`, predicted and measured, then observed on the database itself in a
    transaction rolled back at the end (the test's database is its rehearsal copy)."""
    with measuring(url, "30s") as measurer:
        review = review_sql(measurer, sql, in_transaction=in_transaction, thresholds=Thresholds())
    with psycopg.connect(url) as connection:
        Observer(connection, commits=False).revision(review, Thresholds())
    return review


def findings(statement: StatementReview) -> dict[str, int | None]:
    return {f"{item.rule}:{item.severity}": item.count for item in statement.findings}


def observed(statement: StatementReview) -> dict[str, object]:
    assert statement.observed is not None
    return statement.observed


def test_tables_family_an_index_build_blocks_writes_and_a_unique_key_counts_duplicates(
    things_url: str,
) -> None:
    index, unique = reviewed(
        things_url,
        "CREATE INDEX ix_things_label ON things (label);"
        " CREATE UNIQUE INDEX ux_things_owner ON things (owner_id);",
    ).statements
    assert findings(index) == {"blocking-index-build:error": ROWS}
    assert index.predicted is not None and index.predicted["family"] == "tables"
    assert observed(index)["locks"] == {"things": "SHARE"}
    assert findings(unique)["constraint-violated:error"] == ROWS
    assert "could not create unique index" in str(observed(unique)["failed"])


def test_drops_family_a_dropped_table_loses_every_row_predicted_and_observed(
    things_url: str,
) -> None:
    (statement,) = reviewed(things_url, "DROP TABLE things").statements
    assert findings(statement) == {"breaking-change:error": None, "data-loss:error": ROWS}
    assert observed(statement)["locks"] == {"things": "ACCESS EXCLUSIVE"}
    assert observed(statement)["rows_lost"]["things"] == ROWS  # type: ignore[index]
    assert observed(statement)["disagreements"] == []


def test_dml_family_a_delete_counts_the_rows_it_removes(things_url: str) -> None:
    (statement,) = reviewed(things_url, "DELETE FROM things WHERE id <= 3").statements
    assert findings(statement) == {"data-loss:error": 3}
    assert observed(statement)["rows_deleted"] == {"things": 3}
    assert observed(statement)["rows_lost"] == {
        "things": 3,
        **{f"things.{column}": 3 for column in ("id", "owner_id", "label", "amount")},
    }


def test_maintenance_family_an_explicit_lock_is_predicted_as_observed(things_url: str) -> None:
    (statement,) = reviewed(things_url, "LOCK TABLE things IN SHARE MODE").statements
    assert findings(statement) == {"explicit-lock:error": ROWS}
    assert statement.lock == "SHARE"
    assert observed(statement)["locks"] == {"things": "SHARE"}
    assert observed(statement)["disagreements"] == []


def test_types_family_a_domain_constraint_counts_the_rows_of_its_columns_that_break_it(
    database_url: str,
) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "CREATE DOMAIN quantity AS integer;"
            " CREATE TABLE stock (id integer PRIMARY KEY, held quantity);"
            " INSERT INTO stock SELECT i, i - 5 FROM generate_series(1, 20) AS i;"
        )
    (statement,) = reviewed(
        database_url, "ALTER DOMAIN quantity ADD CONSTRAINT quantity_positive CHECK (VALUE > 0)"
    ).statements
    # Before this family existed the statement passed unexamined.
    assert findings(statement) == {"constraint-violated:error": 5}
    assert statement.other_locks == {"stock": "SHARE"}
    assert "violate the new constraint" in str(observed(statement)["failed"])
    (valid,) = reviewed(
        database_url, "ALTER DOMAIN quantity ADD CONSTRAINT quantity_big CHECK (VALUE > -100)"
    ).statements
    assert findings(valid) == {"constraint-scan:warning": 20}


def test_security_family_a_revoke_from_the_app_and_a_policy_widened_outside_the_contract(
    things_url: str,
) -> None:
    (revoke,) = reviewed(things_url, f"REVOKE DELETE ON things FROM {APP_ROLE}").statements
    assert findings(revoke) == {"access-revoked:error": None}
    assert "loses DELETE on things" in revoke.findings[0].message
    # The policy is not one of the contract's: only the copy shows what OR true does.
    (widened,) = reviewed(
        things_url, "ALTER POLICY things_own ON things USING (owner_id = 1 OR true)"
    ).statements
    assert findings(widened) == {"policy-widened:error": None}
    assert "or true" in widened.findings[0].message.lower()
    (unchanged,) = reviewed(
        things_url, "ALTER POLICY things_own ON things USING (things.owner_id = 1)"
    ).statements
    assert findings(unchanged) == {}
    # A role attribute changes the server, not the copy: observed, then undone at once.
    (role,) = reviewed(things_url, f"ALTER ROLE {APP_ROLE} CREATEDB").statements
    assert findings(role) == {"role-privileges:error": None}
    assert observed(role)["access"] == [
        {"rule": "role-privileges", "change": f"role {APP_ROLE} gets CREATEDB"}
    ]
    with psycopg.connect(things_url) as connection:
        row = connection.execute(
            "SELECT rolcreatedb FROM pg_roles WHERE rolname = %s", (APP_ROLE,)
        ).fetchone()
    assert row == (False,)


def test_alter_table_family_a_function_created_earlier_makes_a_rewrite_only_the_copy_sees(
    things_url: str,
) -> None:
    create, alter = reviewed(
        things_url,
        "CREATE FUNCTION next_code() RETURNS integer VOLATILE LANGUAGE sql"
        " AS 'SELECT (random() * 1000)::integer';"
        " ALTER TABLE things ADD COLUMN code integer DEFAULT next_code();",
    ).statements
    assert not alter.rewrites  # the function does not exist yet when the review reads the catalogue
    assert observed(alter)["rewritten"] == ["things"]
    assert findings(alter) == {"table-rewrite:error": ROWS}
    assert "predicted no rewrite" in str(observed(alter)["disagreements"])
    assert findings(create) == {}


def test_code_run_by_a_safe_statement_is_judged_by_what_it_did(things_url: str) -> None:
    _, call = reviewed(
        things_url,
        "CREATE FUNCTION purge() RETURNS void LANGUAGE sql AS 'DELETE FROM things';"
        " SELECT purge();",
    ).statements
    assert call.predicted is not None and call.predicted["verdict"] == "safe"
    assert findings(call) == {"data-loss:error": ROWS}
    assert observed(call)["rows_deleted"] == {"things": ROWS}


def test_a_statement_the_allow_list_refuses_is_an_error_even_on_an_empty_table(
    database_url: str,
) -> None:
    do, merge = reviewed(
        database_url,
        "DO $$ BEGIN PERFORM 1; END $$;"
        " MERGE INTO cart_items AS c USING (SELECT 1 AS n) AS s ON false"
        " WHEN NOT MATCHED THEN DO NOTHING;",
    ).statements
    assert findings(do) == {"unclassified:error": None}
    assert findings(merge) == {"unclassified:error": 0}  # the rows of cart_items


def test_on_a_copy_kept_between_statements_a_concurrent_build_runs_outside_the_transaction(
    things_url: str,
) -> None:
    with measuring(things_url, "30s") as measurer:
        review = review_sql(
            measurer,
            "ALTER TABLE things ADD COLUMN note text;"
            " COMMIT;"
            " CREATE INDEX CONCURRENTLY ix_things_note ON things (note);",
        )
    with psycopg.connect(things_url) as connection:
        Observer(connection, commits=True).revision(review, Thresholds())
    add, build = review.statements
    assert observed(add)["locks"] == {"things": "ACCESS EXCLUSIVE"}
    assert observed(build)["ran"] and observed(build)["failed"] is None
    assert "outside a transaction" in str(observed(build)["note"])
    assert findings(build) == {}
    with psycopg.connect(things_url) as connection:
        assert connection.execute("SELECT to_regclass('ix_things_note')").fetchone() != (None,)
