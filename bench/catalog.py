"""The catalog import against raw COPY.

`catalog import` of a JSON Lines file against raw COPY of the same rows into the same tables,
as a throughput ratio (raw time / import time: 1.0 means as fast as COPY), first import and
re-import of the unchanged file, each in a process of its own with its peak memory. The product
page and the other hot reads are measured, in every form an application calls them, by
bench/hot_paths.py.

Raw COPY and the import alternate for `--rounds` rounds on fresh databases; the medians are
reported.

Run: `python -m bench.catalog [--products N] [--rounds N] [--bounded-memory-products N]`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from afilo_db.data import seed
from afilo_db.data.catalog_import import import_catalog
from bench.common import fresh_database, report, scratch_server, timed


def write_catalog(path: Path, plans: list[seed.ProductPlan], copies: int = 1) -> None:
    """The plans as JSON Lines, `copies` times over with their keys renamed (a large file fast)."""
    with path.open("w") as handle:
        for copy in range(copies):
            for plan in plans:
                record = seed.product_record(plan)
                if copy:
                    record["handle"] += f"-c{copy}"
                    record["stripe_product_id"] += f"c{copy}"
                    for variant in record["variants"]:
                        variant["sku"] += f"-C{copy}"
                        variant["stripe_price_id"] += f"c{copy}"
                handle.write(json.dumps(record) + "\n")


def _peak_rss_megabytes() -> int:
    """This process's own peak (VmHWM). Not getrusage: on Linux a process started by fork and
    exec reports its parent's peak there when that was higher (the bench's parent holds every
    plan in memory)."""
    status = Path("/proc/self/status").read_text()
    kilobytes = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))
    return int(kilobytes) // 1024


def _proportional_kilobytes(pid: int) -> int:
    """A process's proportional set size (PSS): each page shared with other processes (the
    validating workers are forked from the import) counted as its share, not whole in each."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:  # ended meanwhile
        return 0
    return next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


class _MemorySampler(threading.Thread):
    """The largest sum of PSS over this process and its children, sampled every 0.2 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_kilobytes = 0
        self.done = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self.done.wait(0.2):
            total = sum(_proportional_kilobytes(pid) for pid in [me, *_children(me)])
            self.peak_kilobytes = max(self.peak_kilobytes, total)


def _import_in_child(url: str, path: str, skip_invalid: bool, results: Any) -> None:
    """Runs in a process of its own, so that its peak memory (and its workers') is its own."""
    sampler = _MemorySampler()
    sampler.start()
    with psycopg.connect(url) as connection:
        started = time.perf_counter()
        report = import_catalog(connection, Path(path), skip_invalid=skip_invalid)
        connection.commit()
        seconds = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    results.put(
        {
            "seconds": seconds,
            "workers": report.workers,
            "products_written": report.products,
            "peak_rss_mb": _peak_rss_megabytes(),
            "largest_worker_peak_rss_mb": (
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
            ),
            "peak_pss_mb_all_processes_sampled": sampler.peak_kilobytes // 1024,
        }
    )


def measured_import(url: str, path: Path) -> dict[str, Any]:
    """`import_catalog` of `path` in a fresh process: seconds and peak memory (megabytes)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=_import_in_child, args=(url, str(path), False, results))
    child.start()
    while child.is_alive() and results.empty():
        child.join(timeout=1)
    if results.empty():
        raise RuntimeError(f"the import process ended with code {child.exitcode} and no result")
    figures: dict[str, Any] = results.get()
    child.join()
    figures["peak_rss_mb_all_processes_at_most"] = (
        figures["peak_rss_mb"] + figures["workers"] * figures["largest_worker_peak_rss_mb"]
    )
    figures["seconds"] = round(figures["seconds"], 3)
    return figures


def _raw_copy(url: str, plans: list[seed.ProductPlan]) -> float:
    """Seconds to COPY the plans' rows into the three catalog tables and commit."""
    with psycopg.connect(url) as connection:

        def raw_copy() -> None:
            cursor = connection.cursor()
            for table, columns, rows in (
                ("products", seed.PRODUCT_COLUMNS, (plan.row for plan in plans)),
                ("product_variants", seed.VARIANT_COLUMNS,
                 (v.row for plan in plans for v in plan.variants)),
                ("product_pricing_tiers", seed.TIER_COLUMNS,
                 (t for plan in plans for v in plan.variants for t in v.tiers)),
            ):  # fmt: skip
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            connection.commit()

        return timed(raw_copy)


def catalog_import(server_url_for: Any, products: int, rounds: int) -> dict[str, Any]:
    """Raw COPY, the import and the re-import of the unchanged file, round after round, each
    round on fresh databases: drift on a shared machine hits both sides alike, and each
    round's ratio compares times taken minutes apart at most. The figures are the medians."""
    plans = [seed.product_plan(11, index) for index in range(products)]
    raw_seconds: list[float] = []
    firsts: list[dict[str, Any]] = []
    unchanged: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "catalog.jsonl"
        write_catalog(path, plans)
        megabytes = round(path.stat().st_size / 1e6, 1)
        for round_number in range(rounds):
            raw_seconds.append(_raw_copy(server_url_for("bench_raw_copy"), plans))
            import_url = server_url_for("bench_import")
            firsts.append(measured_import(import_url, path))
            # The same file again: every row is compared and none is written.
            unchanged.append(measured_import(import_url, path))
            print(
                f"round {round_number + 1}: raw COPY {raw_seconds[-1]:.1f}s,"
                f" import {firsts[-1]['seconds']:.1f}s, unchanged {unchanged[-1]['seconds']:.1f}s",
                flush=True,
            )
    ratios = [raw / first["seconds"] for raw, first in zip(raw_seconds, firsts, strict=True)]
    again = [raw / other["seconds"] for raw, other in zip(raw_seconds, unchanged, strict=True)]
    return {
        "products": products,
        "file_megabytes": megabytes,
        "rounds": rounds,
        "raw_copy_seconds": round(statistics.median(raw_seconds), 3),
        "import": _median_figures(firsts),
        "import_throughput_vs_raw_copy": round(statistics.median(ratios), 3),
        "import_throughput_vs_raw_copy_each_round": [round(ratio, 3) for ratio in ratios],
        "reimport_unchanged": _median_figures(unchanged),
        "reimport_unchanged_vs_raw_copy": round(statistics.median(again), 3),
    }


def _median_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median seconds of the runs; memory as the highest peak of any run."""
    return {
        key: (
            round(statistics.median(run[key] for run in runs), 3)
            if key == "seconds"
            else max(run[key] for run in runs)
        )
        for key in runs[0]
    }


def bounded_memory_import(url: str, products: int) -> dict[str, Any]:
    """A large import with no baseline: does memory stay flat? (100,000 plans, copied over.)"""
    base = min(products, 100_000)
    plans = [seed.product_plan(11, index) for index in range(base)]
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "catalog.jsonl"
        write_catalog(path, plans, copies=-(-products // base))
        megabytes = round(path.stat().st_size / 1e6, 1)
        figures = measured_import(url, path)
    return {"products": base * -(-products // base), "file_megabytes": megabytes, **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument(
        "--rounds", type=int, default=3, help="raw COPY and import rounds; medians reported"
    )
    parser.add_argument(
        "--bounded-memory-products",
        type=int,
        default=0,
        help="also import this many products (e.g. 1000000) and report the peak memory",
    )
    arguments = parser.parse_args()
    figures: dict[str, Any] = {}
    with scratch_server("catalog") as server:
        template = "bench_template"
        fresh_database(server, template)
        figures["catalog_import"] = catalog_import(
            lambda name: fresh_database(server, name, template=template),
            arguments.products,
            arguments.rounds,
        )
        if arguments.bounded_memory_products:
            figures["bounded_memory_import"] = bounded_memory_import(
                fresh_database(server, "bench_large_import", template=template),
                arguments.bounded_memory_products,
            )
    report("catalog", figures)


if __name__ == "__main__":
    main()
