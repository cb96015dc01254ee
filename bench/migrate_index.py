"""A new index on a 1,000,000-row table through `migrate apply` while another connection keeps
writing to the table: how long does any single write wait?

Baselines measured in the same run, on the same server and table: the same writes with no
migration running, and with a plain (blocking) CREATE INDEX instead of apply's concurrent build.
Run with `python -m bench.migrate_index`; figures go to bench/results/migrate_index.json.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from sqlalchemy import BigInteger, Column, Identity, Index, Integer, MetaData, Numeric, Table

ROWS = 1_000_000
GOAL_SECONDS = 1.0
RESULTS = Path(__file__).parent / "results" / "migrate_index.json"


def bench_models() -> MetaData:
    from afilo_db.models import Base

    metadata = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(metadata)
    Table(
        "bench_writes",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("account", Integer, nullable=False),
        Column("amount", Numeric(12, 2), nullable=False),
    )
    return metadata


def with_index(metadata: MetaData) -> MetaData:
    Index("ix_bench_writes_account", "account", _table=metadata.tables["bench_writes"])
    return metadata


class Writer(threading.Thread):
    """Inserts and updates rows of bench_writes, one autocommitted statement at a time."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.waits: list[float] = []

    def run(self) -> None:
        generator = random.Random(7)
        with psycopg.connect(self.url, autocommit=True) as connection:
            while not self.stop.is_set():
                started = time.perf_counter()
                if generator.random() < 0.5:
                    connection.execute(
                        "INSERT INTO bench_writes (account, amount) VALUES (%s, 1)",
                        (generator.randrange(10_000),),
                    )
                else:
                    connection.execute(
                        "UPDATE bench_writes SET amount = amount + 1 WHERE id = %s",
                        (generator.randrange(1, ROWS),),
                    )
                self.waits.append(time.perf_counter() - started)
                time.sleep(0.002)


def while_writing(url: str, work: Callable[[], object]) -> tuple[float, int, float]:
    """(max write wait in seconds, writes done, duration of the work in seconds)."""
    writer = Writer(url)
    writer.start()
    time.sleep(0.5)
    started = time.perf_counter()
    work()
    duration = time.perf_counter() - started
    time.sleep(0.2)
    writer.stop.set()
    writer.join()
    return max(writer.waits), len(writer.waits), duration


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="afilo-bench-"))
    os.environ["AFILO_HOME"] = str(home)
    os.environ["AFILO_MIGRATIONS_DIR"] = str(home / "versions")
    os.environ.pop("DATABASE_URL", None)

    from afilo_db.db.databases import copy_database, create_database
    from afilo_db.db.embedded import EmbeddedServer
    from afilo_db.migrate import checklist, rehearsal, review, revisions

    server = EmbeddedServer(home / "server")
    server.start()
    try:
        url = create_database(server.url("postgres"), "bench")
        revisions.deploy(url)
        table_models = bench_models()
        create = revisions.new_revision(url, "add bench writes table", table_models)
        assert create is not None
        revisions.deploy(url)
        with psycopg.connect(url) as connection:
            connection.execute(
                "INSERT INTO bench_writes (account, amount)"
                " SELECT (i::bigint * 7919) %% 10000, (i %% 1000) / 10.0 FROM generate_series(1, %s) AS i",
                (ROWS,),
            )
            connection.commit()
            connection.autocommit = True
            connection.execute("VACUUM ANALYZE bench_writes")
        # The baseline database, a copy made before the index exists.
        copy_database(url, "bench_plain")
        plain_url = server.url("bench_plain")

        index_models = with_index(bench_models())
        revision = revisions.new_revision(url, "index bench writes by account", index_models)
        assert revision is not None
        reviewed = review.review_pending(url)
        assert reviewed.passed, [f.message for r in reviewed.revisions for f in r.errors]
        rehearsed = rehearsal.rehearse(url, index_models)
        assert rehearsed.passed, rehearsed.failure

        idle_wait, idle_writes, _ = while_writing(url, lambda: time.sleep(3))
        apply_wait, apply_writes, apply_seconds = while_writing(
            url, lambda: checklist.apply(url, metadata=index_models)
        )

        def plain_index() -> None:
            with psycopg.connect(plain_url, autocommit=True) as connection:
                connection.execute("CREATE INDEX ix_plain ON bench_writes (account)")

        plain_wait, plain_writes, plain_seconds = while_writing(plain_url, plain_index)
    finally:
        server.destroy()

    figures = {
        "rows": ROWS,
        "max_write_wait_s": {
            "no_migration": round(idle_wait, 4),
            "apply_concurrent_index": round(apply_wait, 4),
            "plain_create_index": round(plain_wait, 4),
        },
        "writes": {"no_migration": idle_writes, "apply": apply_writes, "plain": plain_writes},
        "duration_s": {
            "apply_with_backup": round(apply_seconds, 2),
            "plain_create_index": round(plain_seconds, 2),
        },
        "ratio_apply_to_no_migration": round(apply_wait / idle_wait, 1),
        "ratio_plain_to_no_migration": round(plain_wait / idle_wait, 1),
        "goal_met": apply_wait < GOAL_SECONDS,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2))
    print(f"new index on a {ROWS:,}-row table while another connection writes to it")
    print(f"  max write wait, no migration:             {idle_wait * 1000:8.1f} ms (1.0x)")
    print(
        f"  max write wait, migrate apply (concurrent): {apply_wait * 1000:8.1f} ms "
        f"({figures['ratio_apply_to_no_migration']}x), {apply_writes} writes in {apply_seconds:.1f} s"
    )
    print(
        f"  max write wait, plain CREATE INDEX:         {plain_wait * 1000:8.1f} ms "
        f"({figures['ratio_plain_to_no_migration']}x), {plain_writes} writes in {plain_seconds:.1f} s"
    )
    print(f"  goal (no write waits more than 1 s): {'met' if figures['goal_met'] else 'NOT met'}")


if __name__ == "__main__":
    main()
