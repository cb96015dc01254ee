"""Documents into chunks: parse Markdown, HTML or plain text into sections (a heading path and
its paragraphs), then pack each section's paragraphs into chunks within a token budget, with an
overlap carried from one chunk to the next inside a section.

Tokens are counted as words and punctuation marks, which stays within about a fifth of the
model's WordPiece count on English prose; the default budget (180) keeps a chunk, its title and
that margin under the model's 256-token window, so nothing is silently truncated.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from afilo_db.errors import ValidationError
from afilo_db.validation.checks import without_unprintable

CHUNK_TOKENS: Final = 180
OVERLAP_TOKENS: Final = 30
FORMATS: Final = {".md": "markdown", ".markdown": "markdown", ".txt": "text",
                  ".html": "html", ".htm": "html"}  # fmt: skip
_TOKEN = re.compile(r"\w+|[^\w\s]")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_TITLE_LIMIT = 300


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


@dataclass
class Section:
    headings: list[str]
    paragraphs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Document:
    title: str
    sections: list[Section]


class _Outline:
    """Sections as headings open them: the first level-1 heading is the document's title, every
    other heading starts a section under the path of the headings above it."""

    def __init__(self) -> None:
        self.title: str | None = None
        self.sections = [Section(headings=[])]
        self._levels: list[tuple[int, str]] = []

    def heading(self, level: int, text: str) -> None:
        if level == 1 and self.title is None:
            self.title = text
            self._levels = []
        else:
            self._levels = [(lvl, name) for lvl, name in self._levels if lvl < level]
            self._levels.append((level, text))
        self.sections.append(Section(headings=[name for _, name in self._levels]))

    def paragraph(self, text: str) -> None:
        self.sections[-1].paragraphs.append(text)

    def document(self, fallback_title: str) -> Document:
        filled = [section for section in self.sections if section.paragraphs]
        return Document(self.title or fallback_title, filled)


# Between the sentences a passage's content hash covers: a control character, so no two lists
# of sentences hash the same text (chunks hold no control characters: without_unprintable).
_SENTENCE_SEPARATOR: Final = "\x1e"


def passage_sentences(title: str, content: str) -> list[str]:
    """What the model reads of a passage: each of its sentences, after the passage's title (the
    document's title and section headings). A passage's vector is the mean of theirs
    (ingestion.passage_vectors): each sentence is read whole and in its context, where one text of
    a whole chunk blurs a sentence that answers a question among others that do not."""
    sentences = [
        f"{title}\n{sentence.strip()}"
        for paragraph in content.split("\n\n")
        for sentence in SENTENCE_END.split(paragraph)
        if sentence.strip()
    ]
    return sentences or [title]


@dataclass(frozen=True)
class Chunk:
    title: str
    content: str

    @property
    def embedded_sentences(self) -> list[str]:
        """What the model reads (passage_sentences), and what `content_hash` covers."""
        return passage_sentences(self.title, self.content)

    @property
    def content_hash(self) -> bytes:
        return hashlib.sha256(
            _SENTENCE_SEPARATOR.join(self.embedded_sentences).encode("utf-8")
        ).digest()


def parse_markdown(text: str, fallback_title: str) -> Document:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    sections = [Section(headings=[])]
    levels: list[tuple[int, str]] = []
    title: str | None = None
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.type == "heading_open":
            level = int(token.tag[1])
            heading = tokens[index + 1].content.strip()
            if level == 1 and title is None:
                title = heading
                levels = []
            else:
                levels = [(lvl, name) for lvl, name in levels if lvl < level] + [(level, heading)]
            sections.append(Section(headings=[name for _, name in levels]))
            index += 3
            continue
        if token.type == "inline" and token.content.strip():
            sections[-1].paragraphs.append(_plain_inline(token.children or []))
        elif token.type in ("fence", "code_block") and token.content.strip():
            sections[-1].paragraphs.append(token.content.strip())
        index += 1
    return Document(
        title or fallback_title, [section for section in sections if section.paragraphs]
    )


def _plain_inline(children: Sequence[object]) -> str:
    """Inline Markdown as the reader sees it: text and code, no markup."""
    parts: list[str] = []
    for child in children:
        kind = getattr(child, "type", "")
        if kind in ("text", "code_inline"):
            parts.append(str(getattr(child, "content", "")))
        elif kind in ("softbreak", "hardbreak"):
            parts.append(" ")
    return " ".join("".join(parts).split())


_HTML_BLOCKS: Final = ("p", "li", "pre", "blockquote", "dd", "dt", "td", "th", "figcaption")
_HTML_HEADINGS: Final = ("h1", "h2", "h3", "h4", "h5", "h6")


def parse_html(text: str, fallback_title: str) -> Document:
    from bs4 import BeautifulSoup, Tag

    soup = BeautifulSoup(text, "html.parser")
    for hidden in soup(["script", "style", "nav", "noscript", "template"]):
        hidden.decompose()
    page_title = soup.title.get_text(" ", strip=True) if soup.title else ""
    body = soup.body or soup
    outline = _Outline()
    for element in body.find_all([*_HTML_HEADINGS, *_HTML_BLOCKS]):
        if not isinstance(element, Tag):
            continue
        words = " ".join(element.get_text(" ", strip=True).split())
        if not words:
            continue
        if element.name in _HTML_HEADINGS:
            outline.heading(int(element.name[1]), words)
        # Only the innermost blocks: a list item holding paragraphs is read through them.
        elif not element.find(_HTML_BLOCKS):
            outline.paragraph(words)
    return outline.document(page_title or fallback_title)


def parse_text(text: str, fallback_title: str) -> Document:
    paragraphs = [" ".join(block.split()) for block in re.split(r"\n\s*\n", text)]
    paragraphs = [paragraph for paragraph in paragraphs if paragraph]
    title = fallback_title
    # A short first line standing alone is the title, as in a plain-text article.
    if len(paragraphs) > 1 and count_tokens(paragraphs[0]) <= 20 and "\n" not in paragraphs[0]:
        title = paragraphs.pop(0)
    return Document(title, [Section(headings=[], paragraphs=paragraphs)])


def parse_file(path: Path) -> Document:
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ValidationError(
            problems={
                str(path): f"must be one of {', '.join(sorted(FORMATS))} (Markdown, text, HTML)"
            }
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValidationError(problems={str(path): "must be UTF-8 text"}) from error
    fallback = path.stem.replace("-", " ").replace("_", " ").strip().capitalize() or path.name
    if kind == "markdown":
        return parse_markdown(text, fallback)
    if kind == "html":
        return parse_html(text, fallback)
    return parse_text(text, fallback)


def _pieces(paragraph: str, budget: int) -> Iterator[str]:
    """A paragraph, or its sentences (then its words) when it alone exceeds the budget."""
    if count_tokens(paragraph) <= budget:
        yield paragraph
        return
    for sentence in SENTENCE_END.split(paragraph):
        if count_tokens(sentence) <= budget:
            yield sentence
            continue
        words = sentence.split()
        step = max(1, budget // 2)
        for start in range(0, len(words), step):
            yield " ".join(words[start : start + step])


def chunk_document(
    document: Document, *, budget: int = CHUNK_TOKENS, overlap: int = OVERLAP_TOKENS
) -> list[Chunk]:
    """Each section's paragraphs packed into chunks of at most `budget` tokens; a new chunk in
    the same section starts with the previous chunk's last pieces, up to `overlap` tokens."""
    chunks: list[Chunk] = []
    for section in document.sections:
        # Passages are shown to buyers, so they are held to the rule of text a buyer sees: by
        # cleaning, after parsing (HTML's entities are characters only then), since a stray form
        # feed or override in a document is no reason to refuse the document.
        title = without_unprintable(" > ".join([document.title, *section.headings]))
        if len(title) > _TITLE_LIMIT:
            title = title[: _TITLE_LIMIT - 1] + "…"
        current: list[str] = []
        carried = 0  # pieces at the start of `current` repeated from the previous chunk
        for piece in (p for paragraph in section.paragraphs for p in _pieces(paragraph, budget)):
            size = sum(count_tokens(part) for part in current)
            if current and len(current) > carried and size + count_tokens(piece) > budget:
                chunks.append(Chunk(title, without_unprintable("\n\n".join(current))))
                tail: list[str] = []
                for part in reversed(current):
                    if sum(count_tokens(kept) for kept in tail) + count_tokens(part) > overlap:
                        break
                    tail.insert(0, part)
                current, carried = tail, len(tail)
            current.append(piece)
        if len(current) > carried:
            chunks.append(Chunk(title, without_unprintable("\n\n".join(current))))
    return chunks
