"""The vector list through its HNSW index: on a table large enough that the planner prefers the
index, the search statement's plan reads it, and what the list finds is exact search's top."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from afilo_db.db.embedded import EmbeddedServer
from afilo_db.db.engine import create_app_engine
from afilo_db.knowledge.embedders import MINILM_MODEL, MINILM_RELEVANCE, Vectors, unit_rows
from afilo_db.services import knowledge
from tests.conftest import database_copy
from tests.knowledge.plans import generic_plan, plan_nodes

# Enough rows that a sequential scan ordered by distance costs the planner more than the index.
CHUNKS = 2_000
CLUSTERS = 40
QUESTIONS = 5
VECTOR_INDEX = "ix_knowledge_base_embedding"


def clustered_vectors(rows: int, seed: int) -> Vectors:
    """Unit vectors around a few centres, as real embeddings are (uniform random ones are not)."""
    rng = np.random.default_rng(seed)
    centres = unit_rows(rng.normal(size=(CLUSTERS, 384)))
    noisy = centres[rng.integers(0, CLUSTERS, rows)] + rng.normal(0, 0.04, size=(rows, 384))
    return unit_rows(noisy)


class FixedEmbedder:
    """Embeds every text as one given vector: the question is the vector under test."""

    model_name = MINILM_MODEL

    def __init__(self, vector: Vectors) -> None:
        self.vector = vector

    def embed(self, texts: Sequence[str]) -> Vectors:
        return np.repeat(self.vector[None, :], len(texts), axis=0)


@pytest.fixture(scope="module")
def chunks(server: EmbeddedServer, template_database: str) -> Iterator[tuple[str, Vectors]]:
    """A knowledge base of CHUNKS synthetic passages, analysed, and their vectors."""
    vectors = clustered_vectors(CHUNKS, seed=31)
    for url in database_copy(server, template_database, "vector_index"):
        with psycopg.connect(url) as connection:
            register_vector(connection)
            statement = (
                "COPY knowledge_base (content_type, title, content, embedding, embedding_model,"
                " source) FROM STDIN"
            )
            with connection.cursor().copy(statement) as copy:
                copy.set_types(["text", "text", "text", "vector", "text", "text"])
                for number, vector in enumerate(vectors):
                    copy.write_row(
                        ("faq", f"Passage {number}", f"Synthetic passage number {number}.",
                         vector, MINILM_MODEL, f"test:{number}")
                    )  # fmt: skip
            connection.commit()
            connection.execute("ANALYZE knowledge_base")
        yield url, vectors


@pytest.fixture(scope="module")
def chunks_engine(chunks: tuple[str, Vectors]) -> Iterator[Engine]:
    engine = create_app_engine(chunks[0])
    yield engine
    engine.dispose()


def generic_search_plan(connection: psycopg.Connection[Any]) -> Any:
    """The plan the search runs: its statement prepared, the plan generic (SEARCH_SETTINGS_SQL
    sets plan_cache_mode for it)."""
    parameters = knowledge.statement_parameters(
        "how do I get a refund", clustered_vectors(1, seed=7), model_name=MINILM_MODEL,
        relevance=MINILM_RELEVANCE, types=None, include_unpublished=False, min_relevance=0,
        caller_plan_cache_mode="auto",
    )  # fmt: skip
    statement = knowledge.search_statement(lexical_candidates=40, vector_candidates=40, limit=10)
    return generic_plan(connection, statement, parameters)


def test_the_search_plan_reads_the_vector_index(chunks: tuple[str, Vectors]) -> None:
    with psycopg.connect(chunks[0]) as connection:
        plan = generic_search_plan(connection)
    assert any(node.get("Index Name") == VECTOR_INDEX for node in plan_nodes(plan))


def test_the_search_plan_reads_term_counts_by_key_however_many_terms(
    chunks: tuple[str, Vectors],
) -> None:
    # The generic plan cannot see how many words a question has. It read knowledge_terms through
    # a join that, once the table held tens of thousands of lexemes, was a hash join over all of
    # them: a sequential scan on every search (25 of the 26 ms a search took at 50,000 synthetic
    # chunks). A word's count is now looked up by its key, whatever the table's size.
    with psycopg.connect(chunks[0]) as connection:
        connection.execute(
            "INSERT INTO knowledge_terms (lexeme, passages)"
            " SELECT 'synthetic' || n, 1 + n % 50 FROM generate_series(1, 70000) AS n"
        )
        connection.execute("ANALYZE knowledge_terms")
        plan = generic_search_plan(connection)
        connection.rollback()  # the module's other tests see the table as it was
    reads = [node for node in plan_nodes(plan) if node.get("Relation Name") == "knowledge_terms"]
    assert reads
    assert all(node["Node Type"] != "Seq Scan" for node in reads), [
        node["Node Type"] for node in reads
    ]


def test_the_vector_list_finds_exact_searchs_nearest(
    chunks: tuple[str, Vectors], chunks_engine: Engine
) -> None:
    _, vectors = chunks
    for question in clustered_vectors(QUESTIONS, seed=11):
        exact = np.argsort(-(vectors @ question), kind="stable")[:10]
        with Session(chunks_engine) as session:
            found = knowledge.search(
                session, "anything", limit=10, mode="vector", min_relevance=0,
                embedder=FixedEmbedder(question),
            )  # fmt: skip
        assert [passage.source for passage in found] == [f"test:{index}" for index in exact]
        assert [passage.similarity for passage in found] == pytest.approx(
            [float(vectors[index] @ question) for index in exact], abs=1e-5
        )
