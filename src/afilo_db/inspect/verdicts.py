"""Verdicts, not only numbers: each check reads the statistics and says ok or bad against a
documented threshold (docs/inspect.md), as PgHero does. `afilo-db inspect check` runs them all
and exits 1 when any is bad.

A check with nothing wrong gives one `ok` finding; a bad one gives a finding per offender (a table,
an index, a session), naming it and the threshold it crossed. `unknown`: the check could not judge
(no statement statistics, too few reads yet); it never fails the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import psycopg

from afilo_db.config import Settings, get_settings
from afilo_db.inspect.queries import (
    APPLICATION_NAME,
    CONNECT_TIMEOUT_SECONDS,
    STATEMENT_CHARACTERS,
    Inspector,
    enable_statements_hint,
)

Status = Literal["ok", "bad", "unknown"]

# Autovacuum's own floor (autovacuum_vacuum_threshold's default): fewer dead rows are noise.
MIN_DEAD_ROWS = 50
# Block accesses (hits + reads) below which a cache hit ratio is too young to mean anything.
MIN_CACHE_ACCESSES = 1000


@dataclass(frozen=True)
class Thresholds:
    cache_hit_min: float
    dead_tuples_max: float
    transaction_max_seconds: float
    blocked_max_seconds: float
    min_table_scans: int
    min_table_rows: int
    replica_max_lag_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Thresholds:
        settings = settings or get_settings()
        return cls(
            cache_hit_min=settings.afilo_inspect_cache_hit_min,
            dead_tuples_max=settings.afilo_inspect_dead_tuples_max,
            transaction_max_seconds=settings.afilo_inspect_transaction_max_minutes * 60,
            blocked_max_seconds=settings.afilo_inspect_blocked_max_seconds,
            min_table_scans=settings.afilo_inspect_min_table_scans,
            min_table_rows=settings.afilo_inspect_min_table_rows,
            replica_max_lag_seconds=settings.replica_max_lag_seconds,
        )


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    subject: str
    """What the finding is about (a table, an index, a session); empty for a whole check."""
    detail: str

    def as_json(self) -> dict[str, str]:
        return asdict(self)


Check = Callable[[Inspector, Thresholds], list[Finding]]


def _judged(check: str, bad: list[Finding], fine: str) -> list[Finding]:
    return bad or [Finding(check, "ok", "", fine)]


def cache_hit(inspector: Inspector, thresholds: Thresholds) -> list[Finding]:
    rows = inspector.rows(
        "SELECT 'index', sum(idx_blks_hit), sum(idx_blks_hit + idx_blks_read)"
        " FROM pg_statio_user_indexes UNION ALL"
        " SELECT 'table', sum(heap_blks_hit), sum(heap_blks_hit + heap_blks_read)"
        " FROM pg_statio_user_tables"
    ).rows
    findings = []
    for kind, hits, accesses in rows:
        if not accesses or accesses < MIN_CACHE_ACCESSES:
            findings.append(
                Finding(
                    "cache-hit",
                    "unknown",
                    f"{kind} reads",
                    f"{accesses or 0} block accesses since the statistics reset, fewer than "
                    f"{MIN_CACHE_ACCESSES}: too few to judge",
                )
            )
            continue
        ratio = float(hits) / float(accesses)
        status: Status = "bad" if ratio < thresholds.cache_hit_min else "ok"
        findings.append(
            Finding(
                "cache-hit",
                status,
                f"{kind} reads",
                f"{ratio:.2%} served from shared buffers (threshold {thresholds.cache_hit_min:.0%})"
                + ("; more memory (shared_buffers) or fewer scans" if status == "bad" else ""),
            )
        )
    return findings


def unused_indexes(inspector: Inspector, thresholds: Thresholds) -> list[Finding]:
    """Indexes no read has used since the statistics reset, on tables read often enough and
    big enough to tell (a small table is best scanned, its indexes unread). Indexes that enforce
    a constraint (primary key, unique, exclusion) are needed unread."""
    rows = inspector.rows(
        "SELECT s.schemaname || '.' || s.relname, s.indexrelname,"
        " pg_relation_size(s.indexrelid), t.seq_scan + coalesce(t.idx_scan, 0)"
        " FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid"
        " JOIN pg_stat_user_tables t ON t.relid = s.relid"
        " WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary"
        " AND NOT i.indisexclusion AND t.seq_scan + coalesce(t.idx_scan, 0) >= %s"
        " AND t.n_live_tup >= %s ORDER BY 3 DESC, 2",
        (thresholds.min_table_scans, thresholds.min_table_rows),
    ).rows
    bad = [
        Finding(
            "unused-index",
            "bad",
            index,
            f"on {table}: never used since the statistics reset while the table was read "
            f"{reads} times (threshold {thresholds.min_table_scans}); {size:,} bytes to keep up "
            "on every write: drop it in a revision (DROP INDEX CONCURRENTLY)",
        )
        for table, index, size, reads in rows
    ]
    return _judged(
        "unused-index", bad, "every index of a table read often enough and big enough is used"
    )


def bloat(inspector: Inspector, thresholds: Thresholds) -> list[Finding]:
    rows = inspector.rows(
        "SELECT schemaname || '.' || relname, n_dead_tup,"
        " n_dead_tup::float8 / nullif(n_live_tup + n_dead_tup, 0)"
        " FROM pg_stat_user_tables"
        " WHERE n_dead_tup >= %s AND n_dead_tup::float8 / nullif(n_live_tup + n_dead_tup, 0) > %s"
        " ORDER BY n_dead_tup DESC",
        (MIN_DEAD_ROWS, thresholds.dead_tuples_max),
    ).rows
    bad = [
        Finding(
            "bloat",
            "bad",
            table,
            f"{dead:,} dead rows, {fraction:.0%} of its rows (threshold "
            f"{thresholds.dead_tuples_max:.0%}): autovacuum is not keeping up; VACUUM it and "
            "see `inspect vacuum-stats`",
        )
        for table, dead, fraction in rows
    ]
    return _judged(
        "bloat", bad, f"no table has more than {thresholds.dead_tuples_max:.0%} dead rows"
    )


def long_transactions(inspector: Inspector, thresholds: Thresholds) -> list[Finding]:
    rows = inspector.rows(
        "SELECT pid, usename, state, extract(epoch FROM now() - xact_start)::float8,"
        f" left(query, {STATEMENT_CHARACTERS})"
        " FROM pg_stat_activity"
        " WHERE xact_start < now() - make_interval(secs => %s)"
        " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        " AND application_name <> %s ORDER BY xact_start",
        (thresholds.transaction_max_seconds, APPLICATION_NAME),
    ).rows
    bad = [
        Finding(
            "long-transaction",
            "bad",
            f"pid {pid}",
            f"{user} has had a transaction open for {seconds:,.0f} s ({state}; threshold "
            f"{thresholds.transaction_max_seconds:g} s): it holds back VACUUM and may hold "
            f"locks; last statement: {statement}",
        )
        for pid, user, state, seconds, statement in rows
    ]
    return _judged(
        "long-transaction",
        bad,
        f"no transaction open longer than {thresholds.transaction_max_seconds:g} s",
    )


def blocked_sessions(inspector: Inspector, thresholds: Thresholds) -> list[Finding]:
    rows = inspector.rows(
        "SELECT pid, pg_blocking_pids(pid), extract(epoch FROM now() - query_start)::float8,"
        f" left(query, {STATEMENT_CHARACTERS})"
        " FROM pg_stat_activity"
        " WHERE cardinality(pg_blocking_pids(pid)) > 0"
        " AND query_start < now() - make_interval(secs => %s) ORDER BY query_start",
        (thresholds.blocked_max_seconds,),
    ).rows
    bad = [
        Finding(
            "blocking",
            "bad",
            f"pid {pid}",
            f"waiting {seconds:,.1f} s (threshold {thresholds.blocked_max_seconds:g} s) on the "
            f"locks of pid {', '.join(str(blocker) for blocker in blockers)}: {statement} "
            "(`inspect blocking` shows what the holder runs)",
        )
        for pid, blockers, seconds, statement in rows
    ]
    return _judged(
        "blocking",
        bad,
        f"no session waiting on a lock longer than {thresholds.blocked_max_seconds:g} s",
    )


def statement_statistics(inspector: Inspector, thresholds: Thresholds) -> list[Finding]:
    if inspector.facts.statements_ready:
        return [Finding("statement-statistics", "ok", "", "pg_stat_statements is collecting")]
    return [Finding("statement-statistics", "unknown", "", enable_statements_hint(inspector.facts))]


# How a standby measures its own lag (PgHero's way): nothing left to replay is no lag, however
# long ago the last transaction was; otherwise the age of the last transaction replayed.
REPLICA_LAG_SQL = (
    "SELECT pg_is_in_recovery(), CASE"
    " WHEN NOT pg_is_in_recovery() THEN 0"
    " WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
    " ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END"
)


def replica_lag(replica_url: str | None, thresholds: Thresholds) -> list[Finding]:
    if replica_url is None:
        return [Finding("replica-lag", "ok", "", "no replica configured (REPLICA_URL)")]
    try:
        with psycopg.connect(
            replica_url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name=APPLICATION_NAME,
        ) as replica:
            row = replica.execute(REPLICA_LAG_SQL).fetchone()
    except psycopg.Error as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return [Finding("replica-lag", "bad", "replica", f"unreachable: {reason}")]
    assert row is not None
    standby, lag = row
    if not standby:
        return [Finding("replica-lag", "bad", "replica", "is not a standby (promoted?)")]
    if lag is None:
        return [Finding("replica-lag", "unknown", "replica", "has replayed no transaction yet")]
    status: Status = "bad" if lag > thresholds.replica_max_lag_seconds else "ok"
    return [
        Finding(
            "replica-lag",
            status,
            "replica",
            f"{lag:,.1f} s behind the primary (threshold REPLICA_MAX_LAG_SECONDS = "
            f"{thresholds.replica_max_lag_seconds:g} s)"
            + ("; the reports read from the primary meanwhile" if status == "bad" else ""),
        )
    ]


CHECKS: dict[str, Check] = {
    "cache-hit": cache_hit,
    "unused-index": unused_indexes,
    "bloat": bloat,
    "long-transaction": long_transactions,
    "blocking": blocked_sessions,
    "statement-statistics": statement_statistics,
}


def run_checks(
    inspector: Inspector,
    thresholds: Thresholds,
    *,
    replica_url: str | None,
    extra: tuple[Check, ...] = (),
) -> list[Finding]:
    """Every check on the primary, then `extra` checks (the schema's promises), then the
    replica's lag."""
    findings: list[Finding] = []
    for check in (*CHECKS.values(), *extra):
        findings.extend(check(inspector, thresholds))
    findings.extend(replica_lag(replica_url, thresholds))
    return findings


def any_bad(findings: list[Finding]) -> bool:
    return any(finding.status == "bad" for finding in findings)
