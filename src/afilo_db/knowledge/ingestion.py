"""Sources into the knowledge base: chunk, compare with what is stored, embed only what changed,
write with COPY.

A source (a file's URI, a catalog product) owns its chunks. Re-ingesting it keeps every stored
chunk whose content hash (and model) still matches a new chunk, embeds the others in batches,
deletes the chunks that no longer exist, and moves kept chunks to their new position. Nothing
here commits: the caller owns the transaction, so an ingest is all or nothing.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import psycopg

from afilo_db import rules
from afilo_db.errors import NotFoundError, ValidationError
from afilo_db.knowledge.chunking import (
    FORMATS,
    Chunk,
    chunk_document,
    parse_file,
    passage_sentences,
)
from afilo_db.knowledge.embedders import (
    MINILM_MODEL,
    Embedder,
    Vectors,
    passages_hook,
    to_pgvector_text,
    unit_rows,
)

EMBED_BATCH: Final = 64
Progress = Callable[[int], None]


@dataclass(frozen=True)
class SourceDocument:
    """One source's chunks and how they are filed."""

    source: str
    content_type: str
    chunks: Sequence[Chunk]
    product_id: uuid.UUID | None = None
    is_published: bool = True
    source_url: str | None = None


@dataclass
class IngestReport:
    sources: int = 0
    chunks: int = 0
    embedded: int = 0
    unchanged: int = 0
    deleted: int = 0
    sources_removed: int = 0
    files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Stored:
    id: uuid.UUID
    chunk_index: int
    content_hash: bytes | None
    content_type: str
    is_published: bool
    product_id: uuid.UUID | None
    embedding_model: str | None


# The model whose vectors the knowledge base holds: `kb reembed` switches every row at once, so
# any row with a vector names it.
ACTIVE_MODEL_SQL: Final = (
    "SELECT embedding_model FROM knowledge_base WHERE embedding_model IS NOT NULL LIMIT 1"
)


def active_model(connection: psycopg.Connection[Any]) -> str:
    """The model whose vectors the knowledge base holds (the default when it holds none)."""
    row = connection.execute(ACTIVE_MODEL_SQL).fetchone()
    return str(row[0]) if row else MINILM_MODEL


def passage_vectors(embedder: Embedder, passages: Sequence[tuple[str, str]]) -> Vectors:
    """One unit vector per (title, content) passage: the embedder's own `embed_passages` if it
    has one, else the mean of its sentences' vectors (chunking.passage_sentences), normalised.
    Ingestion and `kb reembed` both embed through here, so a passage gets the same vector
    whichever wrote it."""
    whole = passages_hook(embedder)
    if whole is not None:
        return whole(passages)
    sentences = [passage_sentences(title, content) for title, content in passages]
    vectors = embedder.embed([sentence for group in sentences for sentence in group])
    means = np.empty((len(passages), vectors.shape[1]), dtype=np.float32)
    start = 0
    for index, group in enumerate(sentences):
        means[index] = vectors[start : start + len(group)].mean(axis=0)
        start += len(group)
    return unit_rows(means)


def check_content_type(content_type: str) -> str:
    if content_type not in rules.KNOWLEDGE_CONTENT_TYPES:
        raise ValidationError(
            problems={"type": f"must be one of {', '.join(rules.KNOWLEDGE_CONTENT_TYPES)}"}
        )
    return content_type


def file_source(path: Path) -> str:
    return path.resolve().as_uri()


def documents_from_paths(
    paths: Iterable[Path], *, content_type: str
) -> tuple[list[SourceDocument], list[str]]:
    """Every supported file under `paths` as a document, and the URI prefixes of the folders
    given (their sources that no longer exist as files are removed by `ingest`)."""
    check_content_type(content_type)
    documents: list[SourceDocument] = []
    folders: list[str] = []
    for path in paths:
        if path.is_dir():
            folders.append(file_source(path).rstrip("/") + "/")
            files = sorted(
                child
                for child in path.rglob("*")
                if child.is_file() and child.suffix.lower() in FORMATS
            )
        elif path.is_file():
            files = [path]
        else:
            raise NotFoundError(f"{path}: no such file or folder")
        for file in files:
            chunks = chunk_document(parse_file(file))
            documents.append(SourceDocument(file_source(file), content_type, chunks))
    return documents, folders


def _stored_chunks(
    connection: psycopg.Connection[Any], sources: list[str]
) -> dict[str, list[_Stored]]:
    rows = connection.execute(
        "SELECT source, id, chunk_index, content_hash, content_type, is_published, product_id,"
        " embedding_model FROM knowledge_base WHERE source = ANY(%s) ORDER BY chunk_index",
        (sources,),
    ).fetchall()
    stored: dict[str, list[_Stored]] = defaultdict(list)
    for source, *values in rows:
        stored[source].append(_Stored(*values))
    return stored


COPY_COLUMNS: Final = ("content_type", "title", "content", "source_url", "product_id",
                       "is_published", "embedding", "embedding_model", "source", "chunk_index",
                       "content_hash")  # fmt: skip


def ingest(
    connection: psycopg.Connection[Any],
    documents: Sequence[SourceDocument],
    *,
    embedder: Embedder,
    remove_missing_under: Sequence[str] = (),
    removed_sources: Sequence[str] = (),
    progress: Progress = lambda _chunks: None,
    planned: Callable[[int], None] = lambda _total: None,
) -> IngestReport:
    """Bring the stored chunks of `documents` up to date, embedding only new or changed ones.

    `remove_missing_under`: source prefixes (folders) whose other sources are deleted;
    `removed_sources`: sources deleted outright. `planned` is told how many chunks will be
    embedded, `progress` how many were, batch by batch.
    """
    report = IngestReport(sources=len(documents))
    stored = _stored_chunks(connection, [document.source for document in documents])
    to_embed: list[tuple[SourceDocument, int, Chunk]] = []
    stale: list[uuid.UUID] = []
    moved: list[tuple[uuid.UUID, int, str, bool, uuid.UUID | None]] = []
    for document in documents:
        check_content_type(document.content_type)
        reusable: dict[bytes, list[_Stored]] = defaultdict(list)
        for row in stored.get(document.source, []):
            if row.content_hash is not None and row.embedding_model == embedder.model_name:
                reusable[row.content_hash].append(row)
            else:
                stale.append(row.id)
        for index, chunk in enumerate(document.chunks):
            report.chunks += 1
            candidates = reusable.get(chunk.content_hash)
            if not candidates:
                to_embed.append((document, index, chunk))
                continue
            row = candidates.pop(0)
            report.unchanged += 1
            filing = (index, document.content_type, document.is_published, document.product_id)
            if filing != (row.chunk_index, row.content_type, row.is_published, row.product_id):
                moved.append((row.id, *filing))
        stale.extend(row.id for rows in reusable.values() for row in rows)

    if stale:
        connection.execute("DELETE FROM knowledge_base WHERE id = ANY(%s)", (stale,))
    report.deleted = len(stale)
    if moved:
        with connection.cursor() as cursor:
            cursor.executemany(
                "UPDATE knowledge_base SET chunk_index = %s, content_type = %s,"
                " is_published = %s, product_id = %s, updated_at = now() WHERE id = %s",
                [
                    (index, kind, published, product, row_id)
                    for row_id, index, kind, published, product in moved
                ],
            )
    report.sources_removed, removed_chunks = _remove_sources(
        connection, documents, remove_missing_under, removed_sources
    )
    report.deleted += removed_chunks

    planned(len(to_embed))
    statement = f"COPY knowledge_base ({', '.join(COPY_COLUMNS)}) FROM STDIN"
    with connection.cursor().copy(statement) as copy:
        for start in range(0, len(to_embed), EMBED_BATCH):
            batch = to_embed[start : start + EMBED_BATCH]
            vectors = passage_vectors(
                embedder, [(chunk.title, chunk.content) for _, _, chunk in batch]
            )
            for (document, index, chunk), vector in zip(batch, vectors, strict=True):
                copy.write_row((
                    document.content_type, chunk.title, chunk.content, document.source_url,
                    document.product_id, document.is_published, to_pgvector_text(vector),
                    embedder.model_name, document.source, index, chunk.content_hash,
                ))  # fmt: skip
            report.embedded += len(batch)
            progress(len(batch))
    return report


def _remove_sources(
    connection: psycopg.Connection[Any],
    documents: Sequence[SourceDocument],
    prefixes: Sequence[str],
    sources: Sequence[str],
) -> tuple[int, int]:
    present = [document.source for document in documents]
    row = connection.execute(
        "WITH gone AS (DELETE FROM knowledge_base WHERE source = ANY(%(sources)s)"
        " OR (EXISTS (SELECT FROM unnest(%(prefixes)s::text[]) AS prefix"
        "             WHERE starts_with(source, prefix))"
        "     AND NOT source = ANY(%(present)s)) RETURNING source)"
        " SELECT count(DISTINCT source), count(*) FROM gone",
        {"sources": list(sources), "prefixes": list(prefixes), "present": present},
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)
