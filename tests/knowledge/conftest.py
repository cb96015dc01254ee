"""A demo database (the sample knowledge base and the demo catalog's passages) shared by a test
module, and an embedder that counts what it embeds."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from afilo_db.db.embedded import EmbeddedServer
from afilo_db.knowledge.embedders import Embedder, Vectors, get_embedder
from tests.conftest import database_copy

__all__ = ["CountingEmbedder"]


class CountingEmbedder:
    """The real model, uncached, counting the texts it is asked to embed."""

    def __init__(self, inner: Embedder | None = None) -> None:
        self.inner = inner or get_embedder().inner
        self.texts: list[str] = []

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.texts.extend(texts)
        return self.inner.embed(texts)


@pytest.fixture(scope="module")
def demo_url(server: EmbeddedServer, demo_template: str) -> Iterator[str]:
    """What `afilo-db up` builds: the demo catalog, the sample knowledge base, the products'
    passages synced; a copy of the module's own."""
    yield from database_copy(server, demo_template, "kb")
