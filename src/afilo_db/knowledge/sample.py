"""The sample knowledge base shipped with the demo: help articles about the demo products,
licences, refunds, billing and accounts, one folder per content type (Markdown, text, HTML)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from afilo_db.knowledge.chunking import FORMATS, chunk_document, parse_file
from afilo_db.knowledge.ingestion import SourceDocument, check_content_type

SAMPLE_FOLDER: Final = Path(__file__).parent / "sample"
# Sources are named by their place in the package, not on this disk, so that a demo database
# keeps its chunks wherever the package is installed next.
SAMPLE_PREFIX: Final = "sample:"


def sample_documents() -> list[SourceDocument]:
    documents = []
    for file in sorted(SAMPLE_FOLDER.rglob("*")):
        if not file.is_file() or file.suffix.lower() not in FORMATS:
            continue
        relative = file.relative_to(SAMPLE_FOLDER)
        documents.append(
            SourceDocument(
                SAMPLE_PREFIX + relative.as_posix(),
                check_content_type(relative.parts[0]),
                chunk_document(parse_file(file)),
            )
        )
    return documents
