"""Documents into chunks: headings and paragraphs, a token budget, overlap, three formats."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from afilo_db.errors import ValidationError
from afilo_db.knowledge.chunking import (
    Document,
    Section,
    chunk_document,
    count_tokens,
    parse_file,
    parse_html,
    parse_markdown,
    parse_text,
)
from afilo_db.knowledge.sample import SAMPLE_FOLDER, sample_documents


def test_markdown_sections_follow_the_heading_path() -> None:
    document = parse_markdown(
        "# Guide\n\nIntro text.\n\n## Install\n\nRun **pip** `install`.\n\n"
        "### On Windows\n\nUse py.\n\n## Use\n\n- first item\n- second item\n",
        "fallback",
    )
    assert document.title == "Guide"
    assert [(s.headings, s.paragraphs) for s in document.sections] == [
        ([], ["Intro text."]),
        (["Install"], ["Run pip install."]),
        (["Install", "On Windows"], ["Use py."]),
        (["Use"], ["first item", "second item"]),
    ]
    titles = [chunk.title for chunk in chunk_document(document)]
    assert titles == ["Guide", "Guide > Install", "Guide > Install > On Windows", "Guide > Use"]


def test_html_reads_blocks_not_scripts_navigation_or_markup() -> None:
    document = parse_html(
        "<html><head><title>Page</title><style>p {}</style></head><body>"
        "<nav><p>Menu</p></nav><h1>Real title</h1><p>First <b>bold</b> words.</p>"
        "<script>alert('x')</script><h2>Part</h2><ul><li><p>Nested para</p></li>"
        "<li>Plain item</li></ul></body></html>",
        "fallback",
    )
    assert document.title == "Real title"
    assert [(s.headings, s.paragraphs) for s in document.sections] == [
        ([], ["First bold words."]),
        (["Part"], ["Nested para", "Plain item"]),
    ]


def test_plain_text_takes_a_short_first_line_as_its_title() -> None:
    document = parse_text("Title line\n\nFirst paragraph\ncontinues.\n\n\nSecond.", "fallback")
    assert document.title == "Title line"
    assert document.sections[0].paragraphs == ["First paragraph continues.", "Second."]
    assert parse_text("Only one paragraph here.", "Fallback").title == "Fallback"


def test_chunks_stay_within_the_budget_and_overlap() -> None:
    paragraphs = [f"Paragraph {index} says " + "word " * 40 + "." for index in range(10)]
    chunks = chunk_document(Document("Long", [Section([], paragraphs)]), budget=100, overlap=50)
    assert len(chunks) > 3
    for chunk in chunks:
        assert count_tokens(chunk.content) <= 100
    for before, after in itertools.pairwise(chunks):
        # The next chunk starts with the previous one's last paragraph.
        assert after.content.split("\n\n")[0] == before.content.split("\n\n")[-1]
    every = "\n\n".join(chunk.content for chunk in chunks)
    assert all(paragraph in every for paragraph in paragraphs)


def test_a_paragraph_longer_than_the_budget_is_split_by_sentence_then_words() -> None:
    giant = " ".join(f"Sentence {index} has a few words." for index in range(60))
    unbroken = "x" + " y" * 500
    chunks = chunk_document(Document("T", [Section([], [giant, unbroken])]), budget=60, overlap=0)
    assert all(count_tokens(chunk.content) <= 60 for chunk in chunks)
    assert any("Sentence 59 has a few words." in chunk.content for chunk in chunks)


def test_unsupported_or_undecodable_files_are_named(tmp_path: Path) -> None:
    pdf = tmp_path / "manual.pdf"
    pdf.write_bytes(b"%PDF-1.7")
    with pytest.raises(ValidationError) as error:
        parse_file(pdf)
    assert str(pdf) in error.value.problems
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValidationError, match="UTF-8"):
        parse_file(latin)


def test_the_sample_knowledge_base_has_forty_documents_or_more() -> None:
    documents = sample_documents()
    assert len(documents) >= 40
    assert {document.source.split(":")[1].split("/")[0] for document in documents} == {
        path.name for path in SAMPLE_FOLDER.iterdir() if path.is_dir()
    }
    assert all(document.chunks for document in documents)
