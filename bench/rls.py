"""What row-level security costs: one user's cart and downloads, listed by the application role
under RLS and by the owner without it, on 100,000 users and 1,000,000 cart items.

Both sides run the same prepared statements in the same run, interleaved, on a scratch embedded
server. Two figures: the two queries alone (what the policies cost), and the whole transaction,
where the application side also pays for `as_user` (one more statement, as a request handler
runs it: set for the rest of the transaction). Figures go to bench/results/rls.json.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import create_engine, text

from afilo_db.db.embedded import EmbeddedServer
from afilo_db.migrate.revisions import deploy
from afilo_db.security.context import SET_CONTEXT_SQL
from afilo_db.security.roles import APP_ROLE, login_password_sql

USERS = 100_000
CART_ITEMS_PER_USER = 10
PRODUCTS = 1_000
VARIANTS_PER_PRODUCT = 2
PURCHASES_PER_USER = 2
DOWNLOADS_PER_PURCHASE = 3
ROUNDS = 3_000
WARM_UP = 300
RESULTS = Path(__file__).parent / "results" / "rls.json"

# Set-based generation in the server: seconds, not a Python loop over a million rows.
FILL = [
    # The owner is a superuser: skip foreign-key triggers while bulk loading consistent data.
    "SET session_replication_role = replica",
    f"""INSERT INTO products (handle, title, status, included_in_tier)
        SELECT 'product-' || i, 'Product ' || i, 'active',
               (ARRAY['starter', 'professional', 'enterprise', NULL])[1 + i % 4]
        FROM generate_series(1, {PRODUCTS}) i""",
    f"""INSERT INTO product_variants (product_id, sku, title, license_type, price, seats)
        SELECT p.id, 'SKU-' || upper(p.handle) || '-' || k, 'Variant ' || k,
               (ARRAY['personal', 'team'])[k], 19 + k * 10, (ARRAY[1, 5])[k]
        FROM products p, generate_series(1, {VARIANTS_PER_PRODUCT}) k""",
    f"""INSERT INTO user_profiles (clerk_user_id, email)
        SELECT 'user_bench' || lpad(i::text, 8, '0'), 'bench' || i || '@example.com'
        FROM generate_series(1, {USERS}) i""",
    f"""WITH u AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM user_profiles),
             v AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS m FROM product_variants)
        INSERT INTO cart_items (user_id, variant_id, quantity)
        SELECT u.id, v.id, 1 + j % 3
        FROM u CROSS JOIN generate_series(0, {CART_ITEMS_PER_USER - 1}) j
        JOIN v ON v.m = (u.n * 7 + j * 191) % {PRODUCTS * VARIANTS_PER_PRODUCT}""",
    f"""WITH u AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM user_profiles),
             p AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS m FROM products)
        INSERT INTO purchases (user_id, product_id, amount, status)
        SELECT u.id, p.id, 49, 'paid'
        FROM u CROSS JOIN generate_series(0, {PURCHASES_PER_USER - 1}) j
        JOIN p ON p.m = (u.n * 13 + j * 17) % {PRODUCTS}""",
    f"""INSERT INTO downloads (user_id, product_id, purchase_id, created_at)
        SELECT user_id, product_id, id, created_at + make_interval(days => k)
        FROM purchases, generate_series(1, {DOWNLOADS_PER_PURCHASE}) k""",
    "RESET session_replication_role",
    "ANALYZE",
]

CART_SQL = """
SELECT ci.id, ci.quantity, v.sku, v.price, p.title
FROM cart_items ci
JOIN product_variants v ON v.id = ci.variant_id
JOIN products p ON p.id = v.product_id
WHERE ci.user_id = %(user_id)s
ORDER BY ci.created_at, ci.id
"""
DOWNLOADS_SQL = """
SELECT d.id, d.created_at, p.title
FROM downloads d JOIN products p ON p.id = d.product_id
WHERE d.user_id = %(user_id)s
ORDER BY d.created_at DESC, d.id
LIMIT 50
"""


# as_user's own statement, in psycopg's parameter style.
SET_CONTEXT = str(
    text(SET_CONTEXT_SQL).compile(dialect=create_engine("postgresql+psycopg://").dialect)
)


Listing = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]


def _listing(connection: psycopg.Connection[Any], user_id: object) -> Listing:
    parameters = {"user_id": user_id}
    cart = connection.execute(CART_SQL, parameters, prepare=True).fetchall()
    downloads = connection.execute(DOWNLOADS_SQL, parameters, prepare=True).fetchall()
    return cart, downloads


def _transaction(
    connection: psycopg.Connection[Any], user_id: object, context: dict[str, str] | None
) -> tuple[float, float, Listing]:
    """(whole transaction, queries alone, what they returned), in seconds; with a context,
    as_user's statement first."""
    started = time.perf_counter()
    if context is not None:
        connection.execute(SET_CONTEXT, context, prepare=True)
    queries_started = time.perf_counter()
    listing = _listing(connection, user_id)
    queries = time.perf_counter() - queries_started
    connection.commit()
    return time.perf_counter() - started, queries, listing


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000,
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="afilo-bench-rls-") as scratch:
        server = EmbeddedServer(Path(scratch) / "server")
        server.start(settings={"fsync": "off", "synchronous_commit": "off"})
        try:
            run(server)
        finally:
            server.destroy()


def run(server: EmbeddedServer) -> None:
    owner_url = server.url()
    deploy(owner_url)
    print(f"filling: {USERS:,} users, {USERS * CART_ITEMS_PER_USER:,} cart items ...", flush=True)
    started = time.perf_counter()
    with psycopg.connect(owner_url, autocommit=True) as owner:
        for statement in FILL:
            owner.execute(statement)
        owner.execute(login_password_sql(owner, server.role_password(APP_ROLE)))
        users = owner.execute("SELECT id, clerk_user_id FROM user_profiles").fetchall()
        counts = owner.execute(
            "SELECT (SELECT count(*) FROM cart_items), (SELECT count(*) FROM downloads)"
        ).fetchone()
    print(f"filled in {time.perf_counter() - started:.0f}s: {counts}", flush=True)

    chooser = random.Random(2026)
    samples: dict[str, list[float]] = {key: [] for key in ("owner", "app", "owner_q", "app_q")}
    with (
        psycopg.connect(owner_url) as owner,
        psycopg.connect(server.role_url(APP_ROLE)) as app,
    ):
        for round_number in range(WARM_UP + ROUNDS):
            user_id, clerk_user_id = chooser.choice(users)
            context = {"role": APP_ROLE, "clerk_user_id": clerk_user_id}
            order = ["owner", "app"] if round_number % 2 else ["app", "owner"]
            listings = {}
            for side in order:
                if side == "owner":
                    total, queries, listings[side] = _transaction(owner, user_id, None)
                else:
                    total, queries, listings[side] = _transaction(app, user_id, context)
                if round_number >= WARM_UP:
                    samples[side].append(total)
                    samples[f"{side}_q"].append(queries)
            if listings["owner"] != listings["app"]:
                raise SystemExit(f"the two sides disagree for {clerk_user_id}")

    figures = {key: _summary(values) for key, values in samples.items()}
    print(f"\nlisting one user's cart ({CART_ITEMS_PER_USER} items) and downloads "
          f"({PURCHASES_PER_USER * DOWNLOADS_PER_PURCHASE}), {ROUNDS:,} rounds; "
          "baseline: the owner without RLS")  # fmt: skip
    print(f"{'':40}{'median':>10}{'p99':>10}")
    report: dict[str, Any] = {"users": USERS, "cart_items": counts[0] if counts else None,
                              "downloads": counts[1] if counts else None, "rounds": ROUNDS}  # fmt: skip
    for label, owner_key, app_key in (
        ("two queries", "owner_q", "app_q"),
        ("transaction (app: + as_user)", "owner", "app"),
    ):
        ratio = {key: figures[app_key][key] / figures[owner_key][key] for key in figures[app_key]}
        for name, key in (("owner, no RLS", owner_key), ("afilo_app, RLS", app_key)):
            line = f"{label}, {name}"
            print(f"{line:40}{figures[key]['median_ms']:>8.3f}ms{figures[key]['p99_ms']:>8.3f}ms")
        print(
            f"{label + ', ratio (goal <= 1.2x)':40}{ratio['median_ms']:>9.2f}x{ratio['p99_ms']:>9.2f}x"
        )
        report[label] = {"owner": figures[owner_key], "app": figures[app_key], "ratio": ratio}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
