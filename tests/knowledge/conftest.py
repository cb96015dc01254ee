"""A demo database (the sample knowledge base and the demo catalog's passages) shared by a test
module, and an embedder that counts what it embeds."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence

import psycopg
import pytest

from afilo_db.data import seed
from afilo_db.db.embedded import EmbeddedServer
from afilo_db.knowledge.catalog import drain_queue
from afilo_db.knowledge.embedders import Embedder, Vectors, get_embedder
from tests.conftest import create_database, drop_database

__all__ = ["CountingEmbedder"]

_numbers = itertools.count()


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
def demo_url(server: EmbeddedServer, template_database: str) -> Iterator[str]:
    """What `afilo-db up` builds: the demo catalog, the sample knowledge base, the products'
    passages synced."""
    name = f"kb_{os.getpid()}_{next(_numbers)}"
    url = create_database(server, name, template=template_database)
    with psycopg.connect(url) as connection:
        seed.seed(connection, products=seed.DEMO_PRODUCTS)
        drain_queue(connection, embedder=get_embedder())
    yield url
    drop_database(server, name)
