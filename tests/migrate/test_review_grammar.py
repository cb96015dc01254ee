"""The review's allow list against pglast's own grammar: every statement node and every ALTER
TABLE / ALTER DOMAIN form has a classification, and every examined one a comparator."""

from __future__ import annotations

import inspect

import pytest
from pglast import ast, parse_sql
from pglast.enums import AlterTableType

from afilo_db.migrate.review import classification
from afilo_db.migrate.review.classification import (
    ALTER_DOMAIN_FORMS,
    ALTER_TABLE,
    STATEMENTS,
    alter_table_forms,
    grammar_statements,
)
from afilo_db.migrate.review.families import COMPARATORS, FAMILIES
from afilo_db.migrate.review.locks import LEVELS


def test_every_statement_of_the_grammar_is_classified() -> None:
    generated = grammar_statements()
    assert len(generated) > 100  # the list comes from pglast, not from this file
    assert sorted(generated - STATEMENTS.keys()) == []
    assert sorted(STATEMENTS.keys() - generated) == []


def test_every_alter_table_form_is_classified() -> None:
    assert len(alter_table_forms()) > 60
    assert sorted(form.name for form in alter_table_forms() - ALTER_TABLE.keys()) == []


def test_every_alter_domain_form_the_grammar_writes_is_classified() -> None:
    forms = {
        "ALTER DOMAIN d SET DEFAULT 1",
        "ALTER DOMAIN d DROP DEFAULT",
        "ALTER DOMAIN d SET NOT NULL",
        "ALTER DOMAIN d DROP NOT NULL",
        "ALTER DOMAIN d ADD CHECK (VALUE > 0)",
        "ALTER DOMAIN d DROP CONSTRAINT c",
        "ALTER DOMAIN d VALIDATE CONSTRAINT c",
    }
    letters = set()
    for sql in forms:
        node = parse_sql(sql)[0].stmt
        assert isinstance(node, ast.AlterDomainStmt)
        letters.add(str(node.subtype))
    assert letters == set(ALTER_DOMAIN_FORMS)


@pytest.mark.parametrize(
    "entry",
    [
        *STATEMENTS.values(),
        *ALTER_TABLE.values(),
        *(entry for _, entry in ALTER_DOMAIN_FORMS.values()),
    ],
)
def test_each_classification_is_complete(entry: classification.Classification) -> None:
    assert entry.verdict in ("safe", "examined", "refused")
    assert entry.lock is None or entry.lock in LEVELS
    if entry.verdict == "safe":
        # Safe means safe at any size: nothing that rewrites, scans, loses or refuses rows.
        assert not (entry.rewrites or entry.scans or entry.loses_data or entry.refuses_data)


def test_every_examined_statement_has_a_comparator_in_its_family() -> None:
    for name, entry in STATEMENTS.items():
        if entry.verdict != "examined":
            continue
        comparator = COMPARATORS.get(name)
        assert comparator is not None, f"{name} is examined but has no comparator"
        module = inspect.getmodule(comparator)
        assert module is FAMILIES[entry.family], f"{name}: {entry.family} vs {module}"
    assert set(COMPARATORS) <= {n for n, e in STATEMENTS.items() if e.verdict == "examined"}


def test_forms_that_take_no_table_lock_are_only_the_internal_ones() -> None:
    internal = {form for form, entry in ALTER_TABLE.items() if entry.verdict == "refused"}
    assert {form for form, entry in ALTER_TABLE.items() if entry.lock is None} == internal
    assert AlterTableType.AT_AddColumn not in internal
