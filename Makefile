# PocketQuant — everything installs from nothing: uv (bootstrapped with pip when missing),
# the locked Python environment (.venv from uv.lock); redis-server and chromium for the tests only.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
PY := $(CURDIR)/.venv/bin/python
PYTEST_ARGS ?=
# A MongoDB-wire-compatible server for the tests (GPL-2.0-only beta): a test tool in its own
# virtual environment, never a project dependency in uv.lock.
SECANTUS_VERSION := 0.7.0b3
SECANTUS := $(CURDIR)/.tools/secantus

.PHONY: install test-deps test-tools test test-fast demo bench simulate production-local clean help

help:
	@echo "make demo   - simulator + Dagster UI (+ streamer) on embedded defaults"
	@echo "make test   - install what is missing, run the whole test suite"
	@echo "make test-tools - SecantusDB (MongoDB-wire test server) into .tools/secantus"
	@echo "make production-local - the production topology as local processes (needs PostgreSQL)"
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

$(SECANTUS)/.installed-$(SECANTUS_VERSION):
	rm -rf $(SECANTUS)
	python3 -m venv $(SECANTUS)
	$(SECANTUS)/bin/pip install --quiet SecantusDB==$(SECANTUS_VERSION)
	@touch $@

test-tools: $(SECANTUS)/.installed-$(SECANTUS_VERSION)

test: install test-deps test-tools
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install test-deps test-tools
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

demo: install
	$(PY) -m pocketquant_pipelines.demo

simulate: install
	$(PY) -m tradingview_simulator

# the production topology as local processes: MongoDB wire server, Redis, Dagster on the local
# PostgreSQL (a database of its own, dropped at Ctrl-C), two streamers, the simulator
production-local: install test-deps test-tools
	$(PY) -m pocketquant_pipelines.topology

bench: install test-tools
	$(PY) bench/storage.py
	$(PY) bench/history.py
	$(PY) bench/aggregator.py
	$(PY) bench/backfill.py
	$(PY) bench/streamer.py

clean:
	rm -rf .venv .tools .pytest_cache data/demo
