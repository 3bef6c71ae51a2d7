# PocketQuant — everything installs from nothing: uv (bootstrapped with pip when missing),
# the locked Python environment (.venv from uv.lock), and redis-server for the tests.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
PY := $(CURDIR)/.venv/bin/python
PYTEST_ARGS ?=

.PHONY: install test test-fast demo bench simulate clean help

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
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server (tests start their own on a free port)"; \
	  (apt-get update -qq && apt-get install -y -qq redis-server) >/dev/null; }

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

demo: install
	$(PY) -m pocketquant_pipelines.demo

simulate: install
	$(PY) -m tradingview_simulator

bench: install
	$(PY) bench/storage.py
	$(PY) bench/history.py
	$(PY) bench/aggregator.py
	$(PY) bench/backfill.py
	$(PY) bench/streamer.py

clean:
	rm -rf .venv .tools .pytest_cache data/demo
