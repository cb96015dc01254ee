"""knowledge_terms: how many published passages hold each lexeme, kept by the trigger on
knowledge_base through every kind of write, and what knowledge search weighs words by."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from afilo_db.services import knowledge

Connection = psycopg.Connection[tuple[object, ...]]


def kept(connection: Connection) -> dict[str, int]:
    rows = connection.execute("SELECT lexeme, passages FROM knowledge_terms")
    return {str(lexeme): int(str(passages)) for lexeme, passages in rows}


def counted(connection: Connection) -> dict[str, int]:
    """PostgreSQL's own count, over the published passages."""
    rows = connection.execute(
        "SELECT word, ndoc FROM ts_stat('SELECT searchable_text FROM knowledge_base"
        " WHERE is_published')"
    )
    return {str(word): int(str(ndoc)) for word, ndoc in rows}


def add(connection: Connection, title: str, content: str, *, published: bool = True) -> None:
    connection.execute(
        "INSERT INTO knowledge_base (content_type, title, content, is_published, source)"
        " VALUES ('faq', %s, %s, %s, 'test:' || %s)",
        (title, content, published, title),
    )


def test_the_counts_follow_inserts_updates_publishing_and_deletes(connection: Connection) -> None:
    connection.execute("DELETE FROM knowledge_base")
    assert kept(connection) == {}
    add(connection, "Refunds", "Refunds within 14 days of purchase")
    add(connection, "Invoices", "Invoices show the VAT of each purchase")
    add(connection, "Draft", "Unreleased pricing for wombats", published=False)
    assert kept(connection) == counted(connection)
    assert kept(connection)["purchas"] == 2
    assert "wombat" not in kept(connection)  # an unpublished draft's words are not counted

    connection.execute(
        "UPDATE knowledge_base SET content = 'Refunds within 30 days' WHERE title = 'Refunds'"
    )
    assert kept(connection) == counted(connection)
    assert kept(connection)["purchas"] == 1

    connection.execute("UPDATE knowledge_base SET is_published = NOT is_published")
    assert kept(connection) == counted(connection)
    assert set(kept(connection)) == {"draft", "unreleas", "price", "wombat"}

    # An update that leaves the text and publication alone changes nothing.
    connection.execute("UPDATE knowledge_base SET chunk_index = chunk_index")
    assert kept(connection) == counted(connection)

    connection.execute("DELETE FROM knowledge_base WHERE title = 'Draft'")
    assert kept(connection) == {}

    add(connection, "Refunds", "Refunds within 14 days")
    connection.execute("TRUNCATE knowledge_base")
    assert kept(connection) == {}


def test_the_application_role_reads_the_counts_but_cannot_write_them(
    connection: Connection, engine: Engine
) -> None:
    add(connection, "Wombats", "Wombat licences")
    connection.commit()
    with engine.connect() as app:
        app.exec_driver_sql("SET ROLE afilo_app")
        assert (
            app.exec_driver_sql(
                "SELECT passages FROM knowledge_terms WHERE lexeme = 'wombat'"
            ).scalar_one()
            == 1
        )
        with pytest.raises(DBAPIError, match="permission denied"):
            app.exec_driver_sql("UPDATE knowledge_terms SET passages = 99")


def lexical_ranks(engine: Engine, question: str) -> dict[str, tuple[int, float]]:
    """Title -> (rank in the lexical list, coverage: the share of the question's weight held)."""
    with Session(engine) as session:
        found = knowledge.search(session, question, mode="fulltext", min_relevance=0, limit=10)
    return {p.title: (p.fulltext_rank, p.coverage) for p in found if p.fulltext_rank}


def test_search_weighs_words_by_the_counts_of_knowledge_terms(
    connection: Connection, engine: Engine
) -> None:
    # "licence" is in every passage, "wombat" in one: the passage with the rare word is first,
    # and "wombat" is most of the question's weight.
    for number in range(6):
        add(connection, f"Licence {number}", f"Licence terms, part {number}")
    add(connection, "Wombat", "The wombat licence")
    connection.commit()
    ranks = lexical_ranks(engine, "wombat licence")
    assert ranks["Wombat"] == (1, 1.0)
    assert ranks["Licence 0"][1] < 0.5

    # The weights are the table's, not a count of the index: told that "wombat" is common, the
    # search weighs it next to nothing.
    connection.execute(
        "UPDATE knowledge_terms SET passages = %s WHERE lexeme = 'wombat'",
        (knowledge.COMMON_TERM_PASSAGES,),
    )
    connection.commit()
    ranks = lexical_ranks(engine, "wombat licence")
    assert len(ranks) == 7
    assert ranks["Licence 0"][1] > 0.99
