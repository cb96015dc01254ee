"""The schema's promises on the live database: declared indexes present, valid and used;
row-level security enabled and forced; no login of the application's above the policies."""

from __future__ import annotations

from dataclasses import replace

import psycopg

from afilo_db.inspect.promises import (
    declared_index_check,
    declared_indexes,
    role_check,
    row_security_check,
)
from afilo_db.inspect.queries import Inspector
from afilo_db.security.policies import TABLES
from afilo_db.security.roles import APP_ROLE
from tests.db.test_schema import EXPECTED_INDEXES
from tests.inspect.conftest import QUICK, flush_statistics
from tests.inspect.test_verdicts import bad, subjects

Session = psycopg.Connection[tuple[object, ...]]
CHAT_INDEX = "ix_chat_messages_conversation_id_created_at"
CHAT_INDEX_SQL = f"CREATE INDEX {CHAT_INDEX} ON chat_messages (conversation_id, created_at)"


def test_the_models_mark_the_issue_s_hot_indexes_critical() -> None:
    critical = {index.name for index in declared_indexes() if index.critical}
    assert {
        "uq_products_handle", "uq_products_stripe_product_id", "ix_products_tags",
        "ix_products_tech_stack", "uq_product_variants_stripe_price_id",
        "ix_knowledge_base_embedding", "ix_knowledge_base_searchable_text", CHAT_INDEX,
    } <= critical  # fmt: skip
    declared = {index.name for index in declared_indexes()}
    assert {
        definition.split(" ON ")[0].split()[-1] for _, definition in EXPECTED_INDEXES
    } <= declared


def test_a_fresh_database_keeps_every_promise(inspector: Inspector) -> None:
    for check in (declared_index_check, row_security_check, role_check()):
        assert bad(check(inspector, QUICK)) == []


def test_a_missing_declared_index(inspector: Inspector, session: Session) -> None:
    session.execute(f"DROP INDEX {CHAT_INDEX}")
    findings = declared_index_check(inspector, QUICK)
    assert subjects(findings) == {CHAT_INDEX}
    assert "missing" in bad(findings)[0].detail

    session.execute(CHAT_INDEX_SQL)
    assert bad(declared_index_check(inspector, QUICK)) == []


def test_an_invalid_declared_index(inspector: Inspector, session: Session) -> None:
    # What a failed CREATE INDEX CONCURRENTLY leaves behind.
    session.execute(
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", (CHAT_INDEX,)
    )
    findings = declared_index_check(inspector, QUICK)
    assert subjects(findings) == {CHAT_INDEX} and "INVALID" in bad(findings)[0].detail

    session.execute(f"DROP INDEX {CHAT_INDEX}")
    session.execute(CHAT_INDEX_SQL)
    assert bad(declared_index_check(inspector, QUICK)) == []


def test_a_critical_index_unused_while_its_table_is_read(
    inspector: Inspector, session: Session
) -> None:
    # The test's products table is empty: judged as if it were big.
    thresholds = replace(QUICK, min_table_rows=0)
    for _ in range(QUICK.min_table_scans):
        session.execute("SELECT count(*) FROM products")
    flush_statistics(session)
    assert bad(declared_index_check(inspector, QUICK)) == []  # small: a scan is right
    findings = declared_index_check(inspector, thresholds)
    # Every critical index on products; not the unmarked ones (uq_products_id_status).
    assert subjects(findings) == {
        "uq_products_handle", "uq_products_stripe_product_id", "ix_products_tags",
        "ix_products_tech_stack",
    }  # fmt: skip

    session.execute("SET enable_seqscan = off")
    session.execute("SELECT id FROM products WHERE handle = 'a'")
    session.execute("SELECT id FROM products WHERE stripe_product_id = 'prod_a'")
    session.execute("SELECT id FROM products WHERE tags @> ARRAY['a']")
    session.execute("SELECT id FROM products WHERE tech_stack @> ARRAY['a']")
    flush_statistics(session)
    assert bad(declared_index_check(inspector, thresholds)) == []


def test_row_security_not_forced(inspector: Inspector, session: Session) -> None:
    assert "products" in {table.table for table in TABLES}
    session.execute("ALTER TABLE products NO FORCE ROW LEVEL SECURITY")
    session.execute("ALTER TABLE downloads DISABLE ROW LEVEL SECURITY")
    findings = row_security_check(inspector, QUICK)
    assert subjects(findings) == {"products", "downloads"}
    by_table = {finding.subject: finding.detail for finding in findings}
    assert "ALTER TABLE products FORCE ROW LEVEL SECURITY" in by_table["products"]
    assert "not enabled" in by_table["downloads"]

    session.execute("ALTER TABLE products FORCE ROW LEVEL SECURITY")
    session.execute("ALTER TABLE downloads ENABLE ROW LEVEL SECURITY")
    assert bad(row_security_check(inspector, QUICK)) == []


def test_an_application_login_that_bypasses_row_security(
    inspector: Inspector, session: Session
) -> None:
    # A login of its own: roles are the whole server's, and other tests use afilo_app.
    login = "inspect_probe_login"
    session.execute(f"DROP ROLE IF EXISTS {login}")
    session.execute(f"CREATE ROLE {login} LOGIN BYPASSRLS")
    try:
        findings = role_check(login)(inspector, QUICK)
        assert subjects(findings) == {login}
        assert "BYPASSRLS" in bad(findings)[0].detail

        session.execute(f"ALTER ROLE {login} NOBYPASSRLS")
        findings = role_check(login)(inspector, QUICK)
        assert bad(findings) == [] and APP_ROLE in findings[0].detail
    finally:
        session.execute(f"DROP ROLE {login}")
