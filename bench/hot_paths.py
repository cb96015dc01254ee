"""The hot reads as applications call them, against the best raw psycopg path.

On a catalog seeded by `afilo_db.data.seed` (100,000 products by default), every client
connecting as `afilo_app` (row-level security on), directly and through PgBouncer (the Debian
package, transaction mode, 10 server connections):

- the product page, in every form an application uses: the engine (`product_by_handle(engine,
  h)`), a Session closed without commit, `unit_of_work`, a psycopg_pool pool, a psycopg connection
  (taken from the raw path's own queue), and on asyncio the AsyncEngine, an AsyncSession closed
  without commit, an AsyncConnectionPool and an AsyncConnection; against raw
  psycopg: one prepared statement on one connection, one round trip (prepared unless behind
  PgBouncer 1.18, which cannot keep prepared statements: there the raw path is unprepared too),
  the document parsed into the same typed dict as afilo-db returns by the fastest parser there
  is for that (msgspec, which afilo-db uses too: faster than json.loads alone), so that the
  ratios measure what afilo-db adds and no parser's speed;
- at concurrency 1 (median and p99 per call) and 32 (32 threads or tasks sharing a pool of 10
  connections; raw psycopg shares 10 connections through a queue): median, p99, throughput;
- a user's cart and downloads read as that user (`user_cart` + `user_downloads`: the context and
  the query in one round trip; through the engine, a psycopg_pool pool and the AsyncEngine)
  against the same read by the owner without row-level security (engine form; also by the
  user's Clerk id, looked up in the statement, as a request knows the user), for users whose
  cart and downloads are all of published products, so that both read the same rows (checked
  before measuring);
- the listing and a collection page, engine and Session forms against raw psycopg.

Variants run interleaved in blocks, in an order that rotates every block, so that drift on a
shared machine hits them alike; the first block is a warm-up and is not counted. Beside wall
time, each variant's client CPU per call (this process) is reported: on a machine whose cores are
busy with other work, wall-clock ratios mostly measure the scheduler.

The benchmark runs on the first cores and the servers (PostgreSQL, PgBouncer) on the last, as an
application and its database on machines of their own: left to the scheduler, whether a client
and the backend it waits on shared a core changed from run to run, and with it the ratios
(`--no-pinning` leaves placement to the scheduler). At concurrency 32 the client's core is then
the limit, so throughput ratios measure what each form costs the application's CPU.

Run: `python -m bench.hot_paths [--products N] [--blocks B] [--direct-only] [--no-listing]
[--no-pinning]`; figures go to bench/results/hot_paths.json.
"""

from __future__ import annotations

import argparse
import asyncio
import queue
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import msgspec
import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from tests.security.pgbouncer import PgBouncer

from afilo_db.config import Settings
from afilo_db.data import seed
from afilo_db.db import hot
from afilo_db.db.embedded import EmbeddedServer
from afilo_db.db.engine import create_app_engine, create_async_app_engine
from afilo_db.db.urls import libpq_url
from afilo_db.security import APP_ROLE, as_user, reads
from afilo_db.security.roles import login_password_sql
from afilo_db.services import cart, catalog, downloads
from afilo_db.services.catalog import (
    COLLECTION_PAGE_LIMIT,
    COLLECTION_SQL,
    PRODUCT_BY_HANDLE_SQL,
)
from afilo_db.services.transaction import unit_of_work
from bench.common import (
    fresh_database,
    keep_apart,
    postmaster_pid,
    report,
    scratch_server,
    summary,
)

POOL_SIZE = 10
CONCURRENCY = 32
CALLS_PER_BLOCK = {1: 150, CONCURRENCY: 640}
# The listing and the collection page read far more rows than the product page: fewer calls.
SLOW_READ_CALLS_PER_BLOCK = 40

# What a raw psycopg application would parse the documents with to get the same typed values.
PRODUCT_PAGE = msgspec.json.Decoder(catalog.ProductPage)
COLLECTION_DOCUMENT = msgspec.json.Decoder(catalog.CollectionDocument)

SyncCall = Callable[[Any], object]
AsyncCall = Callable[[Any], Awaitable[object]]


@dataclass
class Variant:
    name: str
    call: SyncCall | None = None
    acall: AsyncCall | None = None
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    calls: int = 0


@dataclass
class Target:
    name: str
    app_url: str
    owner_url: str
    prepares: bool
    """Whether raw psycopg may prepare here (not behind PgBouncer 1.18)."""


async def _run_block(variant: Variant, keys: list[Any], concurrency: int, counted: bool) -> None:
    chunks = [keys[index::concurrency] for index in range(concurrency)]
    samples: list[float] = []

    def sync_worker(chunk: list[Any]) -> list[float]:
        assert variant.call is not None
        local = []
        for key in chunk:
            started = time.perf_counter()
            variant.call(key)
            local.append(time.perf_counter() - started)
        return local

    async def async_worker(chunk: list[Any]) -> list[float]:
        assert variant.acall is not None
        local = []
        for key in chunk:
            started = time.perf_counter()
            await variant.acall(key)
            local.append(time.perf_counter() - started)
        return local

    started, cpu_started = time.perf_counter(), time.process_time()
    if variant.acall is not None:
        for result in await asyncio.gather(*(async_worker(chunk) for chunk in chunks)):
            samples += result
    elif concurrency == 1:
        samples = sync_worker(keys)
    else:
        with ThreadPoolExecutor(concurrency) as threads:
            for result in threads.map(sync_worker, chunks):
                samples += result
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if counted:
        variant.latencies += samples
        variant.seconds += elapsed
        variant.cpu_seconds += cpu
        variant.calls += len(samples)


async def measure(
    variants: list[Variant],
    keys: list[Any],
    concurrency: int,
    blocks: int,
    per_block: int | None = None,
) -> dict[str, Any]:
    """Every variant, block after block (the first one not counted), in a rotating order."""
    chooser = random.Random(concurrency)
    per_block = per_block or CALLS_PER_BLOCK[concurrency]
    for block in range(blocks + 1):
        picks = chooser.choices(keys, k=per_block)
        shift = block % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            await _run_block(variant, picks, concurrency, counted=block > 0)
    baseline = variants[0]
    figures: dict[str, Any] = {}
    for variant in variants:
        stats: dict[str, Any] = summary(variant.latencies)
        stats["per_second"] = round(variant.calls / variant.seconds)
        stats["median_vs_raw"] = round(
            statistics.median(variant.latencies) / statistics.median(baseline.latencies), 3
        )
        stats["throughput_vs_raw"] = round(
            stats["per_second"] / (baseline.calls / baseline.seconds), 3
        )
        # The client's own CPU per call (this process, every thread): what the form costs the
        # application, less exposed than wall time to a busy machine's scheduling.
        stats["client_cpu_us"] = round(variant.cpu_seconds / variant.calls * 1e6, 1)
        stats["client_cpu_vs_raw"] = round(
            (variant.cpu_seconds / variant.calls) / (baseline.cpu_seconds / baseline.calls), 3
        )
        figures[variant.name] = stats
    return figures


class RawPool:
    """The least a raw psycopg application needs to share connections: a LIFO queue."""

    def __init__(self, target: Target, size: int) -> None:
        self.free: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
        for _ in range(size):
            self.free.put(_raw_connection(target))

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        connection = self.free.get()
        try:
            yield connection
        finally:
            self.free.put(connection)

    def close(self) -> None:
        while not self.free.empty():
            self.free.get().close()


class AsyncRawPool:
    def __init__(self) -> None:
        self.free: asyncio.LifoQueue[psycopg.AsyncConnection[Any]] = asyncio.LifoQueue()

    async def open(self, target: Target, size: int) -> AsyncRawPool:
        for _ in range(size):
            await self.free.put(
                await psycopg.AsyncConnection.connect(
                    libpq_url(target.app_url), autocommit=True, prepare_threshold=_threshold(target)
                )
            )
        return self

    async def close(self) -> None:
        while not self.free.empty():
            await (await self.free.get()).close()


def _threshold(target: Target) -> int | None:
    """Behind PgBouncer 1.18 nothing may be prepared: psycopg's own switch for it (None), which
    an application behind such a pooler sets on every connection, as afilo-db's engine does."""
    return 5 if target.prepares else None


def _raw_connection(target: Target) -> psycopg.Connection[Any]:
    return psycopg.connect(
        libpq_url(target.app_url), autocommit=True, prepare_threshold=_threshold(target)
    )


def _pool_arguments(target: Target) -> dict[str, Any]:
    return {
        "min_size": POOL_SIZE,
        "max_size": POOL_SIZE,
        "kwargs": {"prepare_threshold": _threshold(target)},
    }


def _psycopg_pool(target: Target) -> ConnectionPool[psycopg.Connection[Any]]:
    pool = ConnectionPool(libpq_url(target.app_url), **_pool_arguments(target))
    pool.wait()
    return pool


async def _async_psycopg_pool(target: Target) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
    pool = AsyncConnectionPool(libpq_url(target.app_url), open=False, **_pool_arguments(target))
    await pool.open(wait=True)
    return pool


def _settings() -> Settings:
    return Settings(db_pool_size=POOL_SIZE, db_max_overflow=0, db_pool_timeout_seconds=120)


async def product_page(target: Target, handles: list[str], blocks: int) -> dict[str, Any]:
    engine = create_app_engine(target.app_url, _settings())
    async_engine = create_async_app_engine(target.app_url, _settings())
    raw_pool = RawPool(target, POOL_SIZE)
    async_pool = await AsyncRawPool().open(target, POOL_SIZE)
    prepare = target.prepares
    psycopg_pool = _psycopg_pool(target)
    async_psycopg_pool = await _async_psycopg_pool(target)

    def raw(handle: str) -> object:
        with raw_pool.connection() as connection:
            row = connection.execute(PRODUCT_BY_HANDLE_SQL, (handle,), prepare=prepare).fetchone()
        return None if row is None else PRODUCT_PAGE.decode(row[0])

    async def raw_async(handle: str) -> object:
        connection = await async_pool.free.get()
        try:
            cursor = await connection.execute(PRODUCT_BY_HANDLE_SQL, (handle,), prepare=prepare)
            row = await cursor.fetchone()
        finally:
            async_pool.free.put_nowait(connection)
        return None if row is None else PRODUCT_PAGE.decode(row[0])

    def in_session(handle: str) -> object:
        with Session(engine) as session:
            return catalog.product_by_handle(session, handle)

    def in_unit_of_work(handle: str) -> object:
        with unit_of_work(engine) as session:
            return catalog.product_by_handle(session, handle)

    async def in_async_session(handle: str) -> object:
        async with AsyncSession(async_engine) as session:
            return await catalog.product_by_handle_async(session, handle)

    def on_a_connection(handle: str) -> object:
        with raw_pool.connection() as connection:
            return catalog.product_by_handle(connection, handle)

    async def on_an_async_connection(handle: str) -> object:
        connection = await async_pool.free.get()
        try:
            return await catalog.product_by_handle_async(connection, handle)
        finally:
            async_pool.free.put_nowait(connection)

    async def async_engine_form(handle: str) -> object:
        return await catalog.product_by_handle_async(async_engine, handle)

    def forms() -> list[Variant]:
        return [
            Variant("raw psycopg", call=raw),
            Variant("engine", call=lambda handle: catalog.product_by_handle(engine, handle)),
            Variant("Session, closed without commit", call=in_session),
            Variant("unit_of_work", call=in_unit_of_work),
            Variant(
                "psycopg_pool",
                call=lambda handle: catalog.product_by_handle(psycopg_pool, handle),
            ),
            Variant("psycopg connection (the raw path's)", call=on_a_connection),
            Variant("raw psycopg, async", acall=raw_async),
            Variant("AsyncEngine", acall=async_engine_form),
            Variant("AsyncSession, closed without commit", acall=in_async_session),
            Variant(
                "AsyncConnectionPool",
                acall=lambda handle: catalog.product_by_handle_async(async_psycopg_pool, handle),
            ),
            Variant("AsyncConnection (the raw path's)", acall=on_an_async_connection),
        ]

    try:
        # Each side's ratio is against the raw baseline of its own kind (sync or async).
        return {
            f"concurrency {concurrency}": {
                **await measure(forms()[:6], handles, concurrency, blocks),
                **await measure(forms()[6:], handles, concurrency, blocks),
            }
            for concurrency in (1, CONCURRENCY)
        }
    finally:
        raw_pool.close()
        await async_pool.close()
        psycopg_pool.close()
        await async_psycopg_pool.close()
        engine.dispose()
        await async_engine.dispose()


async def user_reads(target: Target, users: list[tuple[Any, str]], blocks: int) -> dict[str, Any]:
    """A user's cart and downloads as that user (RLS, the context sent with the query) against
    the same reads by the owner without RLS; both through the engine form."""
    app = create_app_engine(target.app_url, _settings())
    owner = create_app_engine(target.owner_url, _settings())
    async_app = create_async_app_engine(target.app_url, _settings())

    def without_rls(user: tuple[Any, str]) -> object:
        return cart.cart_contents(owner, user[0]), downloads.downloads(owner, user[0])

    # The same reads by the user's Clerk id, what a request knows, looked up in the statement:
    # how much of the difference is finding the user rather than row-level security.
    user_by_clerk_id = "(SELECT id FROM user_profiles WHERE clerk_user_id = %(clerk)s)"
    cart_by_clerk_id = reads.CART_ROWS.filtered_by(reads.CART_TEMPLATE, user_by_clerk_id)
    downloads_by_clerk_id = reads.DOWNLOADS_ROWS.filtered_by(
        reads.DOWNLOADS_TEMPLATE, user_by_clerk_id
    )

    def without_rls_by_clerk_id(user: tuple[Any, str]) -> object:
        return (
            cart.Cart(
                [
                    cart.CartLine(*row)
                    for row in hot.fetch(owner, hot.Read(cart_by_clerk_id, {"clerk": user[1]}))
                ]
            ),
            [
                downloads.DownloadRecord(*row)
                for row in hot.fetch(
                    owner, hot.Read(downloads_by_clerk_id, {"clerk": user[1], "limit": 50})
                )
            ],
        )

    def with_rls(user: tuple[Any, str]) -> object:
        return cart.user_cart(app, user[1]), downloads.user_downloads(app, user[1])

    async def with_rls_async(user: tuple[Any, str]) -> object:
        return (
            await cart.user_cart_async(async_app, user[1]),
            await downloads.user_downloads_async(async_app, user[1]),
        )

    pool = _psycopg_pool(target)

    def with_rls_on_psycopg_pool(user: tuple[Any, str]) -> object:
        return cart.user_cart(pool, user[1]), downloads.user_downloads(pool, user[1])

    def session_with_as_user(user: tuple[Any, str]) -> object:
        with Session(app) as session:  # the classic way: as_user, then the reads, no commit
            as_user(session, user[1])
            return cart.cart_contents(session, user[0]), downloads.downloads(session, user[0])

    try:
        for user in users:
            assert with_rls(user) == without_rls(user), f"not the same read for {user[1]}"
            assert without_rls_by_clerk_id(user) == without_rls(user), user[1]
        # Behind PgBouncer 1.18 that statement, no function's, would be planned on every call.
        by_clerk_id_variant = [Variant("owner, no RLS, by Clerk id", call=without_rls_by_clerk_id)]
        variants = [
            Variant("owner, no RLS", call=without_rls),
            *(by_clerk_id_variant if target.prepares else []),
            Variant("afilo_app, user_cart + user_downloads", call=with_rls),
            Variant("afilo_app, on a psycopg_pool", call=with_rls_on_psycopg_pool),
            Variant("afilo_app, async", acall=with_rls_async),
            Variant("afilo_app, Session + as_user, no commit", call=session_with_as_user),
        ]
        return await measure(variants, users, 1, blocks)
    finally:
        pool.close()
        app.dispose()
        owner.dispose()
        await async_app.dispose()


async def listing_and_collection(
    target: Target, tags: list[str], collections: list[str], blocks: int
) -> dict[str, Any]:
    engine = create_app_engine(target.app_url, _settings())
    raw_connection = _raw_connection(target)
    prepare = target.prepares

    def raw_listing(tag: str) -> object:
        sql, values = catalog.listing_statement({"tags": [tag]}, 24, None)
        return raw_connection.execute(sql, values, prepare=prepare).fetchall()

    def raw_collection(handle: str) -> object:
        first_page = {"handle": handle, "after": -1, "limit": COLLECTION_PAGE_LIMIT + 1}
        row = raw_connection.execute(COLLECTION_SQL, first_page, prepare=prepare).fetchone()
        return None if row is None else COLLECTION_DOCUMENT.decode(row[0])

    def session_listing(tag: str) -> object:
        with Session(engine) as session:
            return catalog.list_products(session, {"tags": [tag]})

    def session_collection(handle: str) -> object:
        with Session(engine) as session:
            return catalog.collection_by_handle(session, handle)

    try:
        return {
            "listing (24 by tag)": await measure(
                [
                    Variant("raw psycopg", call=raw_listing),
                    Variant(
                        "engine", call=lambda tag: catalog.list_products(engine, {"tags": [tag]})
                    ),
                    Variant("Session, closed without commit", call=session_listing),
                ],
                tags,
                1,
                blocks,
                SLOW_READ_CALLS_PER_BLOCK,
            ),
            "collection page": await measure(
                [
                    Variant("raw psycopg", call=raw_collection),
                    Variant("engine", call=lambda h: catalog.collection_by_handle(engine, h)),
                    Variant("Session, closed without commit", call=session_collection),
                ],
                collections,
                1,
                blocks,
                SLOW_READ_CALLS_PER_BLOCK,
            ),
        }
    finally:
        raw_connection.close()
        engine.dispose()


def _print_table(title: str, figures: dict[str, Any]) -> None:
    print(f"\n{title}")
    print(
        f"{'':44}{'median':>9}{'p99':>9}{'x raw':>8}{'calls/s':>9}{'x raw':>8}"
        f"{'cpu/call':>10}{'x raw':>8}"
    )
    for name, stats in figures.items():
        print(
            f"{name:44}{stats['median_ms']:>7.3f}ms{stats['p99_ms']:>7.3f}ms"
            f"{stats['median_vs_raw']:>7.2f}x{stats['per_second']:>9}{stats['throughput_vs_raw']:>7.2f}x"
            f"{stats['client_cpu_us']:>8.0f}us{stats['client_cpu_vs_raw']:>7.2f}x"
        )


def _goals(pages: dict[str, Any], users: dict[str, Any]) -> dict[str, Any]:
    one, many = pages["concurrency 1"], pages[f"concurrency {CONCURRENCY}"]
    sync_forms = ("engine", "Session, closed without commit", "unit_of_work", "psycopg_pool",
                  "psycopg connection (the raw path's)")  # fmt: skip
    async_forms = ("AsyncEngine", "AsyncSession, closed without commit", "AsyncConnectionPool",
                   "AsyncConnection (the raw path's)")  # fmt: skip
    fastest_sync = min(one[form]["median_vs_raw"] for form in sync_forms)
    fastest_async = min(one[form]["median_vs_raw"] for form in async_forms)
    rls = users["afilo_app, user_cart + user_downloads"]["median_vs_raw"]
    checks = {
        "fastest sync form <= 1.1x raw (c=1 median)": fastest_sync,
        "fastest async form <= 1.1x raw async (c=1 median)": fastest_async,
        "Session closed without commit <= 1.5x": one["Session, closed without commit"]["median_vs_raw"],
        "unit_of_work <= 1.5x": one["unit_of_work"]["median_vs_raw"],
        f"engine throughput at {CONCURRENCY} >= 0.8x raw": many["engine"]["throughput_vs_raw"],
        f"AsyncEngine throughput at {CONCURRENCY} >= 0.8x raw async": many["AsyncEngine"]["throughput_vs_raw"],
        "as_user read <= 1.15x the same read without RLS": rls,
    }  # fmt: skip
    limits = [1.1, 1.1, 1.5, 1.5, 0.8, 0.8, 1.15]
    return {
        name: {"value": value, "met": value >= limit if "throughput" in name else value <= limit}
        for (name, value), limit in zip(checks.items(), limits, strict=True)
    }


def _prepare_database(server: EmbeddedServer, products: int) -> tuple[str, dict[str, Any]]:
    owner_url = fresh_database(server, "bench_hot_paths")
    started = time.perf_counter()
    with psycopg.connect(owner_url) as connection:
        seed.seed(connection, products=products)
        connection.execute(login_password_sql(connection, server.role_password(APP_ROLE)))
        connection.commit()
        connection.autocommit = True
        connection.execute("ANALYZE")
        # Only users whose cart and downloads are all of published products: the application
        # and the owner then read the same rows, and the comparison is of the same reads.
        users = connection.execute(
            "SELECT u.id, u.clerk_user_id FROM user_profiles u"
            " WHERE EXISTS (SELECT FROM cart_items c WHERE c.user_id = u.id)"
            " AND EXISTS (SELECT FROM downloads d WHERE d.user_id = u.id)"
            " AND NOT EXISTS (SELECT FROM cart_items c JOIN product_variants v"
            "   ON v.id = c.variant_id WHERE c.user_id = u.id AND v.product_status <> 'active')"
            " AND NOT EXISTS (SELECT FROM downloads d JOIN products p ON p.id = d.product_id"
            "   WHERE d.user_id = u.id AND p.status <> 'active')"
            " LIMIT 1000"
        ).fetchall()
        tags = [row[0] for row in connection.execute(
            "SELECT tag FROM products, unnest(tags) tag GROUP BY tag ORDER BY count(*) DESC LIMIT 20"
        )]  # fmt: skip
        collections = [
            row[0] for row in connection.execute("SELECT handle FROM product_collections")
        ]
    data = {"users": users, "tags": tags, "collections": collections}
    print(f"seeded {products:,} products in {time.perf_counter() - started:.0f}s; "
          f"{len(users)} users with a cart and downloads", flush=True)  # fmt: skip
    return owner_url, data


async def run(
    server: EmbeddedServer,
    products: int,
    blocks: int,
    direct_only: bool,
    listing: bool,
    pinned: bool,
) -> dict[str, Any]:
    owner_url, data = _prepare_database(server, products)
    app_url = server.role_url(APP_ROLE, "bench_hot_paths")
    chooser = random.Random(16)
    handles = [
        seed.product_plan(seed.DEMO_SEED, index).row[1]
        for index in chooser.sample(range(products), min(products, 2000))
    ]
    figures: dict[str, Any] = {"products": products, "blocks": blocks, "pool_size": POOL_SIZE}
    passwords = {APP_ROLE: server.role_password(APP_ROLE), "postgres": server.password}
    # Every form holds a pool of its own (sync and asyncio, SQLAlchemy and psycopg): 60 clients and more.
    with PgBouncer(server.port, passwords, pool_size=POOL_SIZE, max_client_conn=200) as bouncer:
        if pinned:
            figures["cores"] = keep_apart([postmaster_pid(server), bouncer.pid])
            print(f"cores: {figures['cores']}", flush=True)

        def pooled(user: str) -> str:
            return (
                bouncer.url(user, quote(passwords[user], safe=""), "bench_hot_paths")
                + "?pgbouncer=true"
            )

        targets = [
            Target("direct", app_url, owner_url, prepares=True),
            Target("PgBouncer 1.18, transaction mode", pooled(APP_ROLE), pooled("postgres"), prepares=False),
        ]  # fmt: skip
        for target in targets[:1] if direct_only else targets:
            print(f"\n== {target.name}", flush=True)
            pages = await product_page(target, handles, blocks)
            for title, table in pages.items():
                _print_table(f"product page, {title} ({target.name})", table)
            users = await user_reads(target, data["users"], blocks)
            _print_table(f"cart + downloads of one user, concurrency 1 ({target.name})", users)
            others = (
                await listing_and_collection(target, data["tags"], data["collections"], blocks)
                if listing
                else {}
            )
            for title, table in others.items():
                _print_table(f"{title}, concurrency 1 ({target.name})", table)
            goals = _goals(pages, users)
            print(f"\ngoals ({target.name}):")
            for name, verdict in goals.items():
                print(f"  {'met   ' if verdict['met'] else 'MISSED'} {name}: {verdict['value']}")
            figures[target.name] = {
                "product_page": pages,
                "user_reads": users,
                **others,
                "goals": goals,
            }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--direct-only", action="store_true", help="leave out PgBouncer")
    parser.add_argument(
        "--no-listing", action="store_true", help="leave out the listing and collection pages"
    )
    parser.add_argument(
        "--no-pinning",
        action="store_true",
        help="let the scheduler place the client and the servers (by default: on cores apart)",
    )
    arguments = parser.parse_args()
    with scratch_server("hot-paths") as server:
        figures = asyncio.run(
            run(
                server,
                arguments.products,
                arguments.blocks,
                arguments.direct_only,
                not arguments.no_listing,
                not arguments.no_pinning,
            )
        )
    report("hot_paths", figures)


if __name__ == "__main__":
    main()
