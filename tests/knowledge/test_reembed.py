"""Moving the knowledge base to another model: backfill beside the live vectors, then switch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from afilo_db.errors import ValidationError
from afilo_db.knowledge import reembed
from afilo_db.knowledge.chunking import Chunk
from afilo_db.knowledge.embedders import (
    MINILM_MODEL,
    Vectors,
    get_embedder,
    register_embedder,
)
from afilo_db.knowledge.ingestion import SourceDocument, ingest
from afilo_db.knowledge.sample import sample_documents
from afilo_db.services import knowledge

NEXT_MODEL = "minilm-mirrored"


class MirroredMiniLM:
    """Another model for the test: MiniLM's vectors with their dimensions reversed, so the two
    models' vectors are incomparable and any mix-up shows."""

    model_name = NEXT_MODEL

    def embed(self, texts: Sequence[str]) -> Vectors:
        return np.ascontiguousarray(get_embedder().embed(texts)[:, ::-1])


@pytest.fixture(autouse=True)
def next_model() -> None:
    register_embedder(NEXT_MODEL, MirroredMiniLM)


def models(connection: psycopg.Connection[tuple[object, ...]]) -> dict[object, int]:
    rows = connection.execute(
        "SELECT embedding_model, count(*) FROM knowledge_base GROUP BY 1"
    ).fetchall()
    return {row[0]: int(str(row[1])) for row in rows}


def test_backfill_then_switch_without_a_gap(
    connection: psycopg.Connection[tuple[object, ...]], engine: Engine
) -> None:
    ingest(connection, sample_documents(), embedder=get_embedder())
    connection.commit()
    total = sum(models(connection).values())
    target = get_embedder(NEXT_MODEL)

    assert reembed.backfill_batch(connection, target, batch=20) == 20
    connection.commit()
    # Mid-way, searches still use the live model, and find what they did.
    with Session(engine) as session:
        assert knowledge.active_model(session) == MINILM_MODEL
        assert knowledge.search(session, "AF-E410")[0].source.endswith("download-link-expired.md")  # type: ignore[union-attr]

    # A passage written during the backfill is caught by the switch.
    late = SourceDocument(
        "test:late", "faq", [Chunk("Late", "Written during the backfill. Caught by the switch.")]
    )
    ingest(connection, [late], embedder=get_embedder())
    connection.commit()
    assert reembed.pending(connection, target) == total + 1 - 20

    assert reembed.switch(connection, target) == total + 1
    connection.commit()
    assert models(connection) == {NEXT_MODEL: total + 1}
    leftovers = connection.execute(
        "SELECT count(*) FROM knowledge_base WHERE embedding_next IS NOT NULL"
        " OR embedding_next_model IS NOT NULL"
    ).fetchone()
    assert leftovers == (0,)
    stored = connection.execute(
        "SELECT embedding::text FROM knowledge_base WHERE source = 'test:late'"
    ).fetchone()
    # Embedded as ingestion embeds: the mean of its sentences, each after its title.
    sentences = target.embed(["Late\nWritten during the backfill.", "Late\nCaught by the switch."])
    mirrored = sentences.mean(axis=0) / np.linalg.norm(sentences.mean(axis=0))
    assert stored is not None
    assert np.allclose(
        np.array(str(stored[0]).strip("[]").split(","), dtype=np.float32), mirrored, atol=1e-6
    )

    # Every caller follows the switch: the question is embedded with the new model.
    with Session(engine) as session:
        assert knowledge.active_model(session) == NEXT_MODEL
        found = knowledge.search(session, "my download link stopped working", mode="vector")
        assert found[0].source == "sample:troubleshooting/download-link-expired.md"

    with pytest.raises(ValidationError) as error:
        reembed.check_target(connection, target)
    assert "model" in error.value.problems
