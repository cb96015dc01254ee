"""The schema-migration checklist on real databases: new, review, test, apply, generate,
confirm, status; refusals, rollback of a failed revision, drift. Revisions are written to a
temporary directory (AFILO_MIGRATIONS_DIR), never into src/."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import CheckConstraint, Column, Index, MetaData, Text, text

from afilo_db.config import get_settings
from afilo_db.data.seed import seed
from afilo_db.errors import ConflictError, ForbiddenError, OperationError, ValidationError
from afilo_db.knowledge.embedders import get_embedder
from afilo_db.migrate import checklist, docs, rehearsal, review, revisions
from afilo_db.migrate.log import Step, entries, latest
from afilo_db.models import Base
from tests.conftest import vectors_shared_by_the_run


@pytest.fixture
def versions_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = tmp_path / "versions"
    monkeypatch.setenv("AFILO_MIGRATIONS_DIR", str(directory))
    get_settings.cache_clear()
    yield directory
    get_settings.cache_clear()


@pytest.fixture
def seeded_url(database_url: str) -> str:
    with vectors_shared_by_the_run(get_embedder()), psycopg.connect(database_url) as connection:
        seed(connection, products=12)
        connection.commit()
    return database_url


def models_with(change: Callable[[MetaData], None]) -> MetaData:
    """A copy of the models with a change made to it, as a developer would edit them."""
    metadata = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(metadata)
    change(metadata)
    return metadata


def add_subtitle(metadata: MetaData) -> None:
    products = metadata.tables["products"]
    products.append_column(Column("subtitle", Text, nullable=True))
    products.append_constraint(CheckConstraint("length(subtitle) <= 200", name="subtitle_length"))
    Index("ix_products_lower_title", text("lower(title)"), _table=products)
    Index(
        "ix_products_active_created_at",
        "created_at",
        postgresql_where=text("status = 'active'"),
        _table=products,
    )


def write_revision(
    directory: Path, revision: str, upgrade: str, downgrade: str = "    pass"
) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    body = f'''"""{revision}"""

from alembic import op

revision = "{revision}"
down_revision = "{revisions.head_revision()}"
branch_labels = None
depends_on = None


def upgrade() -> None:
{upgrade}


def downgrade() -> None:
{downgrade}
'''
    (directory / f"{revision}.py").write_text(body)
    return revision


def product_titles(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        return [row[0] for row in connection.execute("SELECT title FROM products ORDER BY id")]


def column_exists(url: str, table: str, column: str) -> bool:
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT count(*) FROM information_schema.columns"
            " WHERE table_name = %s AND column_name = %s",
            (table, column),
        ).fetchone()
    return bool(row and row[0])


def test_model_change_goes_through_the_checklist_and_status_ends_clean(
    seeded_url: str, versions_dir: Path, tmp_path: Path
) -> None:
    models = models_with(add_subtitle)
    next_number = int(str(revisions.head_revision())[:4]) + 1
    path = revisions.new_revision(seeded_url, "add product subtitle", models)
    assert path is not None and path.parent == versions_dir
    assert path.name == f"{next_number:04d}_add_product_subtitle.py"
    source = path.read_text()
    assert "create_check_constraint" in source
    assert "postgresql_where" in source
    assert "autocommit_block" in source and "postgresql_concurrently=True" in source

    revision = path.stem
    before = checklist.status(seeded_url, tmp_path / "docs", models)
    assert before.pending == [revision] and not before.clean

    reviewed = review.review_pending(seeded_url)
    assert reviewed.passed, [finding.message for finding in reviewed.revisions[0].errors]
    assert "CREATE INDEX CONCURRENTLY ix_products_lower_title" in reviewed.revisions[0].sql

    rehearsed = rehearsal.rehearse(seeded_url, models)
    assert rehearsed.passed, (rehearsed.failure, rehearsed.model_differences)
    assert not column_exists(seeded_url, "products", "subtitle")  # the target is untouched

    applied = checklist.apply(seeded_url, metadata=models)
    assert [item.revision for item in applied.applied] == [revision]
    assert applied.backup is not None and (applied.backup / "manifest.json").exists()
    assert column_exists(seeded_url, "products", "subtitle")

    middle = checklist.status(seeded_url, tmp_path / "docs", models)
    assert not middle.docs_fresh and not middle.clean
    docs.generate(seeded_url, tmp_path / "docs")
    checklist.confirm(seeded_url, revision)

    after = checklist.status(seeded_url, tmp_path / "docs", models)
    assert after.pending == [] and after.model_drift == [] and after.file_drift == []
    assert [item.revision for item in after.checklists] == [revision]
    assert after.checklists[0].done and after.checklists[0].applied_by
    assert after.clean


def test_new_refuses_a_meaningless_name_and_says_when_nothing_changed(
    database_url: str, versions_dir: Path
) -> None:
    for name in ("", "update", "fix", "Fix schema 2"):
        with pytest.raises(ValidationError) as refused:
            revisions.new_revision(database_url, name)
        assert "name" in refused.value.problems
    assert revisions.new_revision(database_url, "add product subtitle") is None
    assert not versions_dir.exists() or not list(versions_dir.glob("*.py"))


def test_autogenerate_sees_what_plain_alembic_misses(database_url: str, versions_dir: Path) -> None:
    def change(metadata: MetaData) -> None:
        products = metadata.tables["products"]
        products.append_constraint(CheckConstraint("length(description) < 50000", name="desc"))
        tags = next(index for index in products.indexes if index.name == "ix_products_tags")
        tags.dialect_options["postgresql"]["using"] = "btree"  # was GIN

    differences = [
        str(item) for item in revisions.model_differences(database_url, models_with(change))
    ]
    assert any("ck_products_desc" in item for item in differences)
    assert any("remove_index" in item and "ix_products_tags" in item for item in differences)

    with psycopg.connect(database_url) as connection:
        connection.execute("CREATE FUNCTION stray() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        connection.execute("ALTER TABLE products DROP CONSTRAINT ck_products_title_format")
        connection.commit()
    differences = [str(item) for item in revisions.model_differences(database_url)]
    assert any("stray" in item for item in differences)
    assert any("ck_products_title_format" in item for item in differences)


def test_a_policy_dropped_changed_or_added_by_hand_is_put_right_by_a_new_revision(
    database_url: str, versions_dir: Path
) -> None:
    with psycopg.connect(database_url) as connection:
        (dropped, dropped_on), (changed, changed_on) = connection.execute(
            "SELECT policyname, tablename FROM pg_policies"
            " WHERE schemaname = 'public' AND cmd IN ('SELECT', 'ALL') AND qual <> 'true'"
            " ORDER BY 1 LIMIT 2"
        ).fetchall()
        connection.execute(f"DROP POLICY {dropped} ON {dropped_on}")
        connection.execute(f"ALTER POLICY {changed} ON {changed_on} USING (true)")
        connection.execute("CREATE POLICY stray_reader ON products FOR SELECT USING (true)")
        connection.commit()
    differences = {(item[0], item[1]) for item in revisions.model_differences(database_url)}
    assert differences == {
        ("create_entity", f"PGPolicy: public.{dropped} public.{dropped_on}"),
        ("replace_or_revert_entity", f"PGPolicy: public.{changed} public.{changed_on}"),
        ("drop_entity", "PGPolicy: public.stray_reader public.products"),
    }

    path = revisions.new_revision(database_url, "put the policies right")
    assert path is not None
    source = path.read_text()
    assert all(f"op.{operation}_entity(" in source for operation in ("create", "replace", "drop"))
    revisions.deploy(database_url)
    assert revisions.model_differences(database_url) == []
    with psycopg.connect(database_url) as connection:
        qual = connection.execute(
            "SELECT qual FROM pg_policies WHERE policyname = %s AND tablename = %s",
            (changed, changed_on),
        ).fetchone()
    assert qual is not None and qual[0] != "true"


def test_a_function_dropped_changed_or_added_by_hand_is_put_right_by_a_new_revision(
    database_url: str, versions_dir: Path
) -> None:
    with psycopg.connect(database_url) as connection:
        connection.execute("DROP FUNCTION analytics_unknown_references(uuid[], uuid[])")
        connection.execute(
            "CREATE OR REPLACE FUNCTION current_clerk_user_id() RETURNS text"
            " LANGUAGE sql STABLE AS $$ SELECT 'user_anyone' $$"
        )
        connection.execute("CREATE FUNCTION stray() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        connection.commit()
    differences = {(item[0], item[1]) for item in revisions.model_differences(database_url)}
    assert differences == {
        (
            "create_entity",
            "PGFunction: public.analytics_unknown_references(users uuid[], products uuid[])",
        ),
        ("replace_or_revert_entity", "PGFunction: public.current_clerk_user_id()"),
        ("drop_entity", "PGFunction: public.stray()"),
    }

    path = revisions.new_revision(database_url, "put the functions right")
    assert path is not None
    source = path.read_text()
    assert all(f"op.{operation}_entity(" in source for operation in ("create", "replace", "drop"))
    revisions.deploy(database_url)
    assert revisions.model_differences(database_url) == []


def test_apply_refuses_an_untested_revision(database_url: str, versions_dir: Path) -> None:
    revision = write_revision(
        versions_dir,
        "0002_add_product_note",
        '    op.execute("ALTER TABLE products ADD COLUMN note text")',
    )
    assert review.review_pending(database_url).passed
    with pytest.raises(ForbiddenError, match="not tested"):
        checklist.apply(database_url)
    assert revisions.pending_revisions(database_url) == [revision]
    assert not column_exists(database_url, "products", "note")


def test_apply_refuses_a_revision_edited_after_its_review(
    database_url: str, versions_dir: Path
) -> None:
    write_revision(
        versions_dir,
        "0002_add_product_note",
        '    op.execute("ALTER TABLE products ADD COLUMN note text")',
    )
    review.review_pending(database_url)
    rehearsal.rehearse(
        database_url,
        models_with(lambda m: m.tables["products"].append_column(Column("note", Text))),
    )
    path = versions_dir / "0002_add_product_note.py"
    path.write_text(path.read_text() + "\n# edited\n")
    with pytest.raises(ForbiddenError, match="changed since"):
        checklist.apply(database_url)


def test_a_revision_failing_half_way_leaves_schema_and_data_as_before(
    seeded_url: str, versions_dir: Path
) -> None:
    revision = write_revision(
        versions_dir,
        "0002_short_titles",
        '    op.execute("ALTER TABLE products ADD COLUMN subtitle text")\n'
        '    op.execute("UPDATE products SET title = upper(title), subtitle = title")\n'
        '    op.execute("ALTER TABLE products ADD CONSTRAINT ck_products_title_short'
        ' CHECK (length(title) <= 60)")',
        '    op.execute("ALTER TABLE products DROP CONSTRAINT ck_products_title_short")\n'
        '    op.execute("ALTER TABLE products DROP COLUMN subtitle")',
    )

    def change(metadata: MetaData) -> None:
        products = metadata.tables["products"]
        products.append_column(Column("subtitle", Text))
        products.append_constraint(CheckConstraint("length(title) <= 60", name="title_short"))

    models = models_with(change)
    assert review.review_pending(seeded_url).passed
    assert rehearsal.rehearse(seeded_url, models).passed
    # Between the rehearsal and production, a row arrives that the new constraint refuses.
    with psycopg.connect(seeded_url) as connection:
        connection.execute(
            "UPDATE products SET title = repeat('x', 80) WHERE id = (SELECT id FROM products ORDER BY id LIMIT 1)"
        )
        connection.commit()
    titles = product_titles(seeded_url)

    with pytest.raises(OperationError, match="rolled back"):
        checklist.apply(seeded_url, metadata=models)

    assert revisions.pending_revisions(seeded_url) == [revision]
    assert not column_exists(seeded_url, "products", "subtitle")
    assert product_titles(seeded_url) == titles


def test_editing_an_applied_revision_is_reported_as_drift(
    database_url: str, versions_dir: Path, tmp_path: Path
) -> None:
    revision = write_revision(
        versions_dir,
        "0002_add_product_note",
        '    op.execute("ALTER TABLE products ADD COLUMN note text")',
        '    op.execute("ALTER TABLE products DROP COLUMN note")',
    )
    models = models_with(lambda m: m.tables["products"].append_column(Column("note", Text)))
    review.review_pending(database_url)
    assert rehearsal.rehearse(database_url, models).passed
    checklist.apply(database_url, metadata=models)
    assert checklist.status(database_url, tmp_path, models).file_drift == []

    path = versions_dir / f"{revision}.py"
    path.write_text(path.read_text().replace("note text", "note varchar(50)"))

    drift = checklist.status(database_url, tmp_path, models).file_drift
    assert [item.revision for item in drift] == [revision]
    assert drift[0].current_checksum == revisions.revision_checksum(revision)
    assert [item.revision for item in checklist.apply(database_url, metadata=models).drift] == [
        revision
    ]


def test_rehearsal_reports_a_failing_revision_and_drops_its_copy(
    database_url: str, versions_dir: Path
) -> None:
    write_revision(versions_dir, "0002_broken", '    op.execute("SELECT 1 / 0")')
    result = rehearsal.rehearse(database_url)
    assert not result.passed and result.failure is not None and "division by zero" in result.failure
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'afilo_rehearsal_%'"
        ).fetchone()
    assert rows == (0,)


def test_confirm_refuses_a_revision_not_applied(database_url: str, versions_dir: Path) -> None:
    write_revision(versions_dir, "0002_add_product_note", '    op.execute("SELECT 1")')
    with pytest.raises(ConflictError):
        checklist.confirm(database_url, "0002_add_product_note")


def test_a_revision_the_review_cannot_classify_is_applied_only_when_accepted_and_logged(
    database_url: str, versions_dir: Path
) -> None:
    revision = write_revision(
        versions_dir,
        "0002_do_block",
        '    op.execute("DO $$ BEGIN PERFORM 1; END $$")',
    )
    reviewed = review.review_pending(database_url)
    assert not reviewed.passed
    (statement,) = reviewed.revisions[0].statements
    assert [finding.rule for finding in statement.findings] == ["unclassified"]
    assert statement.observed is not None and statement.observed["ran"]
    # Recorded as reviewed, with what it could not decide.
    assert latest(entries(database_url), revision, Step.REVIEWED) is not None
    rehearsal.rehearse(database_url)
    with pytest.raises(ForbiddenError, match="--accept-unmeasured"):
        checklist.apply(database_url)
    assert revisions.pending_revisions(database_url) == [revision]
    applied = checklist.apply(database_url, accept_unmeasured=True)
    assert [item.revision for item in applied.applied] == [revision]
    entry = latest(entries(database_url), revision, Step.APPLIED)
    assert entry is not None and entry.details["accept_unmeasured"] is True
    assert "DO block" in entry.details["unmeasured"][0]
