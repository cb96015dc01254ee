"""The labelled questions of `questions.json` and how a found passage is judged against them.

Shared by the tests and by `bench.knowledge` (which reports recall by kind and split), so that
both read the labels the same way. A label names a sample file (`file:refunds.md`), a product's
description (`product:<title>`) or a product's licence terms (`licence:<title>`); a question
with no label has no answer in the knowledge base.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

QUESTIONS_FILE = Path(__file__).parent / "questions.json"
# German and French questions about the English sample documents (the knowledge base is English):
# what a multilingual model is measured on (tests/knowledge/test_multilingual.py, bench.knowledge
# --languages). Never tuned on: their kind is the language.
OTHER_LANGUAGES_FILE = Path(__file__).parent / "questions_other_languages.json"
TUNE = "tune"
HELD_OUT = "held-out"
# The kind of the questions that the knowledge base cannot answer (they have no label).
NO_ANSWER = "no-answer"


@dataclass(frozen=True)
class LabelledQuestion:
    kind: str
    split: str
    question: str
    expected: tuple[str, ...]

    @property
    def answerable(self) -> bool:
        return bool(self.expected)


class Found(Protocol):
    @property
    def content_type(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def source(self) -> str | None: ...


def labelled_questions(file: Path = QUESTIONS_FILE) -> list[LabelledQuestion]:
    return [
        LabelledQuestion(item["kind"], item["split"], item["question"], tuple(item["expected"]))
        for item in json.loads(file.read_text(encoding="utf-8"))
    ]


def is_expected(passage: Found, label: str) -> bool:
    kind, _, name = label.partition(":")
    if kind == "file":
        return (passage.source or "").endswith("/" + name)
    title = name if kind == "product" else f"{name} licences"
    return passage.content_type == kind and passage.title == title


def first_hit(found: Sequence[Found], question: LabelledQuestion) -> int | None:
    """The rank (1 = first) of the first passage that answers the question, None if none."""
    for rank, passage in enumerate(found, 1):
        if any(is_expected(passage, label) for label in question.expected):
            return rank
    return None
