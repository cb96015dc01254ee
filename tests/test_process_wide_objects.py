"""Every object src/ keeps at module level for the whole process, used by many threads at once
(a threaded web server, the studio): each gives every thread the same answer, and the ones the
process must hold only one of (an engine, a model, a token verifier) are made once.

The module-level caches, and what keeps each safe:
- config.get_settings, services.catalog._listing_sql, validation.checks._compiled,
  security.context.user_read_sql, migrate.review.access._user_lookup_spellings,
  db.hot.shapes._encoded, studio.dashboard._chart, services.knowledge.search_statement:
  functools caches of values (a race computes one twice, and both are equal);
- db.engine.get_engine and get_async_engine, knowledge.embedders.get_embedder,
  security.identity._verifier: made once (`afilo_db.once.once_per_arguments`);
- knowledge.embedders._warn_uncalibrated: a warning logged once per model, whichever threads
  search at once (`once_per_arguments`);
- services.knowledge.spelling_variants: the British and American spellings, read and filtered
  once (`once_per_arguments`: the work is long enough for threads to race);
- knowledge.embedders.CachedEmbedder's vectors: under a lock;
- db.hot.relay's relays (one per engine): made under a lock, their state under their own;
- db.engine.PER_TRANSACTION_TIMEOUT_MS: written once, when its engine is made.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from afilo_db.config import Settings, get_settings
from afilo_db.db import engine as engine_module
from afilo_db.db.hot import relay, shapes
from afilo_db.knowledge import embedders
from afilo_db.knowledge.embedders import CachedEmbedder, Vectors
from afilo_db.migrate.review import access
from afilo_db.once import once_per_arguments
from afilo_db.rules import EMBEDDING_DIMENSIONS
from afilo_db.security import context, identity, reads
from afilo_db.services import catalog, knowledge
from afilo_db.validation import checks

THREADS = 8


def at_once(call: Callable[[int], Any], calls: int = THREADS) -> list[Any]:
    """`call(i)` for each i, the first THREADS of them started together."""
    start = threading.Barrier(THREADS)

    def together(number: int) -> Any:
        if number < THREADS:
            start.wait(timeout=10)
        return call(number)

    with ThreadPoolExecutor(THREADS) as threads:
        return list(threads.map(together, range(calls)))


class NumberedEmbedder:
    """A vector that says which text it is: the text's number in every dimension."""

    model_name = "numbered"

    def embed(self, texts: Sequence[str]) -> Vectors:
        time.sleep(0)  # let another thread in, as a model's call does
        return np.array(
            [np.full(EMBEDDING_DIMENSIONS, float(text)) for text in texts], dtype=np.float32
        )


def test_a_cached_embedder_shared_by_threads_gives_each_its_own_vectors() -> None:
    cached = CachedEmbedder(NumberedEmbedder(), capacity=4)  # cleared every few calls

    def embed_batches(number: int) -> list[str]:
        wrong = []
        for round_ in range(300):
            texts = [str((number * 7 + round_ + offset) % 23) for offset in range(3)]
            vectors = cached.embed(texts)
            if [str(int(vector[0])) for vector in vectors] != texts:
                wrong.append(f"{texts} -> {vectors[:, 0]}")
        return wrong

    assert at_once(embed_batches) == [[]] * THREADS


@dataclass
class Counted:
    made: int = 0

    def slowly(self, value: Any) -> Any:
        self.made += 1
        time.sleep(0.05)  # long enough for every thread to ask before the first has it
        return value


def test_a_model_loads_once_when_threads_ask_for_it_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counted = Counted()
    monkeypatch.setitem(
        embedders._FACTORIES, "numbered", lambda: counted.slowly(NumberedEmbedder())
    )
    embedders.get_embedder.cache_clear()
    try:
        made = at_once(lambda _: embedders.get_embedder("numbered"))
    finally:
        embedders.get_embedder.cache_clear()
    assert counted.made == 1
    assert all(embedder is made[0] for embedder in made)


# Engines connect on first use only: none of these tests needs a server.
UNUSED_URL = "postgresql://nobody@localhost:1/nothing"


@pytest.mark.parametrize("make", ["get_engine", "get_async_engine"])
def test_one_engine_when_threads_ask_for_it_at_once(
    monkeypatch: pytest.MonkeyPatch, make: str
) -> None:
    @dataclass
    class Target:
        app_url: str = UNUSED_URL
        app_url_is_pooled: bool = False

    counted = Counted()
    monkeypatch.setattr(engine_module, "resolve_target", lambda: counted.slowly(Target()))
    engine_module.dispose_engine()
    try:
        made = at_once(lambda _: getattr(engine_module, make)())
    finally:
        engine_module.dispose_engine()
    assert counted.made == 1
    assert all(engine is made[0] for engine in made)


def test_one_token_verifier_per_settings_when_threads_ask_at_once() -> None:
    settings = Settings(clerk_jwks_url="https://clerk.example.com/.well-known/jwks.json")
    identity._verifier.cache_clear()
    try:
        made = at_once(lambda _: identity.verifier_from_settings(settings))
    finally:
        identity._verifier.cache_clear()
    assert all(verifier is made[0] for verifier in made)


def test_one_relay_per_engine_when_threads_ask_at_once() -> None:
    engine = engine_module.create_app_engine(UNUSED_URL)
    try:
        made = at_once(lambda _: relay.thread_relay(engine))
    finally:
        engine.dispose()
    assert all(one is made[0] for one in made)


VALUE_CACHES: dict[str, tuple[Callable[..., Any], Callable[[int], tuple[Any, ...]]]] = {
    "config.get_settings": (get_settings, lambda _: ()),
    "services.catalog._listing_sql": (
        catalog._listing_sql,
        lambda number: (frozenset(list(catalog._LISTING_CONDITIONS)[: number % 3]),),
    ),
    "validation.checks._compiled": (checks._compiled, lambda number: (f"[a-z]{{{number % 5}}}",)),
    "security.context.user_read_sql": (
        context.user_read_sql,
        lambda number: (
            (reads.CART_TEMPLATE, reads.DOWNLOADS_TEMPLATE)[number % 2],
            reads.CART_ROWS,
        ),
    ),
    "migrate.review.access._user_lookup_spellings": (
        access._user_lookup_spellings,
        lambda _: (),
    ),
    "db.hot.shapes._encoded": (shapes._encoded, lambda number: (f"login_{number % 3}",)),
    "services.knowledge.search_statement": (
        knowledge.search_statement,
        lambda number: (40 * (number % 2), 40, 1 + number % 5),
    ),
}


@pytest.mark.parametrize("name", list(VALUE_CACHES))
def test_a_cache_of_values_gives_every_thread_the_same_value(name: str) -> None:
    function, arguments = VALUE_CACHES[name]
    function.cache_clear()  # type: ignore[attr-defined]
    concurrent = at_once(lambda number: function(*arguments(number)), calls=THREADS * 4)
    function.cache_clear()  # type: ignore[attr-defined]
    alone = [function(*arguments(number)) for number in range(THREADS * 4)]
    assert concurrent == alone


def test_the_spelling_variants_are_made_once_when_threads_search_at_once() -> None:
    knowledge.spelling_variants.cache_clear()
    made = at_once(lambda _: knowledge.spelling_variants())
    assert all(variants is made[0] for variants in made)
    assert made[0]["colour"] == {"color"}


def test_an_uncalibrated_model_is_warned_about_once_when_threads_search_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Uncalibrated(NumberedEmbedder):
        model_name = "uncalibrated-at-once"

    with caplog.at_level(logging.WARNING):
        found = at_once(lambda _: embedders.relevance_of(Uncalibrated()))
    assert found == [embedders.MINILM_RELEVANCE] * THREADS
    assert sum("uncalibrated-at-once" in record.getMessage() for record in caplog.records) == 1


def test_making_one_object_may_ask_for_another() -> None:
    """An embedder that wraps the default one asks for it while being made (no deadlock)."""

    @once_per_arguments
    def made(name: str) -> str:
        return name if name == "inner" else f"{name} around {made('inner')}"

    assert at_once(lambda _: made("outer")) == ["outer around inner"] * THREADS
