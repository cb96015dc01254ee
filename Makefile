# A new user needs two commands: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-pg15 lint system-packages bench clean

# uv installs the same packages as pip, several times faster (docs/benchmarks.md, "The test
# suite"). The venv gets no pip of its own where the system's pip can install uv into it (pip
# 22.3 and later): setting pip up in a venv costs more than the rest of the install. Nothing is
# compiled here: `make test` lets its processes write the bytecode of what they import, once.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv --without-pip $(VENV)
	$(PYTHON) -m pip --python $(BIN)/python install --quiet uv 2>/dev/null \
	  || { $(BIN)/python -m ensurepip --default-pip >/dev/null && $(BIN)/python -m pip install --quiet uv; }
	$(BIN)/uv pip install --python $(BIN)/python --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/afilo-db up

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	@# Parallel checking is new in mypy and can stop on an internal error (exit 2, not a type
	@# error: python/mypy#21974, #21578): then one process checks again, so that only type
	@# errors fail the build.
	$(BIN)/mypy || { status=$$?; [ $$status -eq 2 ] && $(BIN)/mypy --num-workers 0; }
	$(BIN)/lint-imports

system-packages:
	scripts/system-packages.sh

# Three workers on two cores: most of a test's time is spent waiting on PostgreSQL, a browser or a
# subprocess; two kept the cores half idle, five contended for them (timings: docs/benchmarks.md).
# A scratch folder of this checkout's own (pytest prunes old runs in the shared one, which
# would pull the data directory from under another checkout's running test server), in memory
# where there is room (scripts/test-scratch.sh). Removed after a run that passed; kept after one
# that failed, for its servers' logs, until the next run or `make clean`.
TEST_SCRATCH := $(shell scripts/test-scratch.sh)
# Bytecode is written even where PYTHONDONTWRITEBYTECODE is set: every `afilo-db` and worker the
# tests start would otherwise compile its imports anew (it cost the suite minutes of CPU), and
# compiling every installed package ahead cost more than what the tests import.
test: lint system-packages
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/pytest -n 3 --dist loadfile --basetemp=$(TEST_SCRATCH) --durations=20 \
	  || { status=$$?; echo "the test servers' files are kept in $(TEST_SCRATCH)"; exit $$status; }
	rm -rf $(TEST_SCRATCH)

# The suite against PostgreSQL 15, the oldest supported release: Debian's server with pgvector built
# from its source, a throwaway cluster, the tests that do not need the embedded server
# (scripts/pg15.sh; docs/postgres-versions.md).
test-pg15: $(STAMP) system-packages
	scripts/pg15.sh

# Benchmarks, never part of `make test`: each prints ratios against a baseline from the same run
# and writes bench/results/<name>.json.
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .pytest-tmp .pytest-tmp-pg15 .pg15 $(TEST_SCRATCH)
