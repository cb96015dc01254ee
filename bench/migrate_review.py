"""`migrate review` of a revision that touches a 1,000,000-row table in every way the review
measures (a blocking index build, a CHECK constraint, SET NOT NULL, a lossy type change, an
UPDATE): how long does the review take? Goal for the prediction (measurements on the target):
under 10 s. The whole review also copies the database and runs the revision on the copy,
statement by statement, observing each: that part costs what the migration itself costs.

Baseline measured in the same run, on the same table: one `SELECT count(*)` (a single scan, the
least any exact measurement costs). Run with `python -m bench.migrate_review [--rows N]`;
figures go to bench/results/migrate_review.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import psycopg

from bench.common import fresh_database, report, scratch_server, timed

ROWS = 1_000_000
GOAL_SECONDS = 10.0
STATEMENTS = (
    "CREATE INDEX ix_bench_rows_account ON bench_rows (account)",
    "ALTER TABLE bench_rows ADD CONSTRAINT ck_bench_rows_amount CHECK (amount >= 0)",
    "ALTER TABLE bench_rows ALTER COLUMN memo SET NOT NULL",
    "ALTER TABLE bench_rows ALTER COLUMN amount TYPE numeric(12, 0)",
    "UPDATE bench_rows SET memo = upper(memo) WHERE account < 10",
)


def write_revision(directory: Path, down_revision: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    body = "\n".join(f"    op.execute({statement!r})" for statement in STATEMENTS)
    (directory / "0100_bench_review.py").write_text(
        f'''"""bench review"""
from alembic import op

revision = "0100_bench_review"
down_revision = "{down_revision}"
branch_labels = None
depends_on = None


def upgrade() -> None:
{body}


def downgrade() -> None:
    pass
'''
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=ROWS)
    rows = parser.parse_args().rows
    versions = Path(tempfile.mkdtemp(prefix="afilo-bench-review-"))
    os.environ["AFILO_MIGRATIONS_DIR"] = str(versions)

    from afilo_db.config import get_settings
    from afilo_db.migrate import review, revisions

    get_settings.cache_clear()
    with scratch_server("review") as server:
        url = fresh_database(server, "bench_review")
        with psycopg.connect(url) as connection:
            connection.execute(
                "CREATE TABLE bench_rows (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
                " account integer NOT NULL, amount numeric(12, 2) NOT NULL, memo text)"
            )
            connection.execute(
                "INSERT INTO bench_rows (account, amount, memo)"
                " SELECT i %% 10000, (i %% 1000) / 4.0, 'row ' || i"
                " FROM generate_series(1, %s) AS i",
                (rows,),
            )
            connection.commit()
            connection.autocommit = True
            connection.execute("VACUUM ANALYZE bench_rows")
        write_revision(versions, str(revisions.head_revision()))

        def count() -> None:
            with psycopg.connect(url) as connection:
                connection.execute("SELECT count(*) FROM bench_rows").fetchone()

        count()  # warm the cache alike for both
        scan_seconds = min(timed(count) for _ in range(3))
        sql = revisions.revision_sql(url, "0100_bench_review")

        def predict() -> None:
            with review.measuring(url) as measurer:
                review.review_sql(measurer, sql, in_transaction=False)

        predict_seconds = timed(predict)
        result: list[review.Review] = []
        review_seconds = timed(lambda: result.append(review.review_pending(url)))
    findings = sorted(
        f"{finding.rule}:{finding.severity}:{finding.count}"
        for finding in result[0].revisions[0].findings
        if finding.source == "afilo-db"
    )
    report(
        "migrate_review",
        {
            "rows": rows,
            "statements": len(STATEMENTS),
            "one_count_scan_s": round(scan_seconds, 3),
            "predict_s": round(predict_seconds, 2),
            "ratio_predict_to_one_scan": round(predict_seconds / scan_seconds, 1),
            "review_with_rehearsal_s": round(review_seconds, 2),
            "ratio_review_to_one_scan": round(review_seconds / scan_seconds, 1),
            "findings": findings,
            "goal_s": GOAL_SECONDS,
            "goal_met": predict_seconds < GOAL_SECONDS,
        },
    )


if __name__ == "__main__":
    main()
