"""Ranking on small, controlled knowledge bases: ties broken by evidence, and a multilingual
model plugged in through the Embedder interface (stand-ins whose vectors the test chooses)."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence

import numpy as np
import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from afilo_db.errors import OperationError
from afilo_db.knowledge.chunking import Chunk
from afilo_db.knowledge.embedders import (
    MINILM_RELEVANCE,
    Relevance,
    Vectors,
    get_embedder,
    query_vectors,
    register_embedder,
)
from afilo_db.knowledge.ingestion import SourceDocument, ingest
from afilo_db.rules import EMBEDDING_DIMENSIONS
from afilo_db.services import knowledge


def unit(*weights: tuple[int, float]) -> Vectors:
    vector = np.zeros(EMBEDDING_DIMENSIONS, dtype=np.float32)
    for dimension, weight in weights:
        vector[dimension] = weight
    normalised: Vectors = vector / np.linalg.norm(vector)
    return normalised


class ChosenVectors:
    """Texts holding a key get its vector; anything else (the question) gets the first axis."""

    model_name = "stand-in-chosen"

    def __init__(self, vectors: dict[str, Vectors]) -> None:
        self.vectors = vectors

    def embed(self, texts: Sequence[str]) -> Vectors:
        question = unit((0, 1.0))
        return np.stack(
            [
                next((v for key, v in self.vectors.items() if key in text), question)
                for text in texts
            ]
        )


def test_a_tie_in_the_fused_score_goes_to_the_stronger_evidence_not_the_older_row(
    connection: psycopg.Connection[tuple[object, ...]], engine: Engine
) -> None:
    # The older passage holds both words of the question but means something else (cosine
    # 0.3); the newer holds one word and says what the question asks (cosine 0.95). Each is
    # first in one list and second in the other: the same fused score, to the last digit.
    embedder = ChosenVectors(
        {
            "refund window rules": unit((0, 0.3), (1, 0.954)),
            "refund details": unit((0, 0.95), (2, 0.312)),
        }
    )
    for source, content in (("test:old", "refund window rules"), ("test:new", "refund details")):
        document = SourceDocument(source, "faq", [Chunk(source.title(), content)])
        ingest(connection, [document], embedder=embedder)
        connection.commit()
    with Session(engine) as session:
        found = knowledge.search(session, "refund window", embedder=embedder, min_relevance=0)
    old, new = sorted(found, key=lambda passage: passage.id)
    assert (old.source, new.source) == ("test:old", "test:new")
    assert (old.fulltext_rank, old.vector_rank, new.fulltext_rank, new.vector_rank) == (1, 2, 2, 1)
    assert old.score == new.score
    assert [passage.source for passage in found] == ["test:new", "test:old"]
    assert new.relevance > old.relevance


# A stand-in for a multilingual model: words of three languages mapped to shared concepts, as
# a real multilingual model maps translations near each other.
CONCEPTS = {
    "refund": 0, "rückerstattung": 0, "remboursement": 0, "money": 0, "geld": 0, "argent": 0,
    "cancel": 1, "kündigen": 1, "annuler": 1, "subscription": 1, "abo": 1, "abonnement": 1,
    "invoice": 2, "rechnung": 2, "facture": 2,
}  # fmt: skip
MULTILINGUAL = "stand-in-multilingual"


class ConceptEmbedder:
    model_name = MULTILINGUAL

    def embed(self, texts: Sequence[str]) -> Vectors:
        vectors = np.zeros((len(texts), EMBEDDING_DIMENSIONS), dtype=np.float32)
        for row, text in enumerate(texts):
            vectors[row, EMBEDDING_DIMENSIONS - 1] = 0.1  # no text is the zero vector
            for word in re.findall(r"\w+", text.lower()):
                if word in CONCEPTS:
                    vectors[row, CONCEPTS[word]] += 1
        normalised: Vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return normalised


def test_a_multilingual_model_plugged_in_answers_german_and_french_questions(
    connection: psycopg.Connection[tuple[object, ...]], engine: Engine
) -> None:
    register_embedder(MULTILINGUAL, ConceptEmbedder)
    documents = [
        SourceDocument("test:refunds", "policy", [Chunk("Refunds", "Ask for a refund.")]),
        SourceDocument("test:cancel", "policy", [Chunk("Cancelling", "Cancel a subscription.")]),
        SourceDocument("test:invoices", "faq", [Chunk("Invoices", "Every invoice is a PDF.")]),
    ]
    # Through the registry, as `kb reembed --model` would: the rows record the model's name.
    ingest(connection, documents, embedder=get_embedder(MULTILINGUAL))
    connection.commit()
    with Session(engine) as session:
        # No embedder given: the search embeds the question with the model the rows carry.
        assert knowledge.active_model(session) == MULTILINGUAL
        for question, source in (
            ("Wie bekomme ich mein Geld zurück? Rückerstattung bitte", "test:refunds"),
            ("Comment annuler mon abonnement ?", "test:cancel"),
            ("Wo finde ich meine Rechnung?", "test:invoices"),
        ):
            found = knowledge.search(session, question)
            assert found and found[0].source == source, question


# A plug-in that ships its own relevance: every passage at probability 0.5 whatever its evidence,
# which no other constants give.
FLAT_RELEVANCE = Relevance(
    intercept=0.0, per_similarity=0.0, per_coverage=0.0, per_code_found=0.0, per_code_missing=0.0
)


class CalibratedConcepts(ConceptEmbedder):
    model_name = "stand-in-calibrated"
    relevance = FLAT_RELEVANCE


class UncalibratedConcepts(ConceptEmbedder):
    model_name = "stand-in-uncalibrated"


def concepts_base(connection: psycopg.Connection[tuple[object, ...]], model: str) -> None:
    documents = [
        SourceDocument("test:refunds", "policy", [Chunk("Refunds", "Ask for a refund.")]),
        SourceDocument("test:invoices", "faq", [Chunk("Invoices", "Every invoice is a PDF.")]),
    ]
    ingest(connection, documents, embedder=get_embedder(model))
    connection.commit()


def test_the_active_models_own_relevance_constants_rank_and_judge_its_passages(
    connection: psycopg.Connection[tuple[object, ...]], engine: Engine
) -> None:
    register_embedder(CalibratedConcepts.model_name, CalibratedConcepts)
    concepts_base(connection, CalibratedConcepts.model_name)
    with Session(engine) as session:
        # No embedder given: the model the rows carry, through the registry, with its constants.
        found = knowledge.search(session, "How do I get a refund?", min_relevance=0)
    assert {passage.source for passage in found} == {"test:refunds", "test:invoices"}
    assert [passage.relevance for passage in found] == [0.5, 0.5]


def test_a_plug_in_without_relevance_constants_gets_minilms_with_a_warning(
    connection: psycopg.Connection[tuple[object, ...]],
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    register_embedder(UncalibratedConcepts.model_name, UncalibratedConcepts)
    concepts_base(connection, UncalibratedConcepts.model_name)
    with caplog.at_level(logging.WARNING), Session(engine) as session:
        found = knowledge.search(session, "How do I get a refund?", min_relevance=0)
        knowledge.search(session, "Where is my invoice?", min_relevance=0)
    refund = next(passage for passage in found if passage.source == "test:refunds")
    assert refund.similarity is not None
    expected = 1 / (
        1
        + math.exp(
            -(
                MINILM_RELEVANCE.intercept
                + MINILM_RELEVANCE.per_similarity * refund.similarity
                + MINILM_RELEVANCE.per_coverage * refund.coverage
            )
        )
    )
    assert refund.relevance == pytest.approx(expected, rel=1e-6)
    warnings = [record.getMessage() for record in caplog.records]
    assert [message for message in warnings if UncalibratedConcepts.model_name in message] == [
        f"the embedder {UncalibratedConcepts.model_name!r} carries no relevance fitted on its"
        " similarities: knowledge search uses all-MiniLM-L6-v2's, which may refuse or misrank its"
        " passages; fit its own with `python -m bench.knowledge --quality-only --tune --model"
        f" {UncalibratedConcepts.model_name}` and give the embedder a `relevance` attribute"
    ]


class RoleConcepts(ConceptEmbedder):
    """A model that is only right when told what it reads, as E5 is with its `query: ` and
    `passage: ` prefixes: `embed` alone gives every text the same vector."""

    model_name = "stand-in-roles"
    relevance = MINILM_RELEVANCE

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.passages: list[tuple[str, str]] = []

    def embed(self, texts: Sequence[str]) -> Vectors:
        return np.tile(unit((EMBEDDING_DIMENSIONS - 1, 1.0)), (len(texts), 1))

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        self.asked.extend(texts)
        return ConceptEmbedder.embed(self, [f"query: {text}" for text in texts])

    def embed_passages(self, passages: Sequence[tuple[str, str]]) -> Vectors:
        self.passages.extend(passages)
        return ConceptEmbedder.embed(self, [f"passage: {t}. {c}" for t, c in passages])


def test_a_model_that_reads_questions_and_passages_apart_gets_each_through_its_own_method(
    connection: psycopg.Connection[tuple[object, ...]], engine: Engine
) -> None:
    register_embedder(RoleConcepts.model_name, RoleConcepts)
    model = get_embedder(RoleConcepts.model_name)
    documents = [
        SourceDocument("test:refunds", "policy", [Chunk("Refunds", "Ask for a refund.")]),
        SourceDocument("test:invoices", "faq", [Chunk("Invoices", "Every invoice is a PDF.")]),
    ]
    ingest(connection, documents, embedder=model)
    connection.commit()
    inner = model.inner
    assert isinstance(inner, RoleConcepts)
    # Whole passages, once each: not their sentences through `embed`.
    assert inner.passages == [
        ("Refunds", "Ask for a refund."),
        ("Invoices", "Every invoice is a PDF."),
    ]
    stored = connection.execute(
        "SELECT embedding::text FROM knowledge_base ORDER BY source"
    ).fetchall()
    expected = inner.embed_passages([("Invoices", "Every invoice is a PDF.")])[0]
    assert np.allclose(np.array(json.loads(str(stored[0][0]))), expected, atol=1e-6)
    with Session(engine) as session:
        found = knowledge.search(session, "Geld zurück? Rückerstattung", mode="vector")
    assert inner.asked == ["Geld zurück? Rückerstattung"]
    assert [passage.source for passage in found][:1] == ["test:refunds"]
    assert found[0].similarity is not None and found[0].similarity > 0.9
    # A question and a text of the same words keep their own vectors in the cache.
    assert not np.allclose(model.embed(["refund"]), query_vectors(model, ["refund"]))


class WrongShape(ConceptEmbedder):
    model_name = "stand-in-wrong-shape"

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        return ConceptEmbedder.embed(self, [*texts, "one too many"])


def test_a_method_that_returns_the_wrong_rows_is_named_in_the_error() -> None:
    register_embedder(WrongShape.model_name, WrongShape)
    with pytest.raises(
        OperationError,
        match=r"'stand-in-wrong-shape' returned \(2, 384\) from embed_queries, expected \(1, 384\)",
    ):
        query_vectors(get_embedder(WrongShape.model_name), ["refund"])
    with pytest.raises(OperationError, match="from embed_queries"):
        query_vectors(WrongShape(), ["refund"])


class ListsOfFloats(ConceptEmbedder):
    """Rows as Python lists, which numpy reads as an array: accepted as they are."""

    model_name = "stand-in-lists"

    def embed(self, texts: Sequence[str]) -> Vectors:
        return ConceptEmbedder.embed(self, texts).tolist()  # type: ignore[no-any-return]


def test_rows_numpy_reads_as_an_array_are_taken_and_ragged_ones_refused() -> None:
    register_embedder(ListsOfFloats.model_name, ListsOfFloats)
    vectors = get_embedder(ListsOfFloats.model_name).embed(["refund", "invoice"])
    assert vectors.dtype == np.float32 and vectors.shape == (2, EMBEDDING_DIMENSIONS)

    class Ragged(ListsOfFloats):
        model_name = "stand-in-ragged"

        def embed(self, texts: Sequence[str]) -> Vectors:
            return [[0.0] * EMBEDDING_DIMENSIONS, [0.0]]  # type: ignore[return-value]

    register_embedder(Ragged.model_name, Ragged)
    with pytest.raises(OperationError, match="returned no array of numbers from embed"):
        get_embedder(Ragged.model_name).embed(["refund", "invoice"])
