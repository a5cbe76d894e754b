PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test lint bench clean

install:  ## create .venv and install the package with its test extras
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -c constraints.txt -e '.[test]'

test:  ## lint, then the whole test suite (offline)
	$(BIN)/ruff check .
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -q -n 2 tests

bench:  ## CPU-sized performance benchmarks (print ratios)
	$(BIN)/python benchmarks/bench_metrics.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
