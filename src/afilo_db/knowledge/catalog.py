"""The catalog as knowledge: each product's description and its licence terms, kept in sync.

Whatever writes products or variants (the catalog services, the import's set-based upserts,
COPY, raw SQL), statement-level triggers queue the product ids in `knowledge_sync_queue` inside
the same transaction, at the cost of one small INSERT per statement: embedding never runs in
the write. `drain_queue` takes a batch of queued products (SKIP LOCKED, so two workers share the
queue), rebuilds their documents and lets `ingest` re-embed only the chunks that changed; a
deleted product's passages are removed. Run it from a job or with `afilo-db kb sync`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from afilo_db.knowledge.chunking import Document, Section, chunk_document
from afilo_db.knowledge.embedders import Embedder
from afilo_db.knowledge.ingestion import IngestReport, Progress, SourceDocument, ingest

SYNC_BATCH: Final = 500

_PRODUCTS_SQL: Final = """
SELECT p.id, p.handle, p.title, p.description, p.status, p.tags, p.tech_stack,
       p.included_in_tier,
       coalesce(array_agg(
         format('%%s (SKU %%s): %%s licence, %%s, %%s %%s%%s%%s.',
                v.title, v.sku, v.license_type,
                CASE WHEN v.seats IS NULL THEN 'unlimited seats'
                     WHEN v.seats = 1 THEN '1 seat' ELSE v.seats || ' seats' END,
                v.price, v.currency,
                CASE WHEN v.duration_days IS NULL THEN ', perpetual'
                     ELSE ', valid for ' || v.duration_days || ' days' END,
                CASE WHEN v.redistribution THEN ', redistribution allowed'
                     ELSE ', no redistribution' END)
         ORDER BY v.price, v.sku) FILTER (WHERE v.id IS NOT NULL AND v.available_for_sale),
       '{}') AS licences
FROM products p LEFT JOIN product_variants v ON v.product_id = p.id
WHERE p.id = ANY(%s)
GROUP BY p.id
"""


def product_source(product_id: uuid.UUID) -> str:
    return f"catalog:product:{product_id}"


def licence_source(product_id: uuid.UUID) -> str:
    return f"catalog:licence:{product_id}"


def product_documents(
    connection: psycopg.Connection[Any], product_ids: Sequence[uuid.UUID]
) -> tuple[list[SourceDocument], list[str]]:
    """The documents of the products that exist, and the sources of those that do not."""
    documents: list[SourceDocument] = []
    found: set[uuid.UUID] = set()
    for row in connection.execute(_PRODUCTS_SQL, (list(product_ids),)).fetchall():
        product_id, handle, title, description, status, tags, stack, tier, licences = row
        found.add(product_id)
        # Buyers see what is on sale; drafts and archived products stay unpublished.
        published = status == "active"
        url = f"/products/{handle}"
        about = [description or title]
        details = []
        if tags:
            details.append(f"Tags: {', '.join(tags)}.")
        if stack:
            details.append(f"Built with {', '.join(stack)}.")
        if tier:
            details.append(f"Included in the {tier} subscription tier and above.")
        if details:
            about.append(" ".join(details))
        documents.append(
            SourceDocument(
                product_source(product_id),
                "product",
                chunk_document(Document(title, [Section([], about)])),
                product_id=product_id,
                is_published=published,
                source_url=url,
            )
        )
        documents.append(
            SourceDocument(
                licence_source(product_id),
                "licence",
                chunk_document(Document(f"{title} licences", [Section([], list(licences))]))
                if licences
                else [],
                product_id=product_id,
                is_published=published,
                source_url=url,
            )
        )
    missing = [product_id for product_id in product_ids if product_id not in found]
    removed = [source for product_id in missing
               for source in (product_source(product_id), licence_source(product_id))]  # fmt: skip
    return documents, removed


@dataclass
class SyncReport(IngestReport):
    products: int = 0


def queue_all_products(connection: psycopg.Connection[Any]) -> int:
    """Queue every product (a first sync, or after changing how products are written up)."""
    cursor = connection.execute(
        "INSERT INTO knowledge_sync_queue (product_id) SELECT id FROM products"
        " ON CONFLICT (product_id) DO NOTHING"
    )
    return cursor.rowcount


def queued_products(connection: psycopg.Connection[Any]) -> int:
    row = connection.execute("SELECT count(*) FROM knowledge_sync_queue").fetchone()
    return int(row[0]) if row else 0


def drain_queue(
    connection: psycopg.Connection[Any],
    *,
    embedder: Embedder,
    batch: int = SYNC_BATCH,
    progress: Progress = lambda _chunks: None,
) -> SyncReport:
    """Re-ingest up to `batch` queued products and take them off the queue, in the caller's
    transaction (a product changed meanwhile is queued again by its own transaction)."""
    ids = [
        row[0]
        for row in connection.execute(
            "DELETE FROM knowledge_sync_queue WHERE product_id IN ("
            " SELECT product_id FROM knowledge_sync_queue ORDER BY queued_at, product_id"
            " LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING product_id",
            (batch,),
        ).fetchall()
    ]
    documents, removed = product_documents(connection, ids)
    result = ingest(
        connection, documents, embedder=embedder, removed_sources=removed, progress=progress
    )
    return SyncReport(**vars(result), products=len(ids))
