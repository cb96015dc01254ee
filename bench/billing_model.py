"""The model-based billing test run long: many random subscription lifecycles (make test runs
four), each delivered shuffled with duplicates to the real endpoint and compared with the model
of Stripe's rules after every delivery (tests/billing/test_lifecycle_model.py).

`python -m bench.billing_model [--lifecycles N]` (default 100). Results go to
bench/results/billing_model.json: the lifecycles checked, the seconds it took, and pytest's
exit code (0: every delivery agreed with the model).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import report

TEST = "tests/billing/test_lifecycle_model.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lifecycles", type=int, default=100)
    options = parser.parse_args()
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", TEST, "-q", "-x", "-n", "0", "-p", "no:cacheprovider"],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "AFILO_MODEL_EXAMPLES": str(options.lifecycles)},
        check=False,
    )
    report(
        "billing_model",
        {
            "lifecycles": options.lifecycles,
            "seconds": round(time.perf_counter() - started, 1),
            "pytest_exit_code": result.returncode,
        },
    )
    if result.returncode != 0:
        raise SystemExit(result.returncode)


if __name__ == "__main__":
    main()
