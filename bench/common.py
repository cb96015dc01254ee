"""What the benchmarks share: a scratch embedded server, latency statistics, result files."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from afilo_db.db import databases
from afilo_db.db.embedded import EmbeddedServer
from afilo_db.migrate.revisions import deploy

RESULTS_DIRECTORY = Path(__file__).parent / "results"


@contextmanager
def scratch_server(name: str, settings: dict[str, str] | None = None) -> Iterator[EmbeddedServer]:
    """An embedded server of the benchmark's own (never the user's AFILO_HOME), removed after;
    `settings` as a production server would be tuned for the data (e.g. shared_buffers)."""
    home = Path(tempfile.mkdtemp(prefix=f"afilo-bench-{name}-"))
    server = EmbeddedServer(home)
    server.start(settings=settings)
    try:
        yield server
    finally:
        server.destroy()


def postmaster_pid(server: EmbeddedServer) -> int:
    return int((server.data_directory / "postmaster.pid").read_text().split()[0])


def keep_apart(server_pids: list[int]) -> dict[str, list[int]]:
    """The benchmark on the first cores, the servers (their processes, and all they start from
    now on) on the last one, as an application and its database on machines of their own.

    Left to the scheduler, a client and the backend it waits on share a core in one run and not
    in the next, which moved a read's latency by 10-25% from run to run whatever was measured.
    Returns the placement; on a single core, nothing is moved.
    """
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return {"client": cores, "servers": cores}
    client, servers = cores[:-1], cores[-1:]
    parents = set(server_pids)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The fields after the command's closing parenthesis: state, then the parent's pid.
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # ended while listed
        if int(entry.name) in parents or parent in parents:
            with contextlib.suppress(ProcessLookupError):  # ended since
                os.sched_setaffinity(int(entry.name), servers)
    os.sched_setaffinity(0, client)
    return {"client": client, "servers": servers}


def fresh_database(server: EmbeddedServer, name: str, template: str | None = None) -> str:
    """A new database, migrated (or cloned from `template`), and its URL."""
    databases.drop_database(server.url("postgres"), name)
    databases.create_database(server.url("postgres"), name, template=template)
    url = server.url(name)
    if template is None:
        deploy(url)
    return url


def latencies(call: Callable[[], object], repeat: int, warmup: int = 100) -> list[float]:
    """Seconds per call, after `warmup` calls that are not counted."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 4),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 4),
    }


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def measured_on() -> dict[str, Any]:
    """When, on what code and in what conditions a run was made: a figure in git history means
    little without the commit it measured and how busy the machine was."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=RESULTS_DIRECTORY.parent,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": commit or None,
        "cpus": os.cpu_count(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }


def report(name: str, figures: dict[str, Any]) -> None:
    """Print the figures and write them, with `measured_on`, to bench/results/<name>.json (kept in
    git: the file's history is the benchmark's)."""
    RESULTS_DIRECTORY.mkdir(exist_ok=True)
    text = json.dumps({"measured_on": measured_on(), **figures}, indent=2, default=str)
    (RESULTS_DIRECTORY / f"{name}.json").write_text(text + "\n")
    print(text)


def tests_run_longer(name: str, tests: list[str], variable: str, examples: int) -> None:
    """Run the test files `tests` with `variable` set to `examples` (what `make test` bounds),
    report the seconds and pytest's exit code as bench/results/<name>.json, and fail with it."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *tests, "-q", "-x", "-n", "0", "-p", "no:cacheprovider"],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, variable: str(examples)},
        check=False,
    )
    report(
        name,
        {
            "examples": examples,
            "seconds": round(time.perf_counter() - started, 1),
            "pytest_exit_code": result.returncode,
        },
    )
    if result.returncode != 0:
        raise SystemExit(result.returncode)
