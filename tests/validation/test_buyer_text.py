"""One rule for text a buyer sees: validation and the database agree on every character for
descriptions (products, collections) and the chat bot's passages, and ingestion cleans
documents to it instead of refusing them."""

from __future__ import annotations

import sys
import unicodedata

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticError

from afilo_db import rules
from afilo_db.knowledge.chunking import chunk_document, parse_html, parse_text
from afilo_db.validation.checks import BUYER_TEXT_RULE, buyer_text_problem
from afilo_db.validation.database_errors import translate
from afilo_db.validation.types import BuyerText

Connection = psycopg.Connection[tuple[object, ...]]
BUYER_TEXT = TypeAdapter(BuyerText)
# The rule in Unicode's own words, written apart from rules.py: control characters (Cc) but
# tab and line breaks, and the Bidi_Control characters that embed, override or isolate.
EMBEDDINGS_OVERRIDES_ISOLATES = {chr(code) for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}  # fmt: skip
EXPECTED_REFUSED = {
    chr(code)
    for code in range(1, sys.maxunicode + 1)
    if (unicodedata.category(chr(code)) == "Cc" and chr(code) not in "\t\n\r")
} | EMBEDDINGS_OVERRIDES_ISOLATES


def python_accepts(value: str) -> bool:
    try:
        BUYER_TEXT.validate_python(value)
    except PydanticError:
        return False
    return True


def database_accepts(connection: Connection, table: str, value: str) -> bool:
    statements = {
        "products": "INSERT INTO products (handle, title, description) VALUES ('t', 'T', %s)",
        "product_collections": (
            "INSERT INTO product_collections (handle, title, description) VALUES ('t', 'T', %s)"
        ),
        "knowledge_base": (
            "INSERT INTO knowledge_base (content_type, title, content) VALUES ('faq', 'T', %s)"
        ),
    }
    try:
        with connection.transaction(force_rollback=True):
            connection.execute(statements[table], (value,))
    except psycopg.errors.CheckViolation as error:
        translated = translate(error)
        assert translated is not None and BUYER_TEXT_RULE in str(translated)
        return False
    return True


def test_the_rule_is_unicodes_control_and_bidi_override_characters() -> None:
    refused = {
        chr(code)
        for code in range(1, sys.maxunicode + 1)
        if not 0xD800 <= code <= 0xDFFF and buyer_text_problem(chr(code)) is not None
    }
    assert refused == EXPECTED_REFUSED
    # Right-to-left marks, joiners and soft hyphens are text, not tricks.
    for allowed in ("\u200e", "\u200f", "\u061c", "\u200d", "\u200c", "\u00ad", "a\tb\r\nc"):
        assert buyer_text_problem(allowed) is None


texts = st.text(
    alphabet=st.sampled_from([*sorted(EXPECTED_REFUSED)[:40], *EMBEDDINGS_OVERRIDES_ISOLATES,
                              "\t", "\n", "\r", "\u200e", "a", "é", "字", " "]),
    max_size=8,
)  # fmt: skip


@pytest.mark.parametrize("table", ["products", "product_collections", "knowledge_base"])
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=texts)
def test_python_and_the_database_agree(connection: Connection, table: str, value: str) -> None:
    if not value.strip():
        value += "x"  # a passage may not be empty: another rule
    assert database_accepts(connection, table, value) == python_accepts(value)


def test_ingested_documents_are_cleaned_to_the_rule() -> None:
    html = "<h1>Refunds</h1><p>Pay &#x202E;later&#x202C; or\fnow.\x07</p>"
    text = "Licences\n\nA seat\u2066 is\x1b one person.\tTabs stay."
    for document in (parse_html(html, "refunds"), parse_text(text, "licences")):
        for chunk in chunk_document(document):
            assert buyer_text_problem(chunk.title) is None
            assert buyer_text_problem(chunk.content) is None
    [chunk] = chunk_document(parse_html(html, "refunds"))
    assert "Pay later or now." in chunk.content
    assert rules.MULTILINE_ALLOWED == "\t\n\r"
