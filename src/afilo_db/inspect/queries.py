"""`afilo-db inspect NAME`: one read-only query each against PostgreSQL's statistics and catalogs.

The set covers Supabase CLI's `inspect db` (docs/inspect.md compares them command by command).
Each query is written for PostgreSQL 15 to 18 and adapts where the catalogs differ: the
checkpoint counters moved from pg_stat_bgwriter to pg_stat_checkpointer in 17, and
pg_stat_statements renamed its columns in 1.8 (total_time -> total_exec_time), added `toplevel` in
1.9 and split blk_read_time into shared_ and local_ in 1.11. The extension's version is the one
created in the database (ALTER EXTENSION ... UPDATE moves it), not the server's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from afilo_db.db.embedded import STATEMENT_STATISTICS_EXTENSION, STATEMENT_STATISTICS_SCHEMA
from afilo_db.errors import OperationError

CONNECT_TIMEOUT_SECONDS = 5
# Sessions of `inspect` name themselves, so that its own queries never count as long-running.
APPLICATION_NAME = "afilo-db inspect"
# Statement texts are cut to this many characters: enough to recognise a query, and a literal
# pasted into one (pg_stat_activity shows them as sent) travels no further than that.
STATEMENT_CHARACTERS = 200
STATEMENT_ROWS = 10


@dataclass(frozen=True)
class ServerFacts:
    """What the queries adapt to, read once per connection."""

    version_num: int
    in_recovery: bool
    statements_schema: str | None
    """Where pg_stat_statements is installed in this database; None: it is not."""
    statements_version: tuple[int, ...] | None
    statements_loaded: bool
    """Its library is in shared_preload_libraries (without it the views raise)."""

    @property
    def statements_ready(self) -> bool:
        return self.statements_schema is not None and self.statements_loaded


class StatementStatisticsMissingError(OperationError):
    """pg_stat_statements is not usable here; the message says how to enable it."""


def enable_statements_hint(facts: ServerFacts) -> str:
    """How to make pg_stat_statements usable on this server, for the operator to act on."""
    if not facts.statements_loaded:
        return (
            f"{STATEMENT_STATISTICS_EXTENSION} is not loaded: add it to shared_preload_libraries "
            "and restart the server (the embedded server loads it from its next start: "
            "`afilo-db db stop && afilo-db db start`; Neon and Supabase load it already), then "
            f"run `CREATE EXTENSION {STATEMENT_STATISTICS_EXTENSION}` as the database owner"
        )
    return (
        f"{STATEMENT_STATISTICS_EXTENSION} is loaded but not created in this database: run "
        f"`CREATE SCHEMA IF NOT EXISTS {STATEMENT_STATISTICS_SCHEMA}; CREATE EXTENSION "
        f"{STATEMENT_STATISTICS_EXTENSION} SCHEMA {STATEMENT_STATISTICS_SCHEMA}` as the owner "
        "(on Supabase: Database > Extensions)"
    )


@dataclass(frozen=True)
class Query:
    name: str
    summary: str
    build: Callable[[ServerFacts], sql.Composable]
    needs_statements: bool = False
    on_replica: bool = True
    """Meaningful on a hot standby (its own activity, sizes, cache); False where it only
    describes the primary (its replicas, its statements' history is the primary's own)."""


@dataclass(frozen=True)
class QueryResult:
    name: str
    columns: list[str]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def json_value(value: Any) -> Any:
    """A value of a row as JSON: exact decimals as strings, times in ISO 8601, intervals in s."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


def _statements(facts: ServerFacts) -> sql.Composable:
    assert facts.statements_schema is not None
    return sql.Identifier(facts.statements_schema, "pg_stat_statements")


def statement_columns(version: tuple[int, ...]) -> dict[str, str]:
    """pg_stat_statements' column expressions by the extension's version."""
    timed = version >= (1, 8)
    return {
        "total": "total_exec_time" if timed else "total_time",
        "mean": "mean_exec_time" if timed else "mean_time",
        "io": (
            "shared_blk_read_time + shared_blk_write_time + local_blk_read_time"
            " + local_blk_write_time"
            if version >= (1, 11)
            else "blk_read_time + blk_write_time"
        ),
        # Statements run inside functions are counted again inside their caller.
        "toplevel": "toplevel" if version >= (1, 9) else "true",
    }


def _top_statements(order: str) -> Callable[[ServerFacts], sql.Composable]:
    def build(facts: ServerFacts) -> sql.Composable:
        assert facts.statements_version is not None
        columns = statement_columns(facts.statements_version)
        ordering = columns["total"] if order == "time" else "calls"
        return sql.SQL(
            "SELECT queryid,"
            " round({total}::numeric, 1) AS total_ms,"
            " round((100 * {total} / nullif(sum({total}) OVER (), 0))::numeric, 1)"
            "   AS percent_of_total_time,"
            " calls, round({mean}::numeric, 3) AS mean_ms, rows,"
            " round(({io})::numeric, 1) AS io_ms,"
            " left(query, {characters}) AS statement"
            " FROM {view}"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND {toplevel}"
            " ORDER BY {ordering} DESC LIMIT {limit}"
        ).format(
            total=sql.SQL(columns["total"]),
            mean=sql.SQL(columns["mean"]),
            io=sql.SQL(columns["io"]),
            toplevel=sql.SQL(columns["toplevel"]),
            ordering=sql.SQL(ordering),
            characters=STATEMENT_CHARACTERS,
            limit=STATEMENT_ROWS,
            view=_statements(facts),
        )

    return build


def _fixed(text: str) -> Callable[[ServerFacts], sql.Composable]:
    return lambda _facts: sql.SQL(text)


def _checkpoints(facts: ServerFacts) -> sql.Composable:
    if facts.version_num >= 170000:
        return sql.SQL(
            "SELECT num_timed AS timed, num_requested AS requested,"
            " write_time AS write_ms, sync_time AS sync_ms,"
            " buffers_written, stats_reset FROM pg_stat_checkpointer"
        )
    return sql.SQL(
        "SELECT checkpoints_timed AS timed, checkpoints_req AS requested,"
        " checkpoint_write_time AS write_ms, checkpoint_sync_time AS sync_ms,"
        " buffers_checkpoint AS buffers_written, stats_reset FROM pg_stat_bgwriter"
    )


USER_RELATIONS = (
    "c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)"
    " AND c.relnamespace::regnamespace::text NOT LIKE 'pg_toast%'"
)
# The WAL position of this server: a standby has none of its own, only what it replayed.
WAL_POSITION = (
    "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END"
)

QUERIES: tuple[Query, ...] = (
    Query(
        "bloat",
        "Dead rows per table (what VACUUM would reclaim), largest first.",
        _fixed(
            "SELECT s.schemaname || '.' || s.relname AS table, s.n_live_tup AS live_rows,"
            " s.n_dead_tup AS dead_rows,"
            " round(s.n_dead_tup::numeric / nullif(s.n_live_tup + s.n_dead_tup, 0), 4)"
            "   AS dead_fraction,"
            " pg_table_size(s.relid) AS table_bytes,"
            " greatest(s.last_vacuum, s.last_autovacuum) AS last_vacuumed"
            " FROM pg_stat_user_tables s ORDER BY s.n_dead_tup DESC, s.relname"
        ),
    ),
    Query(
        "blocking",
        "Sessions waiting on another's lock, with the session holding them.",
        _fixed(
            "SELECT waiting.pid AS blocked_pid, waiting.usename AS blocked_user,"
            " round(extract(epoch FROM now() - waiting.query_start)::numeric, 1)"
            "   AS waiting_seconds,"
            f" left(waiting.query, {STATEMENT_CHARACTERS}) AS blocked_statement,"
            " holder.pid AS blocking_pid, holder.usename AS blocking_user,"
            " holder.state AS blocking_state,"
            " round(extract(epoch FROM now() - holder.xact_start)::numeric, 1)"
            "   AS blocking_transaction_seconds,"
            f" left(holder.query, {STATEMENT_CHARACTERS}) AS blocking_statement"
            " FROM pg_stat_activity waiting"
            " CROSS JOIN LATERAL unnest(pg_blocking_pids(waiting.pid)) AS blocker(pid)"
            " JOIN pg_stat_activity holder ON holder.pid = blocker.pid"
            " ORDER BY waiting_seconds DESC NULLS LAST"
        ),
    ),
    Query(
        "cache-hit",
        "Share of table and index block reads served from shared buffers (not disk or OS cache).",
        _fixed(
            "SELECT 'index' AS kind, sum(idx_blks_hit) AS hits, sum(idx_blks_read) AS reads,"
            " round(sum(idx_blks_hit) / nullif(sum(idx_blks_hit + idx_blks_read), 0), 4)"
            "   AS hit_ratio FROM pg_statio_user_indexes"
            " UNION ALL "
            "SELECT 'table', sum(heap_blks_hit), sum(heap_blks_read),"
            " round(sum(heap_blks_hit) / nullif(sum(heap_blks_hit + heap_blks_read), 0), 4)"
            " FROM pg_statio_user_tables"
        ),
    ),
    Query(
        "calls",
        "The statements run most often (pg_stat_statements), with their share of the time.",
        _top_statements("calls"),
        needs_statements=True,
    ),
    Query(
        "checkpoints",
        "Checkpoints timed against requested (requested ones mean max_wal_size is too small).",
        _checkpoints,
    ),
    Query(
        "index-sizes",
        "Each index's size on disk, largest first.",
        _fixed(
            "SELECT c.relnamespace::regnamespace::text || '.' || t.relname AS table,"
            " c.relname AS index, pg_relation_size(c.oid) AS bytes,"
            " pg_size_pretty(pg_relation_size(c.oid)) AS size"
            " FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid"
            " JOIN pg_class t ON t.oid = i.indrelid"
            f" WHERE c.relkind IN ('i', 'I') AND {USER_RELATIONS}"
            " ORDER BY bytes DESC, c.relname"
        ),
    ),
    Query(
        "index-usage",
        "Per table: how often a read used an index rather than a sequential scan.",
        _fixed(
            "SELECT schemaname || '.' || relname AS table, seq_scan,"
            " coalesce(idx_scan, 0) AS idx_scan,"
            " round(100.0 * coalesce(idx_scan, 0)"
            "   / nullif(seq_scan + coalesce(idx_scan, 0), 0), 1) AS percent_index_used,"
            " n_live_tup AS live_rows"
            " FROM pg_stat_user_tables ORDER BY n_live_tup DESC, relname"
        ),
    ),
    Query(
        "locks",
        "Locks held or awaited by other sessions, waiting ones first.",
        _fixed(
            "SELECT l.pid, coalesce(c.relname, l.locktype) AS object, l.mode, l.granted,"
            " a.state, round(extract(epoch FROM now() - a.xact_start)::numeric, 1)"
            "   AS transaction_seconds,"
            f" left(a.query, {STATEMENT_CHARACTERS}) AS statement"
            " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " LEFT JOIN pg_class c ON c.oid = l.relation"
            " WHERE l.pid <> pg_backend_pid() AND l.locktype <> 'virtualxid'"
            " ORDER BY l.granted, transaction_seconds DESC NULLS LAST, l.pid"
        ),
    ),
    Query(
        "long-running-queries",
        "Sessions with a transaction open, the oldest first (idle in transaction included).",
        _fixed(
            "SELECT pid, usename AS user, application_name, state,"
            " round(extract(epoch FROM now() - xact_start)::numeric, 1) AS transaction_seconds,"
            " round(extract(epoch FROM now() - query_start)::numeric, 1) AS statement_seconds,"
            f" left(query, {STATEMENT_CHARACTERS}) AS statement"
            " FROM pg_stat_activity"
            " WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'"
            " ORDER BY xact_start"
        ),
    ),
    Query(
        "outliers",
        "The statements that took the most time in all (pg_stat_statements).",
        _top_statements("time"),
        needs_statements=True,
    ),
    Query(
        "replicas",
        "The standbys streaming from this server and how far behind they are.",
        _fixed(
            "SELECT application_name, client_addr, state, sync_state,"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) AS replay_behind_bytes,"
            " extract(epoch FROM replay_lag) AS replay_lag_seconds"
            " FROM pg_stat_replication ORDER BY application_name"
        ),
        on_replica=False,
    ),
    Query(
        "replication-slots",
        "Replication slots, whether they are in use, and the WAL each one keeps on disk.",
        _fixed(
            "SELECT slot_name, slot_type, database, active, wal_status,"
            f" pg_wal_lsn_diff({WAL_POSITION}, restart_lsn) AS retained_wal_bytes"
            " FROM pg_replication_slots ORDER BY slot_name"
        ),
    ),
    Query(
        "role-connections",
        "Connections per login role, against max_connections.",
        _fixed(
            "SELECT r.rolname AS role, count(a.pid) AS connections,"
            " current_setting('max_connections')::int AS max_connections"
            " FROM pg_roles r LEFT JOIN pg_stat_activity a ON a.usename = r.rolname"
            " WHERE r.rolcanlogin GROUP BY r.rolname ORDER BY connections DESC, role"
        ),
    ),
    Query(
        "seq-scans",
        "Sequential scans per table since the statistics reset, most first.",
        _fixed(
            "SELECT schemaname || '.' || relname AS table, seq_scan, seq_tup_read,"
            " n_live_tup AS live_rows"
            " FROM pg_stat_user_tables ORDER BY seq_scan DESC, relname"
        ),
    ),
    Query(
        "table-record-counts",
        "Estimated rows per table (the statistics' count, no scan).",
        _fixed(
            "SELECT schemaname || '.' || relname AS table, n_live_tup AS estimated_rows"
            " FROM pg_stat_user_tables ORDER BY n_live_tup DESC, relname"
        ),
    ),
    Query(
        "table-sizes",
        "Each table's size: its rows (with TOAST), its indexes, both.",
        _fixed(
            "SELECT c.relnamespace::regnamespace::text || '.' || c.relname AS table,"
            " pg_table_size(c.oid) AS table_bytes, pg_indexes_size(c.oid) AS index_bytes,"
            " pg_total_relation_size(c.oid) AS total_bytes,"
            " pg_size_pretty(pg_total_relation_size(c.oid)) AS total_size"
            f" FROM pg_class c WHERE c.relkind IN ('r', 'm') AND {USER_RELATIONS}"
            " ORDER BY total_bytes DESC, c.relname"
        ),
    ),
    Query(
        "unused-indexes",
        "Indexes no read has used since the statistics reset (constraint indexes left out).",
        _fixed(
            "SELECT s.schemaname || '.' || s.relname AS table, s.indexrelname AS index,"
            " pg_relation_size(s.indexrelid) AS index_bytes, s.idx_scan AS index_scans,"
            " t.seq_scan + coalesce(t.idx_scan, 0) AS table_reads, t.n_live_tup AS live_rows"
            " FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid"
            " JOIN pg_stat_user_tables t ON t.relid = s.relid"
            " WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary"
            " AND NOT i.indisexclusion ORDER BY index_bytes DESC, index"
        ),
    ),
    Query(
        "vacuum-stats",
        "Per table: last (auto)vacuum and analyze, dead rows, and whether autovacuum is due.",
        _fixed(
            "SELECT s.schemaname || '.' || s.relname AS table, s.last_vacuum,"
            " s.last_autovacuum, s.last_autoanalyze, s.n_live_tup AS live_rows,"
            " s.n_dead_tup AS dead_rows,"
            # The server-wide settings; a table's own reloptions may differ.
            " round(current_setting('autovacuum_vacuum_threshold')::numeric"
            "   + current_setting('autovacuum_vacuum_scale_factor')::numeric"
            "   * greatest(c.reltuples, 0)::numeric) AS autovacuum_threshold,"
            " s.n_dead_tup > current_setting('autovacuum_vacuum_threshold')::numeric"
            "   + current_setting('autovacuum_vacuum_scale_factor')::numeric"
            "   * greatest(c.reltuples, 0)::numeric AS autovacuum_due"
            " FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
            " ORDER BY s.n_dead_tup DESC, s.relname"
        ),
    ),
)
QUERY_NAMES = tuple(query.name for query in QUERIES)


def query_named(name: str) -> Query:
    for query in QUERIES:
        if query.name == name:
            return query
    raise KeyError(name)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


class Inspector:
    """One connection for inspecting: each statement its own read-only transaction (so that
    each reads fresh statistics), under the statement timeout."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection
        self.facts = self._read_facts()

    def _read_facts(self) -> ServerFacts:
        row = self.connection.execute(
            "SELECT current_setting('server_version_num')::int, pg_is_in_recovery(),"
            " e.extnamespace::regnamespace::text, e.extversion,"
            " %s = ANY (string_to_array("
            "   replace(current_setting('shared_preload_libraries'), ' ', ''), ','))"
            " FROM (SELECT) AS one LEFT JOIN pg_extension e ON e.extname = %s",
            (STATEMENT_STATISTICS_EXTENSION, STATEMENT_STATISTICS_EXTENSION),
        ).fetchone()
        assert row is not None
        version_num, in_recovery, schema, extension_version, loaded = row
        return ServerFacts(
            version_num=int(version_num),
            in_recovery=bool(in_recovery),
            statements_schema=schema,
            statements_version=_version_tuple(extension_version) if extension_version else None,
            statements_loaded=bool(loaded),
        )

    def rows(
        self, statement: sql.Composable | str, parameters: tuple[Any, ...] = ()
    ) -> QueryResult:
        # No parameters: None, so that a literal % (LIKE 'pg_toast%') is not read as a placeholder.
        cursor = self.connection.execute(statement, parameters or None)  # type: ignore[arg-type]
        columns = [column.name for column in cursor.description or ()]
        return QueryResult("", columns, list(cursor.fetchall()))

    def run(self, query: Query) -> QueryResult:
        if query.needs_statements and not self.facts.statements_ready:
            raise StatementStatisticsMissingError(enable_statements_hint(self.facts))
        result = self.rows(query.build(self.facts))
        return QueryResult(query.name, result.columns, result.rows)


@contextmanager
def inspecting(url: str, statement_timeout_ms: int) -> Iterator[Inspector]:
    """An Inspector on `url` (a direct, un-pooled URL: session settings are used)."""
    with psycopg.connect(
        url,
        autocommit=True,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        application_name=APPLICATION_NAME,
    ) as connection:
        # Set after connecting, not as libpq `options`: a URL may carry options of its own
        # (Neon's `options=endpoint%3D...` for clients without SNI), which those would replace.
        connection.execute(
            sql.SQL("SET statement_timeout = {}").format(sql.Literal(int(statement_timeout_ms)))
        )
        connection.execute("SET default_transaction_read_only = on")
        yield Inspector(connection)
