"""Knowledge search for the chat bot: full text and vector similarity, fused in one statement.

Two ranked lists are built inside PostgreSQL: full text (`websearch_to_tsquery` on the weighted
`searchable_text`, GIN, ranked by `ts_rank_cd`) and nearest neighbours by cosine distance
(HNSW, only vectors of the question's model). Reciprocal rank fusion merges them: a passage's
score is the sum over the lists it appears in of 1 / (k + its rank there), so a passage both
lists agree on rises, and neither list's raw scores (incomparable units) need calibrating.

What the caller may see is enforced twice: the statement keeps published passages only (unless
`include_unpublished`, for operators), and row-level security shows the application role
nothing else whatever the statement says.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import psycopg
from sqlalchemy import text
from sqlalchemy.orm import Session

from afilo_db import rules
from afilo_db.errors import ValidationError
from afilo_db.knowledge import ingestion
from afilo_db.knowledge.embedders import Embedder, get_embedder, to_pgvector_text

SEARCH_MODES: Final = ("hybrid", "fulltext", "vector")
# The usual RRF constant (Cormack et al.): damps the weight of the very first ranks.
RRF_K: Final = 60
# Each list contributes this many candidates per passage asked for (at least 40).
CANDIDATES_PER_RESULT: Final = 4
MIN_CANDIDATES: Final = 40
# HNSW's search breadth. bench.knowledge at 200,000 synthetic chunks, index m 16 and
# ef_construction 200 (revision 0007): recall@10 against exact search 0.73 / 0.88 / 0.96 / 0.98
# at 40 / 100 / 200 / 400. Iterative scans keep filtered searches (content type, published) from
# coming back short.
EF_SEARCH: Final = 200
MAX_QUESTION_CHARS: Final = 2000
MAX_LIMIT: Final = 100

_SEARCH_SETTINGS = text(
    "SELECT set_config('hnsw.ef_search', :ef_search, true),"
    " set_config('hnsw.iterative_scan', 'relaxed_order', true)"
)

SEARCH_SQL: Final = """
WITH fulltext AS (
  SELECT id, row_number() OVER (ORDER BY rank DESC, id) AS position
  FROM (
    SELECT kb.id, ts_rank_cd(kb.searchable_text, query, 32) AS rank
    FROM knowledge_base kb, websearch_to_tsquery('english', :question) AS query
    WHERE kb.searchable_text @@ query
      AND (CAST(:types AS text[]) IS NULL OR kb.content_type = ANY(CAST(:types AS text[])))
      AND (kb.is_published OR :include_unpublished)
    ORDER BY rank DESC, kb.id
    LIMIT :fulltext_candidates
  ) matches
),
semantic AS (
  SELECT id, distance, row_number() OVER (ORDER BY distance, id) AS position
  FROM (
    SELECT kb.id, kb.embedding <=> CAST(:vector AS vector) AS distance
    FROM knowledge_base kb
    WHERE kb.embedding_model = :model
      AND (CAST(:types AS text[]) IS NULL OR kb.content_type = ANY(CAST(:types AS text[])))
      AND (kb.is_published OR :include_unpublished)
    ORDER BY kb.embedding <=> CAST(:vector AS vector)
    LIMIT :vector_candidates
  ) nearest
)
SELECT kb.id, kb.content_type, kb.title, kb.content, kb.source, kb.source_url, kb.product_id,
       kb.is_published,
       coalesce(1.0 / (:rrf_k + f.position), 0) + coalesce(1.0 / (:rrf_k + s.position), 0)
         AS score,
       f.position AS fulltext_rank, s.position AS vector_rank, 1 - s.distance AS similarity
FROM fulltext f
FULL JOIN semantic s USING (id)
JOIN knowledge_base kb USING (id)
ORDER BY score DESC, kb.id
LIMIT :limit
"""


@dataclass(frozen=True)
class Passage:
    id: uuid.UUID
    content_type: str
    title: str
    content: str
    source: str | None
    source_url: str | None
    product_id: uuid.UUID | None
    is_published: bool
    score: float
    # Its rank in each list (1 = best), None when that list did not find it.
    fulltext_rank: int | None
    vector_rank: int | None
    # Cosine similarity to the question, when the vector list found it.
    similarity: float | None


def active_model(session: Session) -> str:
    """The model whose vectors the knowledge base holds (the default when it holds none)."""
    driver = session.connection().connection.driver_connection
    assert isinstance(driver, psycopg.Connection), "afilo-db runs on psycopg 3"
    return ingestion.active_model(driver)


def _checked(question: str, types: Sequence[str] | None, limit: int, mode: str) -> str:
    problems: dict[str, str] = {}
    cleaned = " ".join(question.split())
    if not cleaned:
        problems["question"] = "must not be empty"
    elif len(cleaned) > MAX_QUESTION_CHARS:
        problems["question"] = f"must be at most {MAX_QUESTION_CHARS} characters"
    if "\x00" in question:
        problems["question"] = "must not contain NUL characters"
    unknown = [kind for kind in types or () if kind not in rules.KNOWLEDGE_CONTENT_TYPES]
    if unknown:
        problems["type"] = f"must be one of {', '.join(rules.KNOWLEDGE_CONTENT_TYPES)}"
    if not 1 <= limit <= MAX_LIMIT:
        problems["limit"] = f"must be between 1 and {MAX_LIMIT}"
    if mode not in SEARCH_MODES:
        problems["mode"] = f"must be one of {', '.join(SEARCH_MODES)}"
    if problems:
        raise ValidationError(problems)
    return cleaned


def search(
    session: Session,
    question: str,
    *,
    types: Sequence[str] | None = None,
    limit: int = 5,
    embedder: Embedder | None = None,
    include_unpublished: bool = False,
    mode: str = "hybrid",
) -> list[Passage]:
    """The passages that best answer `question`, best first.

    `types`: content types to keep (all when None). `embedder`: the model to embed the question
    with; by default the one the knowledge base's vectors were made with (so a `kb reembed`
    switch takes effect for every caller at once). `mode`: `fulltext` or `vector` alone, for
    comparison. Two statements: the HNSW settings (transaction-local), then the search.
    """
    cleaned = _checked(question, types, limit, mode)
    model = embedder or get_embedder(active_model(session))
    candidates = max(MIN_CANDIDATES, CANDIDATES_PER_RESULT * limit)
    vector = to_pgvector_text(model.embed([cleaned])[0]) if mode != "fulltext" else None
    session.execute(_SEARCH_SETTINGS, {"ef_search": str(max(EF_SEARCH, candidates))})
    rows = session.execute(
        text(SEARCH_SQL),
        {
            "question": cleaned,
            "vector": vector,
            "model": model.model_name,
            "types": list(types) if types else None,
            "include_unpublished": include_unpublished,
            "fulltext_candidates": candidates if mode != "vector" else 0,
            "vector_candidates": candidates if mode != "fulltext" else 0,
            "rrf_k": RRF_K,
            "limit": limit,
        },
    ).all()
    return [
        Passage(
            id=row.id,
            content_type=row.content_type,
            title=row.title,
            content=row.content,
            source=row.source,
            source_url=row.source_url,
            product_id=row.product_id,
            is_published=row.is_published,
            score=float(row.score),
            fulltext_rank=row.fulltext_rank,
            vector_rank=row.vector_rank,
            similarity=None if row.similarity is None else float(row.similarity),
        )
        for row in rows
    ]
