"""One embedded server per test run, one migrated template database, a fresh clone per test.

Tests never touch the user's own AFILO_HOME or DATABASE_URL: the run gets a scratch home.

AFILO_TEST_DATABASE_URL (a superuser's URL) runs the suite against that server instead (another
PostgreSQL version, a hosted one): the tests marked `embedded_only`, which need the embedded
server's own files or processes, are skipped with their reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import psycopg
import pytest
from sqlalchemy import Engine

from afilo_db.config import get_settings
from afilo_db.data import seed
from afilo_db.db import databases
from afilo_db.db.embedded import EmbeddedServer
from afilo_db.db.engine import create_app_engine
from afilo_db.knowledge.catalog import drain_queue
from afilo_db.knowledge.embedders import CachedEmbedder, get_embedder
from afilo_db.migrate.revisions import deploy
from afilo_db.security.roles import APP_ROLE, SERVICE_ROLE, login_password_sql
from tests.external_server import EXTERNAL_SERVER_VARIABLE, ExternalServer

# One per test process: the xdist workers share an external server (AFILO_TEST_DATABASE_URL).
TEMPLATE_DATABASE = f"afilo_template_{os.getpid()}"
# The folders and files (under tests/) that take longest (servers of their own, subprocesses, a
# browser, a large catalog), heaviest first, by the per-file times of a profiled `make test`.
# xdist hands whole files to workers in collection order (--dist loadfile), so a long file
# collected last would run alone at the end of `make test` while the other workers idle.
LONG_RUNNING_FIRST = (
    "cli",
    "faults",
    "studio",
    "backups",
    "data",
    "services/test_product_query.py",
    "migrate",
    "db/test_versions.py",
    "db/test_migrations.py",
    "billing/test_stripe_rules.py",
    "validation/test_text_and_sellable.py",
    "migrations/test_frozen_history.py",
    "validation/test_properties.py",
    "knowledge/test_search.py",
)
TESTS_FOLDER = Path(__file__).parent
# A folder of the run's (made by its first process, xdist's controller or the only one; its workers
# inherit the variable): the vectors of the demo data, which every test process seeds, are
# computed by the first to need them and read by the others (`vectors_shared_by_the_run`).
SHARED_VECTORS_VARIABLE = "AFILO_TEST_SHARED_VECTORS"
# Durability is worth nothing for throw-away test data; speed is.
# A password verifier's iterations are the work every connection's client does to log in: the
# suite opens thousands of connections, and a throwaway server's passwords guard nothing.
TEST_SERVER_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "scram_iterations": "1",
}
_database_numbers = itertools.count()
# Each test process's open maintenance connection to each server it clones and drops databases on
# (`maintenance_of`), by the server's URL.
_maintenance_connections: dict[str, psycopg.Connection[Any]] = {}


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller made the folder
        return
    folder = tempfile.mkdtemp(prefix="afilo-test-vectors-")
    os.environ[SHARED_VECTORS_VARIABLE] = folder
    config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


@contextlib.contextmanager
def vectors_shared_by_the_run(embedder: CachedEmbedder) -> Iterator[None]:
    """One test process at a time: `embedder` starts with the vectors the run's other processes
    computed (the model's output depends on the text alone, so a vector is the same whoever
    computed it) and leaves them the ones it computed in the meantime."""
    folder = Path(os.environ[SHARED_VECTORS_VARIABLE])
    stored = folder / "vectors.npz"
    with (folder / "vectors.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stored.exists():
            with np.load(stored) as saved:
                keys = saved["keys"].tolist()
                embedder.remember(dict(zip(keys, saved["vectors"], strict=True)))
        yield
        known = embedder.known_vectors()
        if known:
            partial = folder / "vectors.partial.npz"
            np.savez(
                partial,
                keys=np.array(list(known), dtype="S32"),
                vectors=np.stack(list(known.values())),
            )
            partial.replace(stored)


@pytest.fixture(scope="session", autouse=True)
def isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("afilo-home")
    saved = {key: os.environ.get(key) for key in ("AFILO_HOME", "DATABASE_URL", "DIRECT_URL")}
    os.environ["AFILO_HOME"] = str(home)
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("DIRECT_URL", None)
    get_settings.cache_clear()
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def server(isolated_environment: Path) -> Iterator[EmbeddedServer]:
    external = os.environ.get(EXTERNAL_SERVER_VARIABLE)
    if external:
        shared = ExternalServer(external, isolated_environment / "server")
        yield shared
        close_maintenance(shared)
        return
    embedded = EmbeddedServer(isolated_environment / "server")
    embedded.start(settings=TEST_SERVER_SETTINGS)
    with psycopg.connect(embedded.url("postgres"), autocommit=True) as connection:
        # initdb hashed the superuser's password before the setting applied: hash it again.
        user, password = connection.info.user, connection.info.password
        connection.execute(login_password_sql(connection, password, role=user))
    yield embedded
    close_maintenance(embedded)
    embedded.destroy()


def maintenance_of(server: EmbeddedServer) -> psycopg.Connection[Any]:
    """This process's maintenance connection to `server`, opened once and kept: every test
    creates and drops a database, and a connection for each statement is a password exchange on
    the client and a new server process each time (docs/benchmarks.md, "The test suite")."""
    url = server.url("postgres")
    connection = _maintenance_connections.get(url)
    if connection is None or connection.closed:
        connection = databases.maintenance_connection(url)
        _maintenance_connections[url] = connection
    return connection


def close_maintenance(server: EmbeddedServer) -> None:
    connection = _maintenance_connections.pop(server.url("postgres"), None)
    if connection is not None:
        connection.close()


def create_database(server: EmbeddedServer, name: str, template: str | None = None) -> str:
    return databases.create_database(
        server.url("postgres"), name, template=template, maintenance=maintenance_of(server)
    )


def drop_database(server: EmbeddedServer, name: str) -> None:
    databases.drop_database(server.url("postgres"), name, maintenance=maintenance_of(server))


@pytest.fixture(scope="session")
def template_database(server: EmbeddedServer) -> Iterator[str]:
    drop_database(server, TEMPLATE_DATABASE)
    url = create_database(server, TEMPLATE_DATABASE)
    with psycopg.connect(server.url("postgres"), autocommit=True) as lock:
        # The migration creates the login roles, which belong to the whole cluster: processes
        # sharing an external server would race to create them.
        lock.execute("SELECT pg_advisory_lock(hashtext('afilo test template'))")
        deploy(url)
    yield TEMPLATE_DATABASE
    drop_database(server, TEMPLATE_DATABASE)


@pytest.fixture(scope="session")
def seeded_template(server: EmbeddedServer, template_database: str) -> Iterator[str]:
    """The demo data (`afilo-db up`'s seed) written once per test process, as a template: the
    seed embeds the sample knowledge base with the real model, too slow to repeat per module."""
    yield from template_of_the_process(
        server,
        f"afilo_seeded_{os.getpid()}",
        template_database,
        lambda connection: seed.seed(connection, products=seed.DEMO_PRODUCTS),
    )


@pytest.fixture(scope="session")
def demo_template(server: EmbeddedServer, seeded_template: str) -> Iterator[str]:
    """What `afilo-db up` builds (the seed, then the products' passages embedded and synced),
    once per test process, as a template."""
    yield from template_of_the_process(
        server,
        f"afilo_demo_{os.getpid()}",
        seeded_template,
        lambda connection: drain_queue(connection, embedder=get_embedder()),
    )


def template_of_the_process(
    server: EmbeddedServer,
    name: str,
    template: str,
    fill: Callable[[psycopg.Connection[Any]], object],
) -> Iterator[str]:
    """Database `name`, copied from `template` and filled by `fill` (with the run's shared
    vectors) once per test process, for its tests to copy; dropped when the process is done."""
    drop_database(server, name)
    url = create_database(server, name, template=template)
    with vectors_shared_by_the_run(get_embedder()), psycopg.connect(url) as connection:
        fill(connection)
    yield name
    drop_database(server, name)


def database_copy(server: EmbeddedServer, template: str, prefix: str) -> Iterator[str]:
    """A database of the caller's own, copied from `template`, dropped when the caller is done."""
    name = f"{prefix}_{os.getpid()}_{next(_database_numbers)}"
    url = create_database(server, name, template=template)
    yield url
    drop_database(server, name)


@pytest.fixture
def database_url(server: EmbeddedServer, template_database: str) -> Iterator[str]:
    """A migrated, empty database of this test's own."""
    yield from database_copy(server, template_database, "test")


@pytest.fixture
def demo_seeded_url(server: EmbeddedServer, seeded_template: str) -> Iterator[str]:
    """The demo data (`afilo-db up`'s seed) in a database of this test's own."""
    yield from database_copy(server, seeded_template, "seeded")


@pytest.fixture
def empty_database_url(server: EmbeddedServer) -> Iterator[str]:
    """A database with nothing in it, not even the migrations."""
    name = f"empty_{os.getpid()}_{next(_database_numbers)}"
    url = create_database(server, name)
    yield url
    drop_database(server, name)


@pytest.fixture
def connection(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(database_url) as connection:
        yield connection


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """The application's engine (as afilo_db.db.engine builds it) on this test's database."""
    app_engine = create_app_engine(database_url)
    yield app_engine
    app_engine.dispose()


def _login_password(server: EmbeddedServer, role: str) -> str:
    password = server.role_password(role)
    with psycopg.connect(server.url("postgres"), autocommit=True) as connection:
        connection.execute(login_password_sql(connection, password, role))
    return password


@pytest.fixture(scope="session")
def app_password(server: EmbeddedServer, template_database: str) -> str:
    """The application role's password on the test server (the template migration made the role)."""
    return _login_password(server, APP_ROLE)


@pytest.fixture(scope="session")
def service_password(server: EmbeddedServer, template_database: str) -> str:
    """The service role's password on the test server: its own login (SERVICE_DATABASE_URL)."""
    return _login_password(server, SERVICE_ROLE)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get(EXTERNAL_SERVER_VARIABLE):
        for item in items:
            marker = item.get_closest_marker("embedded_only")
            if marker is not None:
                reason = marker.args[0] if marker.args else "needs the embedded server"
                item.add_marker(pytest.mark.skip(reason=f"{EXTERNAL_SERVER_VARIABLE}: {reason}"))

    items.sort(key=lambda item: long_running_rank(item.path))  # stable: files keep their order


def long_running_rank(path: Path) -> int:
    """Where the file at `path` comes in LONG_RUNNING_FIRST; after all of them if it is not there."""
    where = path.relative_to(TESTS_FOLDER).as_posix()
    return next(
        (
            rank
            for rank, heavy in enumerate(LONG_RUNNING_FIRST)
            if where == heavy or where.startswith(f"{heavy}/")
        ),
        len(LONG_RUNNING_FIRST),
    )


T = TypeVar("T")


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coroutine)` in a thread of its own: a test that ran before in this process
    may have left an event loop running in the main thread (Playwright's sync API, whose
    session-wide browser the studio's tests share), where asyncio.run refuses to start."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
