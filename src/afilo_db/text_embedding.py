"""A small, dependency-free text embedding for the knowledge base: feature hashing of word
unigrams and bigrams into EMBEDDING_DIMENSIONS, L2-normalized.

It is a real embedding (texts sharing words are close under cosine distance) that needs no model
download, so the demo, the seed and the tests work offline. A production deployment writes
embeddings from its model of choice and records that model's name in `embedding_model`.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re

from afilo_db.rules import EMBEDDING_DIMENSIONS

MODEL_NAME = f"afilo-hashing-{EMBEDDING_DIMENSIONS}-v1"
_WORD = re.compile(r"[a-z0-9]+")


def _features(text: str) -> list[str]:
    words = _WORD.findall(text.lower())
    return words + [f"{first} {second}" for first, second in itertools.pairwise(words)]


def embed(text: str) -> list[float]:
    vector = [0.0] * EMBEDDING_DIMENSIONS
    for feature in _features(text):
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        bucket = int.from_bytes(digest[:4], "big") % EMBEDDING_DIMENSIONS
        sign = 1.0 if digest[4] & 1 else -1.0
        vector[bucket] += sign
    norm = math.sqrt(sum(value * value for value in vector)) or 1.0
    return [round(value / norm, 6) for value in vector]


def to_pgvector_text(vector: list[float]) -> str:
    """pgvector's text form, for COPY."""
    return "[" + ",".join(repr(value) for value in vector) + "]"
