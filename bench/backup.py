"""Backup plus verify against plain pg_dump of the same database, measured in the same run.

    python -m bench.backup [--gigabytes 1.0] [--products 20000]

Seeds a database of at least the given size (the seed's catalog, users and chats, then bulk
events with generate_series) on an embedded server of its own under bench/results/backup-home,
kept between runs so the next run skips the seeding. Then times:
  baseline  `pg_dump` to a plain SQL file (one job, no manifest, no proof);
  backup    `create_backup`: pg_dump -Fd in parallel, file checksums, table checksums;
  verify    `verify_backup`: file checksums, pg_restore into a scratch database, table checksums,
            pg_amcheck.
and prints each as a ratio to the baseline. Figures go to bench/results/backup.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from pathlib import Path

import psycopg

from afilo_db.backups.create import DEFAULT_JOBS, create_backup
from afilo_db.backups.verify import verify_backup
from afilo_db.data import seed
from afilo_db.db.embedded import EmbeddedServer
from afilo_db.db.programs import connection_arguments, pg_binary
from afilo_db.migrate.revisions import deploy

RESULTS = Path(__file__).parent / "results"
HOME = RESULTS / "backup-home"
EVENT_BATCH = 500_000
BULK_EVENTS = """
INSERT INTO events (occurred_at, event_type, user_id, product_id, session_id, properties)
SELECT %(start)s::timestamptz + (i %% 500000) * interval '1 minute',
       (ARRAY['product.viewed', 'cart.item_added', 'checkout.completed', 'search.performed'])[1 + i %% 4],
       users[1 + i %% cardinality(users)],
       products[1 + i %% cardinality(products)],
       's' || (i / 7),
       jsonb_build_object('source', 'web', 'query', 'template ' || (i %% 997), 'page', i %% 50)
FROM generate_series(%(first)s, %(last)s) AS i,
     (SELECT array_agg(id) AS users FROM user_profiles) AS u,
     (SELECT array_agg(id) AS products FROM (SELECT id FROM products LIMIT 5000) p) AS p
"""


def database_size(url: str) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return int(row[0])


def prepare(server: EmbeddedServer, products: int, minimum_bytes: int) -> str:
    server.start()
    url = server.url()
    deploy(url)
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT count(*) FROM products").fetchone()
        if row is not None and row[0] == 0:
            started = time.monotonic()
            seed.seed(connection, products=products)
            connection.commit()
            print(f"seeded {products:,} products in {time.monotonic() - started:.0f}s", flush=True)
        row = connection.execute("SELECT count(*) FROM events").fetchone()
        next_event = int(row[0]) if row else 0
    while (size := database_size(url)) < minimum_bytes:
        print(f"database {size / 1e9:.2f} GB, adding {EVENT_BATCH:,} events", flush=True)
        with psycopg.connect(url) as connection:
            connection.execute(
                BULK_EVENTS,
                {
                    "start": seed.BASE_TIME,
                    "first": next_event,
                    "last": next_event + EVENT_BATCH - 1,
                },
            )
            connection.commit()
        next_event += EVENT_BATCH
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
    return url


class StageClock:
    """A progress callback that keeps how long each stage (its label) took, in seconds."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._stage: str | None = None
        self._since = time.monotonic()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage:
            self.finish()
            self._stage = stage

    def finish(self) -> None:
        now = time.monotonic()
        if self._stage is not None:
            self.seconds[self._stage] = round(
                self.seconds.get(self._stage, 0.0) + now - self._since, 2
            )
        self._since, self._stage = now, None


def timed_plain_dump(url: str, out: Path) -> float:
    conninfo, environment = connection_arguments(url)
    started = time.monotonic()
    subprocess.run(
        [str(pg_binary("pg_dump")), "--dbname", conninfo, "--file", str(out)],
        env=environment, check=True,
    )  # fmt: skip
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--products", type=int, default=20_000)
    arguments = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    server = EmbeddedServer(HOME.resolve())
    try:
        run(server, arguments.products, int(arguments.gigabytes * 1024**3))
    finally:
        server.stop()


def run(server: EmbeddedServer, products: int, minimum_bytes: int) -> None:
    url = prepare(server, products, minimum_bytes)
    size = database_size(url)
    scratch = RESULTS / "backup-scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        baseline = timed_plain_dump(url, scratch / "plain.sql")
        plain_bytes = (scratch / "plain.sql").stat().st_size
        backup_stages, verify_stages = StageClock(), StageClock()
        started = time.monotonic()
        manifest = create_backup(
            url, label="bench", directory=scratch / "backups", progress=backup_stages
        )
        backup_seconds = time.monotonic() - started
        backup_stages.finish()
        started = time.monotonic()
        verified = verify_backup(
            manifest.id, url, directory=scratch / "backups", progress=verify_stages
        )
        verify_seconds = time.monotonic() - started
        verify_stages.finish()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert verified.verified, verified.verification
    figures = {
        "database_bytes": size,
        "rows": sum(table.rows for table in manifest.tables.values()),
        "jobs": DEFAULT_JOBS,
        "plain_pg_dump_seconds": round(baseline, 2),
        "plain_pg_dump_bytes": plain_bytes,
        "backup_seconds": round(backup_seconds, 2),
        "backup_bytes": manifest.size_bytes,
        "verify_seconds": round(verify_seconds, 2),
        "backup_stage_seconds": backup_stages.seconds,
        "verify_stage_seconds": verify_stages.seconds,
        "amcheck": verified.verification.amcheck if verified.verification else None,
        "backup_ratio": round(backup_seconds / baseline, 2),
        "verify_ratio": round(verify_seconds / baseline, 2),
        "backup_plus_verify_ratio": round((backup_seconds + verify_seconds) / baseline, 2),
    }
    (RESULTS / "backup.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(
        f"database {size / 1e9:.2f} GB, {figures['rows']:,} rows, {DEFAULT_JOBS} jobs\n"
        f"plain pg_dump (baseline)  {baseline:8.1f}s  1.00x  ({plain_bytes / 1e6:,.0f} MB)\n"
        f"backup create             {backup_seconds:8.1f}s  {figures['backup_ratio']:.2f}x"
        f"  ({manifest.size_bytes / 1e6:,.0f} MB, checksums of every file and table)\n"
        f"backup verify             {verify_seconds:8.1f}s  {figures['verify_ratio']:.2f}x"
        f"  (restore, compare, amcheck {figures['amcheck']})\n"
        f"backup + verify           {backup_seconds + verify_seconds:8.1f}s"
        f"  {figures['backup_plus_verify_ratio']:.2f}x\n"
        f"backup stages: {backup_stages.seconds}\nverify stages: {verify_stages.seconds}"
    )


if __name__ == "__main__":
    main()
