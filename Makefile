PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install chromium test wheel-test lint docs bench clean

install:  ## create .venv and install the package with its test extras (+ Debian's chromium for the page test)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -c constraints.txt -e '.[test]'
	@$(MAKE) --no-print-directory chromium

chromium:  ## install Debian's chromium when missing (the headless-browser test of the leaderboard page)
	@if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else SUDO=none; fi; \
	echo "installing chromium with apt-get (tests/test_leaderboard_browser.py opens the leaderboard page in it)"; \
	if [ "$$SUDO" != none ] && $$SUDO apt-get update -qq && \
	   $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; then \
	  echo "chromium installed: $$(command -v chromium)"; \
	else \
	  echo "make install: could not install chromium with apt-get (needs Debian/Ubuntu, root or sudo, and the network);" \
	       "tests/test_leaderboard_browser.py will be skipped. Install it with: apt-get install chromium" >&2; \
	fi

test:  ## lint (incl. complexity <= 15), the whole test suite (offline), then the wheel installed and run outside the repository
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -q -n 2 tests
	.ci/wheel_test $(BIN)/python

wheel-test:  ## build the wheel (no warnings), install it in a fresh venv, run check + a 2-image evaluate there
	.ci/wheel_test $(BIN)/python

docs:  ## regenerate docs/METRICS.md from the metric registry (tests/test_docs.py checks it)
	$(BIN)/python -c "from hfus_xai_bench.docs_tables import write_metrics_doc; write_metrics_doc()"

bench:  ## CPU-sized performance benchmarks (print ratios)
	$(BIN)/python benchmarks/bench_metrics.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
