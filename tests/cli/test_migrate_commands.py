"""The migrate commands through the command line, as an operator or a script runs them."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from afilo_db.config import get_settings
from afilo_db.data.seed import seed
from afilo_db.knowledge.embedders import get_embedder
from afilo_db.migrate import revisions
from afilo_db.migrate.log import Step, record
from tests.cli.invoke import as_a_process, in_process
from tests.conftest import vectors_shared_by_the_run


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The command in this process (tests/cli/invoke.py): its output and exit code."""
    return in_process({"COLUMNS": "200", **env}, *args)


def write_revision(directory: Path, revision: str, statement: str, undo: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{revision}.py").write_text(
        f'''"""{revision}"""
from alembic import op

revision = "{revision}"
down_revision = "{revisions.head_revision()}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("{statement}")


def downgrade() -> None:
    op.execute("{undo}")
'''
    )


def seed_products(url: str) -> None:
    with vectors_shared_by_the_run(get_embedder()), psycopg.connect(url) as connection:
        seed(connection, products=5)
        connection.commit()


def seeded_with_index_revision(url: str, directory: Path) -> dict[str, str]:
    """Five products and a pending revision that builds an index on them without
    CONCURRENTLY; the environment that runs the command line on them."""
    seed_products(url)
    write_revision(
        directory,
        "0002_index_titles",
        "CREATE INDEX ix_products_title ON products (title)",
        "DROP INDEX ix_products_title",
    )
    return {"DATABASE_URL": url, "AFILO_MIGRATIONS_DIR": str(directory)}


def test_review_flags_a_blocking_index_build_and_exits_non_zero(
    database_url: str, tmp_path: Path
) -> None:
    env = seeded_with_index_revision(database_url, tmp_path)
    result = run(env, "migrate", "review", "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert not report["passed"]
    statement = report["revisions"][0]["statements"][0]
    assert statement["lock"] == "SHARE" and statement["table"] == "products"
    # Predicted (the allow list's classification, then the measured lock) and observed on a
    # rehearsal copy, side by side.
    assert statement["predicted"]["family"] == "tables"
    assert statement["predicted"]["verdict"] == "examined"
    assert statement["observed"]["locks"] == {"products": "SHARE"}
    assert statement["observed"]["disagreements"] == []
    rules = {finding["rule"] for finding in statement["findings"]}
    assert rules == {"blocking-index-build"}
    assert "CONCURRENTLY" in statement["findings"][0]["recipe"]
    assert "require-concurrent-index-creation" in {
        item["rule"] for item in report["revisions"][0]["lint"]
    }

    readable = run(env, "migrate", "review")
    assert readable.returncode == 1
    assert "CREATE INDEX ix_products_title ON products (title)" in readable.stdout
    assert "blocking-index-build" in readable.stdout


def test_apply_refuses_an_untested_revision(database_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": database_url, "AFILO_MIGRATIONS_DIR": str(tmp_path)}
    write_revision(
        tmp_path,
        "0002_add_note",
        "ALTER TABLE products ADD COLUMN note text",
        "ALTER TABLE products DROP COLUMN note",
    )
    assert run(env, "migrate", "review").returncode == 0
    result = run(env, "migrate", "apply")
    assert result.returncode == 5
    assert "0002_add_note: not tested" in result.stderr
    status = json.loads(run(env, "migrate", "status", "--json", "--docs", str(tmp_path)).stdout)
    assert status["pending"] == ["0002_add_note"]
    assert status["checklists"][0]["reviewed"] and not status["checklists"][0]["tested"]
    assert not status["clean"]


def test_two_concurrent_applies_apply_once(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AFILO_MIGRATIONS_DIR", str(tmp_path))
    get_settings.cache_clear()
    env = {"DATABASE_URL": database_url, "AFILO_MIGRATIONS_DIR": str(tmp_path)}
    write_revision(
        tmp_path,
        "0002_add_note",
        "ALTER TABLE products ADD COLUMN note text",
        "ALTER TABLE products DROP COLUMN note",
    )
    # Reviewed and tested (the rehearsal needs models with the column: tests/ops does that).
    for step in (Step.REVIEWED, Step.TESTED):
        record(database_url, "0002_add_note", step, revisions.revision_checksum("0002_add_note"))

    # Two processes of their own: the commands race for the database, not for this process.
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: as_a_process(env, "migrate", "apply"), range(2)))

    assert [result.returncode for result in results] == [0, 0], [r.stderr for r in results]
    outputs = sorted(result.stdout for result in results)
    assert sum("applied 0002_add_note" in output for output in outputs) == 1
    assert sum("nothing to apply" in output for output in outputs) == 1
    with psycopg.connect(database_url) as connection:
        applied = connection.execute(
            "SELECT count(*) FROM afilo_ops.migration_log WHERE step = 'applied'"
        ).fetchone()
    assert applied == (1,)
    assert revisions.pending_revisions(database_url) == []
    get_settings.cache_clear()


def test_db_push_refuses_a_destructive_change_with_the_row_count(
    database_url: str, tmp_path: Path
) -> None:
    with vectors_shared_by_the_run(get_embedder()), psycopg.connect(database_url) as connection:
        seed(connection, products=4)
        connection.commit()  # ALTER TABLE waits for no pending (deferred) constraint trigger
        # The database holds a column the models do not have: push would drop it.
        connection.execute("ALTER TABLE products ADD COLUMN legacy_code text DEFAULT 'x'")
        connection.commit()
    result = run({"DATABASE_URL": database_url}, "db", "push")
    assert result.returncode == 4
    assert "dropping products.legacy_code loses 4 values" in result.stderr

    accepted = run({"DATABASE_URL": database_url}, "db", "push", "--accept-data-loss")
    assert accepted.returncode == 0, accepted.stderr
    assert "DROP COLUMN legacy_code" in accepted.stdout


def test_generate_writes_the_schema_reference_and_a_diagram(
    database_url: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": database_url}
    result = run(env, "generate", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    document = (tmp_path / "schema.md").read_text()
    assert "erDiagram" in document and "products ||--o{ product_variants" in document
    assert "## product_pricing_tiers" in document and "exclude: `EXCLUDE USING gist" in document
    assert "ix_knowledge_base_embedding" in document and "USING hnsw" in document
    assert (tmp_path / "schema.svg").read_text().lstrip().startswith("<?xml")
    status = json.loads(run(env, "migrate", "status", "--json", "--docs", str(tmp_path)).stdout)
    assert status["docs_fresh"] and status["clean"]

    with psycopg.connect(database_url) as connection:
        connection.execute("CREATE INDEX ix_products_title ON products (title)")
        connection.commit()
    status = json.loads(run(env, "migrate", "status", "--json", "--docs", str(tmp_path)).stdout)
    assert not status["docs_fresh"]


def test_a_review_that_cannot_measure_fails_and_apply_needs_the_flag_which_is_logged(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AFILO_MIGRATIONS_DIR", str(tmp_path))
    get_settings.cache_clear()
    seed_products(database_url)
    env = {"DATABASE_URL": database_url, "AFILO_MIGRATIONS_DIR": str(tmp_path)}
    revision = "0002_short_titles"
    write_revision(
        tmp_path,
        revision,
        "ALTER TABLE products ADD CONSTRAINT ck_products_title_short CHECK (length(title) < 300)",
        "ALTER TABLE products DROP CONSTRAINT ck_products_title_short",
    )
    # Another session holds the table: every measurement of it waits, then times out.
    with psycopg.connect(database_url) as holder:
        holder.execute("LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
        result = run(env, "migrate", "review", "--json", "--measure-timeout", "300ms")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert not report["passed"]
    assert report["revisions"][0]["unmeasured"]
    assert all("could not measure" in item for item in report["revisions"][0]["unmeasured"])

    record(database_url, revision, Step.TESTED, revisions.revision_checksum(revision))
    refused = run(env, "migrate", "apply")
    assert refused.returncode == 5
    assert "could not measure" in refused.stderr and "--accept-unmeasured" in refused.stderr
    assert revisions.pending_revisions(database_url) == [revision]

    accepted = run(env, "migrate", "apply", "--accept-unmeasured")
    assert accepted.returncode == 0, accepted.stderr
    assert revisions.pending_revisions(database_url) == []
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT details FROM afilo_ops.migration_log WHERE revision = %s AND step = 'applied'",
            (revision,),
        ).fetchone()
    assert row is not None
    assert row[0]["accept_unmeasured"] is True
    assert any("could not measure" in item for item in row[0]["unmeasured"])
    get_settings.cache_clear()


def test_review_thresholds_come_from_options(database_url: str, tmp_path: Path) -> None:
    env = seeded_with_index_revision(database_url, tmp_path)
    assert run(env, "migrate", "review").returncode == 1
    tiny = run(env, "migrate", "review", "--json", "--tiny-rows", "100")
    assert tiny.returncode == 0, tiny.stdout
    finding = json.loads(tiny.stdout)["revisions"][0]["statements"][0]["findings"][0]
    assert finding["severity"] == "info" and finding["count"] == 5
    bad = run(env, "migrate", "review", "--measure-timeout", "soon")
    assert bad.returncode == 2 and "measure-timeout" in bad.stderr
