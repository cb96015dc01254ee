"""Ingestion: embed only what changed, remove what is gone, write with COPY, all or nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import psycopg
import pytest

from afilo_db.errors import NotFoundError, ValidationError
from afilo_db.knowledge.chunking import passage_sentences
from afilo_db.knowledge.embedders import MINILM_MODEL
from afilo_db.knowledge.ingestion import (
    IngestReport,
    documents_from_paths,
    ingest,
    passage_vectors,
)
from tests.knowledge.conftest import CountingEmbedder

GUIDE = """# Setup guide

## Install

Download the archive from your library and unzip it into a folder of your choice.

## Configure

Copy the example environment file and set the database address before the first run.

## Run

Start the development server and open the address it prints in your browser.
"""


def run(
    connection: psycopg.Connection[tuple[object, ...]], folder: Path, embedder: CountingEmbedder
) -> IngestReport:
    documents, folders = documents_from_paths([folder], content_type="guide")
    report = ingest(connection, documents, embedder=embedder, remove_missing_under=folders)
    connection.commit()
    return report


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "kb"
    (root / "nested").mkdir(parents=True)
    (root / "guide.md").write_text(GUIDE)
    (root / "faq.txt").write_text("Refunds\n\nAsk within 14 days.\n\nWe answer in a day.")
    (root / "nested" / "page.html").write_text("<h1>Page</h1><p>Nested HTML text.</p>")
    (root / "ignored.pdf").write_bytes(b"%PDF")
    return root


def test_reingesting_an_unchanged_folder_embeds_nothing(
    connection: psycopg.Connection[tuple[object, ...]], folder: Path
) -> None:
    first = CountingEmbedder()
    report = run(connection, folder, first)
    assert (report.sources, report.chunks, report.embedded) == (3, 5, 5)
    # One text per sentence: the FAQ's chunk has two.
    assert len(first.texts) == 6

    again = CountingEmbedder()
    report = run(connection, folder, again)
    assert again.texts == []
    assert (report.embedded, report.unchanged, report.deleted) == (0, 5, 0)


def test_changing_one_paragraph_reembeds_one_chunk(
    connection: psycopg.Connection[tuple[object, ...]], folder: Path
) -> None:
    run(connection, folder, CountingEmbedder())
    ids_before = {
        row[0]: row[1] for row in connection.execute("SELECT content, id FROM knowledge_base")
    }
    guide = folder / "guide.md"
    guide.write_text(GUIDE.replace("set the database address", "set the database URL"))

    counting = CountingEmbedder()
    report = run(connection, folder, counting)
    # The changed chunk's sentences, each after its title, and nothing else.
    assert counting.texts == [
        "Setup guide > Configure\nCopy the example environment file and set the database URL"
        " before the first run."
    ]
    assert (report.embedded, report.unchanged, report.deleted) == (1, 4, 1)
    ids_after = {
        row[0]: row[1] for row in connection.execute("SELECT content, id FROM knowledge_base")
    }
    kept = set(ids_before.values()) & set(ids_after.values())
    assert len(kept) == 4 and len(ids_after) == 5


def test_rows_record_their_source_position_hash_and_model(
    connection: psycopg.Connection[tuple[object, ...]], folder: Path
) -> None:
    run(connection, folder, CountingEmbedder())
    rows = connection.execute(
        "SELECT source, chunk_index, title, content, content_hash, embedding_model,"
        " vector_dims(embedding), content_type FROM knowledge_base ORDER BY source, chunk_index"
    ).fetchall()
    guide = [row for row in rows if str(row[0]).endswith("/kb/guide.md")]
    assert [row[1] for row in guide] == [0, 1, 2]
    assert [row[2] for row in guide] == [
        "Setup guide > Install", "Setup guide > Configure", "Setup guide > Run",
    ]  # fmt: skip
    for source, _, title, content, digest, model, dimensions, kind in rows:
        assert isinstance(title, str) and isinstance(content, str)
        assert str(source).startswith("file:///")
        assert (
            digest
            == hashlib.sha256("\x1e".join(passage_sentences(title, content)).encode()).digest()
        )
        assert (model, dimensions, kind) == (MINILM_MODEL, 384, "guide")


def test_a_passage_is_embedded_as_the_mean_of_its_sentences_read_after_its_title(
    connection: psycopg.Connection[tuple[object, ...]], folder: Path
) -> None:
    assert passage_sentences("Refunds", "Ask within 14 days.\n\nWe answer in a day. Or two.") == [
        "Refunds\nAsk within 14 days.", "Refunds\nWe answer in a day.", "Refunds\nOr two.",
    ]  # fmt: skip
    run(connection, folder, CountingEmbedder())
    row = connection.execute(
        "SELECT embedding::text FROM knowledge_base WHERE title = 'Refunds'"
    ).fetchone()
    assert row is not None
    stored = np.array(str(row[0]).strip("[]").split(","), dtype=np.float32)
    sentences = CountingEmbedder().embed(
        ["Refunds\nAsk within 14 days.", "Refunds\nWe answer in a day."]
    )
    mean = sentences.mean(axis=0)
    assert np.allclose(stored, mean / np.linalg.norm(mean), atol=1e-6)
    assert np.allclose(
        passage_vectors(
            CountingEmbedder(), [("Refunds", "Ask within 14 days.\n\nWe answer in a day.")]
        )[0],
        stored,
        atol=1e-6,
    )


def test_chunks_embedded_the_way_of_before_are_embedded_again(
    connection: psycopg.Connection[tuple[object, ...]], folder: Path
) -> None:
    # Before, a chunk was embedded as one text (title, newline, content), and its hash covered
    # that text: such rows must not be kept as if their vectors were made the way of now. A chunk
    # of one sentence was read the same way then, so its hash and vector are unchanged.
    run(connection, folder, CountingEmbedder())
    connection.execute(
        "UPDATE knowledge_base SET content_hash = sha256(convert_to(title || E'\\n' || content,"
        " 'UTF8'))"
    )
    connection.commit()
    again = CountingEmbedder()
    report = run(connection, folder, again)
    assert (report.embedded, report.unchanged, report.deleted) == (1, 4, 1)
    assert {text.split("\n", 1)[0] for text in again.texts} == {"Refunds"}
    assert run(connection, folder, CountingEmbedder()).embedded == 0


def test_deleted_files_lose_their_chunks_and_moved_chunks_are_renumbered(
    connection: psycopg.Connection[tuple[object, ...]], folder: Path
) -> None:
    run(connection, folder, CountingEmbedder())
    (folder / "nested" / "page.html").unlink()
    guide = folder / "guide.md"
    guide.write_text(
        GUIDE.replace("## Install\n", "## Before you start\n\nRead this.\n\n## Install\n")
    )

    counting = CountingEmbedder()
    report = run(connection, folder, counting)
    assert report.sources_removed == 1 and len(counting.texts) == 1
    sources = [row[0] for row in connection.execute("SELECT source FROM knowledge_base")]
    assert not [source for source in sources if str(source).endswith("page.html")]
    titles = connection.execute(
        "SELECT title FROM knowledge_base WHERE source LIKE '%%guide.md' ORDER BY chunk_index"
    ).fetchall()
    assert [row[0] for row in titles] == [
        "Setup guide > Before you start", "Setup guide > Install", "Setup guide > Configure",
        "Setup guide > Run",
    ]  # fmt: skip


def test_bad_input_is_named_and_writes_nothing(
    connection: psycopg.Connection[tuple[object, ...]], folder: Path
) -> None:
    with pytest.raises(ValidationError) as error:
        documents_from_paths([folder], content_type="gossip")
    assert "type" in error.value.problems
    with pytest.raises(NotFoundError):
        documents_from_paths([folder / "missing.md"], content_type="faq")
    (folder / "broken.md").write_bytes(b"\xff\xfe not utf-8 \xff")
    with pytest.raises(ValidationError, match="UTF-8"):
        documents_from_paths([folder], content_type="faq")
    count = connection.execute("SELECT count(*) FROM knowledge_base").fetchone()
    assert count == (0,)
