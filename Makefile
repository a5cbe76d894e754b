PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test wheel-test lint bench clean

install:  ## create .venv and install the package with its test extras
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -c constraints.txt -e '.[test]'

test:  ## lint, the whole test suite (offline), then the wheel installed and run outside the repository
	$(BIN)/ruff check .
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -q -n 2 tests
	.ci/wheel_test $(BIN)/python

wheel-test:  ## build the wheel (no warnings), install it in a fresh venv, run check + a 2-image evaluate there
	.ci/wheel_test $(BIN)/python

bench:  ## CPU-sized performance benchmarks (print ratios)
	$(BIN)/python benchmarks/bench_metrics.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
