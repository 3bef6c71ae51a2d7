# PocketQuant — everything installs from nothing: uv (bootstrapped with pip when missing),
# the locked Python environment (.venv from uv.lock); redis-server and chromium for the tests only.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
PY := $(CURDIR)/.venv/bin/python
PYTEST_ARGS ?=

.PHONY: install test-deps test test-fast demo bench simulate clean help

help:
	@echo "make demo   - simulator + Dagster UI (+ streamer) on embedded defaults"
	@echo "make test   - install what is missing, run the whole test suite"
	@echo "make bench  - run bench/ scripts (tables of figures vs. baselines)"

$(CURDIR)/.tools/bin/uv:
	python3 -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet uv

.venv/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-extras
	@touch $@

install: .venv/.installed

# only the tests need redis-server (they start their own on a free port) and chromium (the
# headless UI smoke test); the demo runs on embedded backends
test-deps:
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server (tests start their own on a free port)"; \
	  (apt-get update -qq && apt-get install -y -qq redis-server) >/dev/null; }
	@command -v chromium >/dev/null || { \
	  echo "installing chromium (the headless UI smoke test)"; \
	  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null; }

test: install test-deps
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install test-deps
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

demo: install
	$(PY) -m pocketquant_pipelines.demo

simulate: install
	$(PY) -m pocketquant_pipelines simulate

bench: install
	$(PY) bench/storage.py
	$(PY) bench/history.py
	$(PY) bench/aggregator.py
	$(PY) bench/backfill.py
	$(PY) bench/streamer.py

clean:
	rm -rf .venv .tools .pytest_cache data/demo
