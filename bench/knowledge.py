"""The chat bot's knowledge search at scale: hybrid search (full text + HNSW, fused by RRF) on
200,000 chunks (`--chunks 1000000` for the large run), p50/p99 latency, recall@10 of the HNSW
path against exact search, and the embedding model's throughput on this machine.

Synthetic data, made with numpy from real material and written with binary COPY:
- vectors: the real embeddings of the sample knowledge base's chunks are the cluster centres;
  each synthetic vector mixes two centres (weights drawn per row) plus Gaussian noise
  (sigma 0.03 per dimension, about as far from its centres as two paraphrases are), normalised.
  Real embeddings are clustered like this; uniform random vectors are not, and would measure a
  case no knowledge base has.
- text: 60 words per chunk, 20 drawn from the sample knowledge base's vocabulary and 40 from a
  Zipf-like synthetic vocabulary of 20,000 terms, so full-text matches are as selective as in
  a large help centre.
- questions: the labelled questions of tests/knowledge/questions.json, embedded by the model
  (windows of the long ones, as the search does).

Baselines from the same run: each half of the hybrid statement alone (full text only, vector
only), as one prepared statement through raw psycopg after the service's setup statement; and
`search()` itself in a Session, as an application calls it. `--vector-indexes` adds the vector
half through a halfvec and a binary-quantized expression index (re-ranked by the full vectors)
against the schema's. Figures go to bench/results/knowledge.json.

`--quality-only` runs only the evaluation on the labelled questions (`--tune` adds the relevance
fit, `--model NAME` moves the demo base to another model first); `--languages` only the German
and French questions with MiniLM and with the multilingual plug-in (knowledge_languages.json).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from pgvector.psycopg import register_vector
from sqlalchemy.orm import Session
from tests.knowledge.labels import (
    HELD_OUT,
    NO_ANSWER,
    OTHER_LANGUAGES_FILE,
    TUNE,
    LabelledQuestion,
    first_hit,
    labelled_questions,
)
from tests.knowledge.plans import generic_plan, plan_nodes

from afilo_db.data import seed
from afilo_db.db.embedded import EmbeddedServer
from afilo_db.db.engine import create_app_engine
from afilo_db.knowledge import reembed
from afilo_db.knowledge.catalog import drain_queue
from afilo_db.knowledge.embedders import (
    MINILM_MODEL,
    MINILM_RELEVANCE,
    Embedder,
    MiniLMEmbedder,
    Vectors,
    get_embedder,
    to_pgvector_text,
)
from afilo_db.knowledge.ingestion import passage_vectors
from afilo_db.knowledge.multilingual import USE_MULTILINGUAL_MODEL, MultilingualUSEEmbedder
from afilo_db.knowledge.sample import sample_documents
from afilo_db.models import KnowledgeBase
from afilo_db.services import knowledge
from afilo_db.services.knowledge import (
    EF_SEARCH,
    SEARCH_SETUP_SQL,
    SearchSetup,
    asked_part,
    question_windows,
    search_statement,
    setup_from,
    setup_parameters,
    statement_parameters,
)
from bench.common import fresh_database, report, scratch_server, summary, timed

DEFAULT_CHUNKS = 200_000
ROUNDS = 5
K = 10
CANDIDATES = 40
NOISE = 0.03
SHARED_BUFFERS = "1GB"

SCHEMA_HNSW: dict[str, int] = next(
    index.dialect_options["postgresql"]["with"]
    for index in KnowledgeBase.__table__.indexes  # type: ignore[attr-defined]
    if index.name == "ix_knowledge_base_embedding"
)


# K written in, as the search's LIMITs are: the session plans generically (`settings`), and a
# generic plan cannot see a LIMIT parameter.
NEIGHBOURS = f"""
SELECT id FROM knowledge_base ORDER BY embedding <=> %s::vector LIMIT {K}
"""
NEIGHBOURS_OF_CANDIDATES = """
SELECT id FROM knowledge_base kb ORDER BY kb.embedding <=> %(vector)s::vector LIMIT %(limit)s
"""


def embedding_throughput(passages: list[tuple[str, str]]) -> dict[str, float]:
    """Chunks per second through the model (no cache), in batches, as ingestion embeds them (each
    sentence after the title, averaged), on the wall clock and per second of CPU the process got
    (on a shared machine the wall clock counts other people's work; two cores give at most twice
    the per-CPU-second figure)."""
    embedder = MiniLMEmbedder()
    passage_vectors(embedder, passages[:4])
    cpu_started = time.process_time()
    wall = timed(lambda: passage_vectors(embedder, passages))
    cpu = time.process_time() - cpu_started
    return {
        "chunks": len(passages),
        "chunks_per_second_wall_clock": round(len(passages) / wall, 1),
        "chunks_per_cpu_second": round(len(passages) / cpu, 1),
        "mean_tokens_per_chunk_words": round(
            statistics.mean(len(content.split()) for _, content in passages), 1
        ),
    }


def synthetic_rows(
    chunks: int, centres: npt.NDArray[np.float32], vocabulary: list[str]
) -> Iterator[tuple[Any, ...]]:
    """Rows for COPY, made a block at a time (numpy), so that memory stays flat."""
    rng = np.random.default_rng(2026)
    kinds = ("faq", "guide", "policy", "product", "troubleshooting", "docs", "licence")
    words = np.array(vocabulary)
    terms = np.array([f"term{index}" for index in range(20_000)])
    block = 10_000
    for start in range(0, chunks, block):
        size = min(block, chunks - start)
        first = rng.integers(0, len(centres), size)
        second = rng.integers(0, len(centres), size)
        weight = rng.uniform(0.5, 1.0, (size, 1)).astype(np.float32)
        vectors = centres[first] * weight + centres[second] * (1 - weight)
        vectors += np.asarray(rng.normal(0.0, NOISE, size=vectors.shape), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        common = words[rng.integers(0, len(words), (size, 20))]
        # Zipf-like: a few terms are frequent, most are rare.
        rare = terms[(20_000 * rng.random((size, 40)) ** 3).astype(int)]
        for offset in range(size):
            number = start + offset
            yield (
                kinds[number % len(kinds)],
                f"Synthetic chunk {number}",
                " ".join([*common[offset], *rare[offset]]),
                vectors[offset],
                MINILM_MODEL,
                f"bench:{number}",
                0,
            )


def fill(
    connection: psycopg.Connection[Any],
    chunks: int,
    centres: npt.NDArray[np.float32],
    vocabulary: list[str],
) -> None:
    register_vector(connection)
    connection.execute("DROP INDEX ix_knowledge_base_embedding")
    statement = (
        "COPY knowledge_base (content_type, title, content, embedding, embedding_model, source,"
        " chunk_index) FROM STDIN WITH (FORMAT BINARY)"
    )
    with connection.cursor().copy(statement) as copy:
        copy.set_types(["text", "text", "text", "vector", "text", "text", "int4"])
        for row in synthetic_rows(chunks, centres, vocabulary):
            copy.write_row(row)
    connection.commit()


def build_index(connection: psycopg.Connection[Any], m: int, ef_construction: int) -> float:
    connection.execute("SET maintenance_work_mem = '1GB'")
    connection.execute("SET max_parallel_maintenance_workers = 1")
    seconds = timed(
        lambda: connection.execute(
            "CREATE INDEX ix_knowledge_base_embedding ON knowledge_base USING hnsw"
            f" (embedding vector_cosine_ops) WITH (m = {m}, ef_construction = {ef_construction})"
        )
    )
    connection.commit()
    connection.autocommit = True
    connection.execute("VACUUM ANALYZE knowledge_base")
    return seconds


def statement(fulltext: int, semantic: int) -> str:
    """The search statement with `fulltext` and `semantic` candidates, K results."""
    return search_statement(fulltext, semantic, K)


def params(question: str, vectors: Vectors, setup: SearchSetup) -> dict[str, Any]:
    return statement_parameters(
        question, vectors, model_name=MINILM_MODEL, relevance=MINILM_RELEVANCE, types=None,
        include_unpublished=False, min_relevance=0,
        caller_plan_cache_mode=setup.caller_plan_cache_mode, corrections=setup.corrections,
    )  # fmt: skip


def search_setup(
    connection: psycopg.Connection[Any], question: str, correct_spelling: bool
) -> SearchSetup:
    """The service's setup round trip before the search: the active model and, when the
    full-text side runs, the spelling corrections."""
    rows = connection.execute(
        SEARCH_SETUP_SQL,
        setup_parameters(asked_part(question), correct_spelling),
        prepare=True,
    ).fetchall()
    return setup_from(rows)


def settings(connection: psycopg.Connection[Any], ef_search: int) -> None:
    """The service's settings (SEARCH_SETTINGS_SQL), set once for the session: the least a raw
    path can send (the service sends them with each search, in its round trip)."""
    connection.execute(
        "SELECT set_config('hnsw.ef_search', %s, false),"
        " set_config('hnsw.iterative_scan', 'relaxed_order', false),"
        " set_config('plan_cache_mode', 'force_generic_plan', false)",
        (str(ef_search),),
    )


def search_latencies(
    connection: psycopg.Connection[Any], url: str, questions: list[tuple[str, Vectors]]
) -> dict[str, dict[str, float]]:
    """The hybrid search and each half alone as raw prepared statements, each the setup round
    trip then the search, as the service runs them; and `search()` itself, in a Session closed
    without commit, as an application calls it (its question vectors cached by the first round).
    Interleaved question by question."""
    variants = {
        "hybrid": (CANDIDATES, CANDIDATES),
        "fulltext_only": (CANDIDATES, 0),
        "vector_only": (0, CANDIDATES),
    }
    samples: dict[str, list[float]] = {name: [] for name in [*variants, "search_function"]}
    engine = create_app_engine(url)
    try:
        for round_number in range(ROUNDS + 1):
            for question, vector in questions:
                for name, (fulltext, semantic) in variants.items():
                    started = time.perf_counter()
                    setup = search_setup(connection, question, correct_spelling=bool(fulltext))
                    connection.execute(
                        statement(fulltext, semantic), params(question, vector, setup),
                        prepare=True,
                    ).fetchall()  # fmt: skip
                    if round_number:  # the first round warms the caches and prepares
                        samples[name].append(time.perf_counter() - started)
                started = time.perf_counter()
                with Session(engine) as session:
                    knowledge.search(session, question, limit=K, min_relevance=0)
                if round_number:
                    samples["search_function"].append(time.perf_counter() - started)
    finally:
        engine.dispose()
    return {name: summary(values) for name, values in samples.items()}


def exact_neighbours(connection: psycopg.Connection[Any], vectors: list[str]) -> list[set[Any]]:
    """The true top K of each vector: a sequential scan, no index. Never prepared: under the
    session's generic planning, the prepared statement's one plan, made here without index
    scans, would be the one `recall` then ran, and every "approximate" list the exact one."""
    with connection.transaction():
        connection.execute("SET LOCAL enable_indexscan = off")
        return [
            {row[0] for row in connection.execute(NEIGHBOURS, (vector,), prepare=False)}
            for vector in vectors
        ]


def recall(
    connection: psycopg.Connection[Any], vectors: list[str], truth: list[set[Any]], ef_search: int
) -> float:
    """Recall@K of the HNSW index scan against the exact neighbours."""
    settings(connection, ef_search)
    found = 0
    for vector, exact in zip(vectors, truth, strict=True):
        approximate = {row[0] for row in connection.execute(NEIGHBOURS, (vector,))}
        found += len(approximate & exact)
    return round(found / (K * len(vectors)), 4)


# The vector half's alternatives (`--vector-indexes`), each as pgvector's README writes it: an
# expression HNSW index on a smaller form of the vector, its nearest `oversample` by that form,
# re-ranked by the full vector's cosine distance: name -> (index expression and operator class,
# the ordering the index serves).
VECTOR_FORMS: dict[str, tuple[str, str]] = {
    "halfvec": (
        "(embedding::halfvec(384)) halfvec_cosine_ops",
        "kb.embedding::halfvec(384) <=> %(vector)s::halfvec(384)",
    ),
    "binary": (
        "(binary_quantize(embedding)::bit(384)) bit_hamming_ops",
        "binary_quantize(kb.embedding)::bit(384) <~> binary_quantize(%(vector)s::vector)",
    ),
}
VECTOR_FORM_OVERSAMPLES = {"halfvec": (CANDIDATES, 2 * CANDIDATES), "binary": (200, 400, 1000)}
RERANKED = """
SELECT id FROM (
  SELECT kb.id, kb.embedding FROM knowledge_base kb ORDER BY {ordering} LIMIT %(oversample)s
) nearest
ORDER BY embedding <=> %(vector)s::vector LIMIT %(limit)s
"""


def vector_indexes(
    connection: psycopg.Connection[Any], vectors: list[str], truth: list[set[Any]], ef_search: int
) -> dict[str, Any]:
    """The vector half through each form of VECTOR_FORMS against the schema's index: build time,
    size, recall@10 against exact search and p50 of the nearest CANDIDATES (re-ranked), all
    interleaved question by question at `ef_search` (at least the oversample)."""
    variants = {"vector": (NEIGHBOURS_OF_CANDIDATES, CANDIDATES)}
    built: dict[str, Any] = {}
    connection.execute("SET maintenance_work_mem = '1GB'")
    for name, (expression, ordering) in VECTOR_FORMS.items():
        index = f"ix_bench_{name}"
        create = (
            f"CREATE INDEX {index} ON knowledge_base USING hnsw ({expression})"
            f" WITH (m = {SCHEMA_HNSW['m']}, ef_construction = {SCHEMA_HNSW['ef_construction']})"
        )
        seconds = timed(functools.partial(connection.execute, create))
        size = connection.execute("SELECT pg_relation_size(%s::regclass)", (index,)).fetchone()
        built[name] = {"build_seconds": round(seconds, 1), "mb": round((size or [0])[0] / 2**20)}
        print(f"{name} index built in {seconds:.0f} s", flush=True)
        for oversample in VECTOR_FORM_OVERSAMPLES[name]:
            variants[f"{name}_oversample_{oversample}"] = (
                RERANKED.format(ordering=ordering),
                oversample,
            )
    connection.execute("ANALYZE knowledge_base")
    found = {name: 0 for name in variants}
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for round_number in range(3):
        for vector, exact in zip(vectors, truth, strict=True):
            for name, (statement, oversample) in variants.items():
                settings(connection, max(ef_search, oversample))
                arguments = {"vector": vector, "oversample": oversample, "limit": CANDIDATES}
                started = time.perf_counter()
                rows = connection.execute(statement, arguments, prepare=True).fetchall()
                if round_number:
                    samples[name].append(time.perf_counter() - started)
                else:
                    found[name] += len({row[0] for row in rows[:K]} & exact)
    settings(connection, ef_search)
    return {
        "indexes": built,
        "vector_half": {
            name: {"recall_at_10": round(found[name] / (K * len(vectors)), 4)}
            | summary(samples[name])
            for name in variants
        },
    }


def uses_hnsw(connection: psycopg.Connection[Any], question: str, vector: Vectors) -> bool:
    """Whether the plan the search runs, the prepared statement's generic one, reads the HNSW
    index (EXPLAIN of the statement with values would plan with the values instead)."""
    setup = search_setup(connection, question, correct_spelling=True)
    plan = generic_plan(
        connection, search_statement(CANDIDATES, CANDIDATES, K), params(question, vector, setup)
    )
    return any(node.get("Index Name") == "ix_knowledge_base_embedding" for node in plan_nodes(plan))


def demo_database(server: EmbeddedServer) -> str:
    """What `afilo-db up` builds for the bot: the sample knowledge base and the demo products'
    passages, embedded by the real model."""
    url = fresh_database(server, "bench_knowledge_quality")
    with psycopg.connect(url) as connection:
        seed.seed(connection, products=seed.DEMO_PRODUCTS)
        drain_queue(connection, embedder=get_embedder())
        connection.commit()
    return url


def metrics(ranks: list[int | None], answered: list[bool]) -> dict[str, float]:
    """recall@1, recall@5 and MRR@10 from the first right passage's ranks (None: not in the top
    10), and the share of questions that reach the relevance threshold."""
    count = len(ranks)
    return {
        "questions": count,
        "recall@1": round(sum(rank == 1 for rank in ranks) / count, 3),
        "recall@5": round(sum(rank is not None and rank <= 5 for rank in ranks) / count, 3),
        "mrr@10": round(sum(1 / rank for rank in ranks if rank is not None) / count, 3),
        "answered": round(sum(answered) / count, 3),
    }


def quality(url: str, mode: str, questions: list[LabelledQuestion] | None = None) -> dict[str, Any]:
    """Recall and MRR of `mode` on the labelled questions (by default questions.json), by split,
    then by kind; for the questions without an answer, the share refused (no passage reaches the
    threshold)."""
    engine = create_app_engine(url)
    ranks: dict[str, dict[str, list[int | None]]] = {}
    answered: dict[str, dict[str, list[bool]]] = {}
    try:
        with Session(engine) as session:
            for question in labelled_questions() if questions is None else questions:
                found = knowledge.search(
                    session, question.question, limit=K, mode=mode, min_relevance=0
                )
                ranks.setdefault(question.split, {}).setdefault(question.kind, []).append(
                    first_hit(found, question)
                )
                answered.setdefault(question.split, {}).setdefault(question.kind, []).append(
                    bool(found) and found[0].relevance >= knowledge.RELEVANCE_THRESHOLD
                )
            session.rollback()
    finally:
        engine.dispose()
    report: dict[str, Any] = {}
    for split in sorted(ranks, key=lambda name: name != HELD_OUT):
        kinds = {kind: values for kind, values in sorted(ranks[split].items())}
        unanswerable = answered[split].pop(NO_ANSWER, [])
        kinds.pop(NO_ANSWER, None)
        report[split] = {
            "all": metrics(
                [rank for values in kinds.values() for rank in values],
                [flag for values in answered[split].values() for flag in values],
            ),
            **{kind: metrics(values, answered[split][kind]) for kind, values in kinds.items()},
            NO_ANSWER: {
                "questions": len(unanswerable),
                "refused": round(unanswerable.count(False) / max(1, len(unanswerable)), 3),
            },
        }
    return report


@dataclass(frozen=True)
class Candidate:
    ranks: tuple[int | None, int | None, int | None]  # lexical, code, vector
    features: tuple[float, float, float, float]  # the relevance model's inputs
    relevance: float  # the service's (with the constants in force)
    right: bool


def candidates(url: str, split: str) -> list[tuple[LabelledQuestion, list[Candidate]]]:
    """Every passage any list finds for each question of `split`, with its ranks and evidence."""
    engine = create_app_engine(url)
    gathered = []
    try:
        with Session(engine) as session:
            for question in labelled_questions():
                if question.split != split:
                    continue
                found = knowledge.search(
                    session, question.question, limit=knowledge.MAX_LIMIT, min_relevance=0
                )
                gathered.append(
                    (
                        question,
                        [
                            Candidate(
                                (passage.fulltext_rank, passage.code_rank, passage.vector_rank),
                                relevance_features(passage),
                                passage.relevance,
                                first_hit([passage], question) == 1,
                            )
                            for passage in found
                        ],
                    )
                )
            session.rollback()
    finally:
        engine.dispose()
    return gathered


def relevance_features(passage: knowledge.Passage) -> tuple[float, float, float, float]:
    asked = passage.codes_asked
    return (
        passage.similarity or 0.0,
        passage.coverage,
        passage.codes_found / asked if asked else 0.0,
        float(bool(asked) and not passage.codes_found),
    )


RELEVANCE_FEATURES = ("similarity", "coverage", "code_found", "code_missing")
# The code-missing weight is chosen, not fitted: a maximum-likelihood fit over every candidate
# weighs it by how often a right passage lacks an incidental token (macOS, v2), not by what
# matters, whether a question about a code the base does not hold gets refused. Each value
# (None: fitted with the rest) is tried and the best balanced accuracy on the tune split kept.
CODE_MISSING_CHOICES = (None, -2.0, -3.0, -4.0, -5.0, -6.0)
# The tune split's questions, cut by position into this many parts for cross_validated_recall_at_1.
CROSS_VALIDATION_FOLDS = 7


def fit_logistic(
    features: npt.NDArray[np.float64],
    labels: npt.NDArray[np.float64],
    code_missing: float | None = None,
) -> list[float]:
    """Logistic regression by Newton's method, with a small L2 penalty (not on the intercept):
    the intercept, then one weight per feature. `code_missing`, when given, is that feature's
    weight, held fixed (an offset) while the others are fitted."""
    fixed = code_missing is not None
    free = features[:, :-1] if fixed else features
    offset = features[:, -1] * (code_missing or 0.0)
    design = np.hstack([np.ones((len(free), 1)), free])
    weights = np.zeros(design.shape[1])
    penalty = np.eye(design.shape[1]) * 0.01
    penalty[0, 0] = 0
    for _ in range(50):
        probability = 1 / (1 + np.exp(-(design @ weights + offset)))
        gradient = design.T @ (probability - labels) + penalty @ weights
        hessian = (design.T * (probability * (1 - probability))) @ design + penalty
        weights -= np.linalg.solve(hessian, gradient)
    fitted = [round(float(value), 3) for value in weights]
    return [*fitted, code_missing] if code_missing is not None else fitted


def decisions(
    gathered: list[tuple[LabelledQuestion, list[Candidate]]], coefficients: list[float]
) -> dict[str, Any]:
    """The ranking that `coefficients` give and the threshold with the best balanced accuracy
    (the mean of the share of answerable questions answered and of the others refused)."""
    intercept, *slopes = coefficients

    def probability(candidate: Candidate) -> float:
        return 1 / (1 + math.exp(-(intercept + float(np.dot(slopes, candidate.features)))))

    ranked = [
        (question, sorted(found, key=probability, reverse=True)) for question, found in gathered
    ]
    answerable = [found for question, found in ranked if question.answerable]
    unanswerable = [found for question, found in ranked if not question.answerable]
    curve = {}
    for step in range(1, 20):
        threshold = step / 20
        answered = sum(bool(found) and probability(found[0]) >= threshold for found in answerable)
        refused = sum(not found or probability(found[0]) < threshold for found in unanswerable)
        curve[threshold] = {
            "answered": round(answered / len(answerable), 3),
            "refused": round(refused / len(unanswerable), 3),
            "balanced_accuracy": round(
                (answered / len(answerable) + refused / len(unanswerable)) / 2, 3
            ),
        }
    ranks = [
        next((rank for rank, c in enumerate(found[:K], 1) if c.right), None) for found in answerable
    ]
    threshold = max(curve, key=lambda value: curve[value]["balanced_accuracy"])
    return {
        "coefficients": dict(zip(("intercept", *RELEVANCE_FEATURES), coefficients, strict=True)),
        "ranking": metrics(ranks, [True] * len(ranks)),
        "threshold": threshold,
        "balanced_accuracy": curve[threshold]["balanced_accuracy"],
        "threshold_curve": curve,
    }


def training_data(
    gathered: list[tuple[LabelledQuestion, list[Candidate]]],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The relevance model's inputs and labels: one row per candidate of every question."""
    features = np.array([c.features for _, found in gathered for c in found], dtype=np.float64)
    labels = np.array([c.right for _, found in gathered for c in found], dtype=np.float64)
    return features, labels


def cross_validated_recall_at_1(
    gathered: list[tuple[LabelledQuestion, list[Candidate]]],
    code_missing: float | None,
    folds: int = CROSS_VALIDATION_FOLDS,
) -> float:
    """recall@1 of the relevance fit on questions it was not fitted on: the tune split cut into
    `folds` parts by position, each ranked by a fit on the others. recall@1 of a fit on the
    questions it ranks flatters a feature (one question is 0.008 of 125), so a new feature is
    kept only if it raises this."""
    hits = []
    for fold in range(folds):
        fitted_on = [pair for index, pair in enumerate(gathered) if index % folds != fold]
        # The intercept moves every candidate of a question alike: it does not change an order.
        _, *slopes = fit_logistic(*training_data(fitted_on), code_missing)
        for question, found in gathered[fold::folds]:
            if question.answerable:
                best = max(found, key=lambda c: float(np.dot(slopes, c.features)), default=None)
                hits.append(best is not None and best.right)
    return round(sum(hits) / len(hits), 3)


def as_relevance(coefficients: dict[str, float]) -> str:
    """The fit as the `Relevance` an embedder carries (its `relevance` attribute)."""
    return (
        f"Relevance(intercept={coefficients['intercept']},"
        f" per_similarity={coefficients['similarity']},"
        f" per_coverage={coefficients['coverage']},"
        f" per_code_found={coefficients['code_found']},"
        f" per_code_missing={coefficients['code_missing']})"
    )


def tune(url: str) -> dict[str, Any]:
    """The relevance model and its threshold, chosen on the tune split (never the held-out one):
    logistic fits of "this passage answers the question" on every candidate the lists find, one
    per choice of the code-missing weight, the best by balanced accuracy then recall@1, printed
    as the `Relevance` to give the model's embedder (`to_paste`)."""
    gathered = candidates(url, TUNE)
    features, labels = training_data(gathered)
    tried = [
        decisions(gathered, fit_logistic(features, labels, code_missing))
        | {"cross_validated_recall@1": cross_validated_recall_at_1(gathered, code_missing)}
        for code_missing in CODE_MISSING_CHOICES
    ]
    best = max(tried, key=lambda fit: (fit["balanced_accuracy"], fit["ranking"]["recall@1"]))
    return {
        "chosen": best,
        "to_paste": as_relevance(best["coefficients"]),
        "tried": [
            {
                key: fit[key]
                for key in (
                    "coefficients",
                    "ranking",
                    "cross_validated_recall@1",
                    "threshold",
                    "balanced_accuracy",
                )
            }
            for fit in tried
        ],
    }


@dataclass(frozen=True)
class StoredPassage:
    content_type: str
    title: str
    source: str | None
    content: str


class NativeUSE:
    """The plug-in's model without its projection: the 512 numbers a text that the column
    cannot hold, to measure what the projection to 384 costs."""

    model_name = f"{USE_MULTILINGUAL_MODEL}-native-512"

    def __init__(self, projected: MultilingualUSEEmbedder) -> None:
        self.projected = projected

    def embed(self, texts: Sequence[str]) -> Vectors:
        return self.projected.embed_native(texts)


def vector_list_alone(
    embedder: Embedder, passages: list[StoredPassage], questions: list[LabelledQuestion]
) -> dict[str, float]:
    """Recall of the vector list alone, by exact cosine in numpy (no index, any dimension):
    passages embedded as ingestion embeds them, a question by its windows, best window kept."""
    matrix = passage_vectors(embedder, [(passage.title, passage.content) for passage in passages])
    ranks = []
    for question in questions:
        windows = embedder.embed(question_windows(" ".join(question.question.split())))
        nearest = np.argsort(-(windows @ matrix.T).max(axis=0), kind="stable")[:K]
        ranks.append(first_hit([passages[index] for index in nearest], question))
    figures = metrics(ranks, [True] * len(ranks))
    del figures["answered"]
    return figures


def move_to(url: str, model: str) -> float:
    """`kb reembed --model` through the functions it calls; returns the CPU-seconds it took
    (the model's loading included)."""
    started = time.process_time()
    embedder = get_embedder(model)
    with psycopg.connect(url) as connection:
        reembed.move(connection, embedder)
    return round(time.process_time() - started, 2)


def languages(server: EmbeddedServer) -> dict[str, Any]:
    """German and French questions about the English documents, and the English labelled ones,
    through the whole search on the demo base with MiniLM, then moved to the multilingual
    plug-in (projected to 384); then the vector list alone for MiniLM and the plug-in with and
    without its projection, which is where the projection's cost shows."""
    url = demo_database(server)
    other = labelled_questions(OTHER_LANGUAGES_FILE)
    english = [question for question in labelled_questions() if question.answerable]
    with psycopg.connect(url) as connection:
        passages = [
            StoredPassage(*row)
            for row in connection.execute(
                "SELECT content_type, title, source, content FROM knowledge_base"
                " WHERE is_published ORDER BY id"
            )
        ]
    search: dict[str, Any] = {}
    for model in (MINILM_MODEL, USE_MULTILINGUAL_MODEL):
        moved = {} if model == MINILM_MODEL else {"reembed_cpu_seconds": move_to(url, model)}
        in_english = quality(url, "hybrid")
        search[model] = moved | {
            "other_languages": quality(url, "hybrid", other)[HELD_OUT],
            "english": {
                split: {key: figures[key] for key in ("all", NO_ANSWER)}
                for split, figures in in_english.items()
            },
        }
        print(json.dumps({model: search[model]}, indent=1), flush=True)
    plug_in = MultilingualUSEEmbedder()
    question_sets = {
        "german": [question for question in other if question.kind == "german"],
        "french": [question for question in other if question.kind == "french"],
        "english held-out": [question for question in english if question.split == HELD_OUT],
        "english tune": [question for question in english if question.split == TUNE],
    }
    embedders: dict[str, Embedder] = {
        MINILM_MODEL: MiniLMEmbedder(),
        f"{USE_MULTILINGUAL_MODEL} (projected to 384)": plug_in,
        f"{USE_MULTILINGUAL_MODEL} (native 512)": NativeUSE(plug_in),
    }
    return {
        "passages": len(passages),
        "search": search,
        "vector_list_alone": {
            name: {
                label: vector_list_alone(embedder, passages, questions)
                for label, questions in question_sets.items()
            }
            for name, embedder in embedders.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=DEFAULT_CHUNKS)
    parser.add_argument("--m", type=int, default=SCHEMA_HNSW["m"], help="HNSW m (the schema's)")
    parser.add_argument(
        "--ef-construction", type=int, default=SCHEMA_HNSW["ef_construction"],
        help="HNSW ef_construction (the schema's)",
    )  # fmt: skip
    parser.add_argument(
        "--ef-search", type=int, default=EF_SEARCH, help="hnsw.ef_search (the search service's)"
    )
    parser.add_argument(
        "--tune", action="store_true",
        help="Print the fusion grid, the relevance fit and the threshold curve on the tune split.",
    )  # fmt: skip
    parser.add_argument(
        "--quality-only", action="store_true",
        help="Only the relevance evaluation on the labelled questions (no scale run).",
    )  # fmt: skip
    parser.add_argument(
        "--languages", action="store_true",
        help="Only German and French questions (and the English ones) with MiniLM and with the"
        " multilingual plug-in (needs afilo-db[multilingual]).",
    )  # fmt: skip
    parser.add_argument(
        "--vector-indexes", action="store_true",
        help="Also build the vector half's alternatives (halfvec and binary-quantized expression"
        " indexes, re-ranked by the full vectors) and measure their recall and p50.",
    )  # fmt: skip
    parser.add_argument(
        "--model", default=MINILM_MODEL,
        help="With --quality-only: the demo base moved to this embedding model first (as `kb"
        " reembed` does), to evaluate it and, with --tune, refit the relevance on it.",
    )  # fmt: skip
    arguments = parser.parse_args()
    chunks, ef_search = arguments.chunks, arguments.ef_search
    if arguments.model != MINILM_MODEL and not arguments.quality_only:
        parser.error("--model needs --quality-only (the scale run uses MiniLM's vectors)")
    if arguments.languages:
        with scratch_server("knowledge-languages") as server:
            report("knowledge_languages", languages(server))
        return

    with scratch_server("knowledge-quality") as server:
        url = demo_database(server)
        if arguments.model != MINILM_MODEL:
            print(f"moved to {arguments.model}: {move_to(url, arguments.model)} CPU-s", flush=True)
        if arguments.tune:
            print(json.dumps(tune(url), indent=1), flush=True)
        relevance = {mode: quality(url, mode) for mode in knowledge.SEARCH_MODES}
    print(json.dumps(relevance, indent=1), flush=True)
    if arguments.quality_only:
        report("knowledge_quality", {"relevance": relevance})
        return

    documents = sample_documents()
    passages = [(chunk.title, chunk.content) for document in documents for chunk in document.chunks]
    throughput = embedding_throughput(passages * max(1, 256 // len(passages)))
    print(f"embedding: {throughput}", flush=True)

    embedder = MiniLMEmbedder()
    centres = passage_vectors(embedder, passages)
    vocabulary = sorted(
        {
            word.lower()
            for passage in passages
            for word in re.findall(r"[A-Za-z]{3,}", "\n".join(passage))
        }
    )
    labelled = labelled_questions()
    question_texts = [" ".join(item.question.split()) for item in labelled]
    questions = [(text, embedder.embed(question_windows(text))) for text in question_texts]
    # HNSW's recall is measured on one vector per question: the first window's.
    question_vectors = [to_pgvector_text(vectors[0]) for _, vectors in questions]

    # pgvector's advice: the HNSW index in memory. 200,000 chunks make a 391 MB index, more than
    # the embedded server's default 128 MB of shared buffers (searches then copy pages in from
    # the OS cache, about 6 ms of the p50); a production server is sized for its index.
    with scratch_server("knowledge", settings={"shared_buffers": SHARED_BUFFERS}) as server:
        url = fresh_database(server, "bench_knowledge")
        with psycopg.connect(url) as connection:
            load_seconds = timed(lambda: fill(connection, chunks, centres, vocabulary))
            print(f"loaded {chunks:,} chunks in {load_seconds:.0f} s", flush=True)
            index_seconds = build_index(connection, arguments.m, arguments.ef_construction)
            connection.commit()
            print(f"HNSW index built in {index_seconds:.0f} s", flush=True)
        with psycopg.connect(url, autocommit=True) as connection:
            truth = exact_neighbours(connection, question_vectors)
            recall_by_ef = {
                ef: recall(connection, question_vectors, truth, ef)
                for ef in sorted({40, 100, 200, 400, ef_search})
            }
            settings(connection, ef_search)
            hnsw_in_plan = uses_hnsw(connection, *questions[0])
            latency = search_latencies(connection, url, questions)
            alternatives = (
                vector_indexes(connection, question_vectors, truth, ef_search)
                if arguments.vector_indexes
                else None
            )

    hybrid = latency["hybrid"]
    figures = {
        "chunks": chunks,
        "synthetic_data": (
            "vectors: two real sample-chunk embeddings mixed + N(0, 0.03) noise, normalised;"
            " text: 20 sample words + 40 Zipf-like terms"
        ),
        "hnsw": {
            "m": arguments.m,
            "ef_construction": arguments.ef_construction,
            "ef_search": ef_search,
            "iterative_scan": "relaxed_order",
            "build_seconds": round(index_seconds, 1),
            "used_by_the_hybrid_plan": hnsw_in_plan,
        },
        "shared_buffers": SHARED_BUFFERS,
        "load_seconds": round(load_seconds, 1),
        "latency_ms": latency,
        "ratios": {
            "hybrid_vs_vector_only_p50": round(
                hybrid["median_ms"] / latency["vector_only"]["median_ms"], 2
            ),
            "hybrid_vs_fulltext_only_p50": round(
                hybrid["median_ms"] / latency["fulltext_only"]["median_ms"], 2
            ),
        },
        "recall_at_10_hnsw_vs_exact": {
            f"ef_search={ef}": value for ef, value in recall_by_ef.items()
        },
        "goals": {
            "p50_at_most_10_ms": hybrid["median_ms"] <= 10,
            "recall_at_10_at_least_0.95": recall_by_ef[ef_search] >= 0.95,
        },
        "embedding": throughput,
        "relevance": relevance,
    }
    if alternatives:
        figures["vector_index_alternatives"] = alternatives
    report("knowledge", figures)


if __name__ == "__main__":
    main()
