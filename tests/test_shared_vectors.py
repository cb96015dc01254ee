"""The test processes of one run share the vectors of the demo data instead of each running the
model on the same texts (tests/conftest.py `vectors_shared_by_the_run`)."""

from __future__ import annotations

import numpy as np

from afilo_db.knowledge.embedders import CachedEmbedder, get_embedder
from tests.conftest import vectors_shared_by_the_run


def test_a_process_reuses_the_vectors_another_computed_and_they_are_the_same() -> None:
    model = get_embedder().inner  # loaded once; two caches stand for two test processes
    first, second = CachedEmbedder(model), CachedEmbedder(model)
    text = "A passage only this test embeds, shared between two processes of the run."
    with vectors_shared_by_the_run(first):
        computed = first.embed([text])
    with vectors_shared_by_the_run(second):
        reused = second.embed([text])
    assert (first.computed, second.computed) == (1, 0)
    np.testing.assert_array_equal(reused, computed)
    np.testing.assert_array_equal(reused, model.embed([text]))
