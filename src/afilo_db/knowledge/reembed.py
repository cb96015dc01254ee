"""Move the knowledge base to another embedding model without downtime.

1. `backfill_batch`, repeated (each batch its own short transaction): the new model's vectors
   are written beside the live ones, in `embedding_next`. Searches keep using `embedding`.
2. `switch`: in one transaction, writers are held back for its duration (SHARE ROW EXCLUSIVE:
   readers go on), the rows written meanwhile are backfilled, and every row's next vector
   becomes its live one at once. Searches embed their question with the model the rows carry
   (`services.knowledge.active_model`), so they follow the switch at commit, all together.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg

from afilo_db.errors import ValidationError
from afilo_db.knowledge.embedders import Embedder, to_pgvector_text
from afilo_db.knowledge.ingestion import Progress, passage_vectors

BACKFILL_BATCH: Final = 256


def pending(connection: psycopg.Connection[Any], embedder: Embedder) -> int:
    row = connection.execute(
        "SELECT count(*) FROM knowledge_base WHERE embedding_next_model IS DISTINCT FROM %s",
        (embedder.model_name,),
    ).fetchone()
    return int(row[0]) if row else 0


def check_target(connection: psycopg.Connection[Any], embedder: Embedder) -> None:
    row = connection.execute(
        "SELECT count(*) FILTER (WHERE embedding_model IS DISTINCT FROM %s), count(*)"
        " FROM knowledge_base",
        (embedder.model_name,),
    ).fetchone()
    if row is not None and row[1] and not row[0]:
        raise ValidationError(
            problems={"model": f"the knowledge base is already on {embedder.model_name}"}
        )


def backfill_batch(
    connection: psycopg.Connection[Any],
    embedder: Embedder,
    *,
    batch: int = BACKFILL_BATCH,
    progress: Progress = lambda _rows: None,
) -> int:
    """Embed up to `batch` rows that lack the model's next vector; returns how many."""
    rows = connection.execute(
        "SELECT id, title, content FROM knowledge_base"
        " WHERE embedding_next_model IS DISTINCT FROM %s"
        " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
        (embedder.model_name, batch),
    ).fetchall()
    if not rows:
        return 0
    vectors = passage_vectors(embedder, [(title, content) for _, title, content in rows])
    with connection.cursor() as cursor:
        cursor.executemany(
            "UPDATE knowledge_base SET embedding_next = %s::vector, embedding_next_model = %s"
            " WHERE id = %s",
            [
                (to_pgvector_text(vector), embedder.model_name, row_id)
                for (row_id, _, _), vector in zip(rows, vectors, strict=True)
            ],
        )
    progress(len(rows))
    return len(rows)


def move(
    connection: psycopg.Connection[Any],
    embedder: Embedder,
    *,
    progress: Progress = lambda _rows: None,
) -> int:
    """What `kb reembed` does (check_target first): backfill in committed batches, searches
    going on with the old model meanwhile, then switch and commit; returns the rows moved."""
    while backfill_batch(connection, embedder, progress=progress):
        connection.commit()
    switched = switch(connection, embedder)
    connection.commit()
    return switched


def switch(connection: psycopg.Connection[Any], embedder: Embedder) -> int:
    """Make the backfilled vectors live, in the caller's transaction; returns the rows moved."""
    connection.execute("LOCK TABLE knowledge_base IN SHARE ROW EXCLUSIVE MODE")
    while backfill_batch(connection, embedder):
        pass
    cursor = connection.execute(
        "UPDATE knowledge_base SET embedding = embedding_next,"
        " embedding_model = embedding_next_model, embedding_next = NULL,"
        " embedding_next_model = NULL WHERE embedding_next_model = %s",
        (embedder.model_name,),
    )
    return cursor.rowcount
