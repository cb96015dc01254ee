"""The model-based billing test run long: many random subscription lifecycles (make test runs
four), each delivered shuffled with duplicates to the real endpoint and compared with the model
of Stripe's rules after every delivery (tests/billing/test_lifecycle_model.py).

`python -m bench.billing_model [--lifecycles N]` (default 100). Results go to
bench/results/billing_model.json: the lifecycles checked (`examples`), the seconds it took, and pytest's
exit code (0: every delivery agreed with the model).
"""

from __future__ import annotations

import argparse

from bench.common import tests_run_longer

TEST = "tests/billing/test_lifecycle_model.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lifecycles", type=int, default=100)
    options = parser.parse_args()
    tests_run_longer("billing_model", [TEST], "AFILO_MODEL_EXAMPLES", options.lifecycles)


if __name__ == "__main__":
    main()
