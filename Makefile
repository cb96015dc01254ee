# A new user needs two commands: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint system-packages bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/afilo-db up

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

system-packages:
	scripts/system-packages.sh

test: lint system-packages
	$(BIN)/pytest

# Every benchmark in bench/ (never run by `make test`); figures land in bench/results/.
bench: $(STAMP)
	for module in $$(ls bench/*.py | xargs -n1 basename | sed 's/\.py$$//' | grep -v '^__init__$$'); do \
		$(BIN)/python -m bench.$$module || exit 1; \
	done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
