"""Every `inspect` query runs, read-only and under its timeout, on the embedded server; the
statements' statistics adapt to the extension's version and say how to enable them when absent."""

from __future__ import annotations

import psycopg
import pytest

from afilo_db.db.embedded import STATEMENT_STATISTICS_SCHEMA, EmbeddedServer
from afilo_db.inspect.queries import (
    QUERIES,
    Inspector,
    StatementStatisticsMissingError,
    inspecting,
    query_named,
    statement_columns,
)
from afilo_db.migrate.revisions import model_differences
from tests.inspect.conftest import TIMEOUT_MS


def test_every_query_runs_and_names_its_columns(inspector: Inspector) -> None:
    for query in QUERIES:
        result = inspector.run(query)
        assert result.name == query.name
        assert result.columns and all(result.columns), query.name
        assert len(set(result.columns)) == len(result.columns), query.name


def test_the_statements_are_this_databases_and_counted(
    inspector: Inspector, session: psycopg.Connection[tuple[object, ...]]
) -> None:
    for _ in range(3):
        session.execute("SELECT count(*) FROM products WHERE handle = %s", ("probe",))
    records = inspector.run(query_named("calls")).records()
    probe = [record for record in records if "FROM products WHERE handle" in record["statement"]]
    assert probe and probe[0]["calls"] == 3
    # Normalised: the constant never reaches the output.
    assert "probe" not in probe[0]["statement"]


def test_the_session_is_read_only_and_timed(inspector: Inspector) -> None:
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        inspector.rows("CREATE TABLE inspect_writes_nothing ()")
    timeout = inspector.rows("SELECT setting FROM pg_settings WHERE name = 'statement_timeout'")
    assert timeout.rows == [(str(TIMEOUT_MS),)]


def test_without_the_extension_it_says_how_to_enable_it(database_url: str) -> None:
    with inspecting(database_url, TIMEOUT_MS) as inspector:
        assert inspector.facts.statements_loaded  # the embedded server preloads the library
        with pytest.raises(StatementStatisticsMissingError, match="CREATE EXTENSION"):
            inspector.run(query_named("outliers"))


@pytest.mark.parametrize(
    ("version", "total", "io", "toplevel"),
    [
        ((1, 7), "total_time", "blk_read_time + blk_write_time", "true"),
        ((1, 8), "total_exec_time", "blk_read_time + blk_write_time", "true"),
        ((1, 10), "total_exec_time", "blk_read_time + blk_write_time", "toplevel"),
        ((1, 11), "total_exec_time", "shared_blk_read_time + shared_blk_write_time"
         " + local_blk_read_time + local_blk_write_time", "toplevel"),
    ],
)  # fmt: skip
def test_statement_columns_follow_the_extensions_version(
    version: tuple[int, ...], total: str, io: str, toplevel: str
) -> None:
    columns = statement_columns(version)
    assert (columns["total"], columns["io"], columns["toplevel"]) == (total, io, toplevel)


def test_unused_indexes_lists_an_index_no_read_used(
    inspector: Inspector, session: psycopg.Connection[tuple[object, ...]]
) -> None:
    session.execute("CREATE TABLE notes (id int PRIMARY KEY, topic text)")
    session.execute("CREATE INDEX ix_notes_topic ON notes (topic)")
    unused = {row["index"] for row in inspector.run(query_named("unused-indexes")).records()}
    assert "ix_notes_topic" in unused and "notes_pkey" not in unused


@pytest.mark.embedded_only("the embedded server's own settings and database")
def test_the_embedded_server_collects_statement_statistics(server: EmbeddedServer) -> None:
    with psycopg.connect(server.url()) as connection:
        loaded = connection.execute("SHOW shared_preload_libraries").fetchone()
        schema = connection.execute(
            "SELECT extnamespace::regnamespace::text FROM pg_extension"
            " WHERE extname = 'pg_stat_statements'"
        ).fetchone()
    assert loaded is not None and "pg_stat_statements" in str(loaded[0])
    assert schema == (STATEMENT_STATISTICS_SCHEMA,)


def test_migrate_sees_no_difference_in_the_extension_s_own_schema(inspected_url: str) -> None:
    # In public, alembic-utils would propose to drop the undeclared extension.
    assert model_differences(inspected_url) == []


def test_the_url_s_own_options_are_kept(inspected_url: str) -> None:
    # As Neon's `options=endpoint%3D...`: the inspector's settings must not replace them.
    with inspecting(f"{inspected_url}?options=-c%20work_mem%3D7MB", TIMEOUT_MS) as inspector:
        assert inspector.rows("SHOW work_mem").rows == [("7MB",)]
        assert inspector.rows("SHOW default_transaction_read_only").rows == [("on",)]
