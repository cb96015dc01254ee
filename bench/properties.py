"""The property tests run long: each rule's Python check and its database CHECK compared on
many generated values (make test tries AFILO_PROPERTY_EXAMPLES, default 50, a rule:
tests/validation/examples.py).

`python -m bench.properties [--examples N]` (default 1000). Results go to
bench/results/properties.json: the examples a rule, the seconds it took, and pytest's exit code
(0: Python and the database agreed on every value).
"""

from __future__ import annotations

import argparse

from tests.validation.examples import EXAMPLES_VARIABLE

from bench.common import tests_run_longer

TESTS = ["tests/validation/test_properties.py", "tests/validation/test_text_and_sellable.py"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=1000)
    options = parser.parse_args()
    tests_run_longer("properties", TESTS, EXAMPLES_VARIABLE, options.examples)


if __name__ == "__main__":
    main()
