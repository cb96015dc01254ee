"""The catalog in the knowledge base: every way products change queues them; a sync embeds only
what changed, unpublishes drafts and removes deleted products."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
from sqlalchemy import Engine

from afilo_db.data import catalog_import
from afilo_db.data.seed import product_plan, product_record
from afilo_db.knowledge.catalog import drain_queue, licence_source, product_source
from afilo_db.services import catalog
from afilo_db.services.transaction import unit_of_work
from tests.knowledge.conftest import CountingEmbedder
from tests.services.test_catalog import product_data

Connection = psycopg.Connection[tuple[object, ...]]


def queued(connection: Connection) -> set[uuid.UUID]:
    return {row[0] for row in connection.execute("SELECT product_id FROM knowledge_sync_queue")}  # type: ignore[misc]


def passages(connection: Connection, product_id: uuid.UUID) -> dict[str, tuple[object, ...]]:
    rows = connection.execute(
        "SELECT content_type, content, is_published, source, product_id FROM knowledge_base"
        " WHERE product_id = %s",
        (product_id,),
    ).fetchall()
    return {str(row[0]): row[1:] for row in rows}


def sync(connection: Connection) -> tuple[int, list[str]]:
    counting = CountingEmbedder()
    report = drain_queue(connection, embedder=counting)
    connection.commit()
    return report.products, counting.texts


def embedded_titles(sentences: list[str]) -> set[str]:
    """The passages embedded, by title: the model reads each sentence after its title."""
    return {sentence.split("\n", 1)[0] for sentence in sentences}


def test_services_queue_changes_and_a_sync_embeds_only_what_changed(
    engine: Engine, connection: Connection
) -> None:
    with unit_of_work(engine) as session:
        product_id = catalog.create_product(session, product_data()).id
    assert queued(connection) == {product_id}

    products, embedded = sync(connection)
    assert products == 1 and queued(connection) == set()
    assert embedded_titles(embedded) == {"Nova kit", "Nova kit licences"}
    stored = passages(connection, product_id)
    assert stored["product"][2] == product_source(product_id)
    assert stored["licence"][2] == licence_source(product_id)
    assert "NOVA-KIT-TEAM" in str(stored["licence"][0]) and "5 seats" in str(stored["licence"][0])
    assert "Built with python" in str(stored["product"][0])

    with unit_of_work(engine) as session:
        catalog.update_product(session, product_id, {"description": "Now with dark mode."})
    _, embedded = sync(connection)
    assert embedded_titles(embedded) == {"Nova kit"}
    assert any("Now with dark mode." in sentence for sentence in embedded)

    with unit_of_work(engine) as session:
        page = catalog.product_by_handle(session, "nova-kit")
        assert page is not None
        variant = page["variants"][0]
        catalog.update_variant(session, variant["id"], {"price": "35.00"})
    _, embedded = sync(connection)
    assert embedded_titles(embedded) == {"Nova kit licences"}
    assert any("35.00" in sentence for sentence in embedded)

    _, embedded = sync(connection)
    assert embedded == []


def test_drafts_are_unpublished_and_deleted_products_removed(
    engine: Engine, connection: Connection
) -> None:
    with unit_of_work(engine) as session:
        product_id = catalog.create_product(session, product_data()).id
    sync(connection)
    with unit_of_work(engine) as session:
        catalog.update_product(session, product_id, {"status": "draft"})
    _, embedded = sync(connection)
    assert embedded == []
    assert {row[1] for row in passages(connection, product_id).values()} == {False}

    connection.execute("DELETE FROM products WHERE id = %s", (product_id,))
    connection.commit()
    assert queued(connection) == {product_id}
    sync(connection)
    count = connection.execute(
        "SELECT count(*) FROM knowledge_base WHERE source = ANY(%s)",
        ([product_source(product_id), licence_source(product_id)],),
    ).fetchone()
    assert count == (0,)


def test_the_catalog_import_queues_what_it_writes(connection: Connection, tmp_path: Path) -> None:
    records = [product_record(product_plan(5, index)) for index in range(30)]
    path = tmp_path / "catalog.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    catalog_import.import_catalog(connection, path)
    connection.commit()
    ids = {row[0] for row in connection.execute("SELECT id FROM products")}
    assert len(ids) == 30 and queued(connection) == ids

    products, _ = sync(connection)
    assert products == 30 and queued(connection) == set()
    count = connection.execute(
        "SELECT count(DISTINCT product_id) FROM knowledge_base WHERE content_type = 'product'"
    ).fetchone()
    assert count == (30,)
