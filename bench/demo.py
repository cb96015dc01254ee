"""What the demo shop of `afilo-db up` costs: made through the webhook path against the seed's
direct COPY of the same catalog with its own customers (what `up` did before).

Each round, on fresh migrated databases of one scratch server, alternately: the seed's demo
(`seed(products=DEMO_PRODUCTS)`: catalog, sample knowledge base, 8 customers written as rows)
and `demo.populate` (the same catalog and knowledge base, then six months of signed Stripe and
Clerk events verified and ingested, behaviour through analytics `ingest`), each in one
transaction, committed, after one unmeasured run of each (the embedding model loaded and the
sample texts embedded, as a process does once). Prints the median of each and the ratio (populate / seed); bench/results/demo.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date

from sqlalchemy import NullPool, create_engine
from sqlalchemy.orm import Session

from afilo_db.data import seed
from afilo_db.data.up import driver_connection
from afilo_db.db.urls import sqlalchemy_url
from afilo_db.demo import populate
from afilo_db.knowledge.embedders import get_embedder
from bench.common import fresh_database, report, scratch_server

TEMPLATE = "bench_demo_template"


def _seeded(url: str) -> float:
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        started = time.perf_counter()
        with Session(engine) as session, session.begin():
            seed.seed(driver_connection(session), products=seed.DEMO_PRODUCTS)
        return time.perf_counter() - started
    finally:
        engine.dispose()


def _populated(url: str) -> float:
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        started = time.perf_counter()
        with Session(engine) as session, session.begin():
            populate(session, lambda _phase, _done, _total: None)
        return time.perf_counter() - started
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    get_embedder()
    times: dict[str, list[float]] = {"seed": [], "webhooks": []}
    with scratch_server("demo") as server:
        fresh_database(server, TEMPLATE)
        # Unmeasured, once each: the embedding model embeds each distinct text once a process.
        _seeded(fresh_database(server, "bench_demo_warm_seed", template=TEMPLATE))
        _populated(fresh_database(server, "bench_demo_warm_webhooks", template=TEMPLATE))
        for number in range(arguments.rounds):
            # Alternate which goes first, so that drift hits both alike.
            order = ("seed", "webhooks") if number % 2 == 0 else ("webhooks", "seed")
            for side in order:
                url = fresh_database(server, f"bench_demo_{side}_{number}", template=TEMPLATE)
                times[side].append(_seeded(url) if side == "seed" else _populated(url))
            print(f"round {number + 1}: seed {times['seed'][-1]:.2f} s, "
                  f"webhooks {times['webhooks'][-1]:.2f} s", flush=True)  # fmt: skip
    medians = {side: statistics.median(samples) for side, samples in times.items()}
    report("demo", {
        "rounds": arguments.rounds,
        "seed_median_seconds": round(medians["seed"], 3),
        "webhooks_median_seconds": round(medians["webhooks"], 3),
        "webhooks_vs_seed": round(medians["webhooks"] / medians["seed"], 3),
        "samples": {side: [round(value, 3) for value in samples] for side, samples in times.items()},
        "generated_on": date.today().isoformat(),
    })  # fmt: skip


if __name__ == "__main__":
    main()
