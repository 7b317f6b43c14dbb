# Developer entry points. `make demo` needs nothing running; `make test` needs a local
# Postgres and Redis and starts them when they are down (Debian-like host).
# Supported: Python 3.11 (the oldest, `.venv`) to 3.13. `make test-newest` runs the suite in
# a second venv on the newest supported Python found here; `make demo` uses that one too.
VENV ?= .venv
PYTHON ?= python3.11
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SUPPORTED_NEWEST_FIRST := 3.13 3.12 3.11
# On PATH (and runnable: a pyenv shim of an inactive version is not), else installed by pyenv.
ifeq ($(origin NEWEST_PYTHON), undefined)
NEWEST_PYTHON := $(shell for v in $(SUPPORTED_NEWEST_FIRST); do \
	if python$$v -c '' 2>/dev/null; then echo python$$v; exit; fi; \
	p=$$(pyenv prefix $$v 2>/dev/null) && test -x "$$p/bin/python$$v" && { echo "$$p/bin/python$$v"; exit; }; \
	done)
endif
NEWEST_VENV ?= .venv-newest
NEWEST_STAMP := $(NEWEST_VENV)/.installed-stamp
LINTED := syncworker tests migrations/env.py

.PHONY: install install-newest newest-python demo test test-newest lint typecheck unit services chaos bench bench-full clean

# $(1): the venv to install into.
define install_into
	$(1)/bin/python -m pip install --quiet --upgrade pip
	$(1)/bin/python -m pip install --quiet -e '.[dev]'
	@touch $(1)/.installed-stamp
endef

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(call install_into,$(VENV))

$(NEWEST_STAMP): pyproject.toml
	@test -n "$(NEWEST_PYTHON)" || { echo "no supported Python ($(SUPPORTED_NEWEST_FIRST)) found" >&2; exit 1; }
	@test -x $(NEWEST_VENV)/bin/python || $(NEWEST_PYTHON) -m venv $(NEWEST_VENV)
	$(call install_into,$(NEWEST_VENV))

install: $(STAMP)

install-newest: $(NEWEST_STAMP)

newest-python:
	@echo $(NEWEST_PYTHON)

demo: $(NEWEST_STAMP)
	$(NEWEST_VENV)/bin/syncworker demo

services:
	@ops/ensure-services.sh

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) services lint typecheck
	$(BIN)/pytest -m "not chaos"

# The same suite on the newest supported Python (CI runs both).
# The newest Python runs what depends on the interpreter: the pure core, the HTTP clients
# against the sandboxes, the database layer and migrations. The multi-process integration and
# chaos tests run once, on 3.11, so CI stays well inside its time.
test-newest: $(NEWEST_STAMP) services
	$(NEWEST_VENV)/bin/pytest tests/unit tests/contract tests/integration/test_store.py tests/integration/test_migrations.py

unit: $(STAMP)
	$(BIN)/pytest tests/unit

chaos: $(STAMP) services
	$(BIN)/pytest -m chaos

# Benchmarks print one JSON object per benchmark (bench/README.md). Their broker and Redis
# databases are their own, so they can run beside the integration tests.
BENCH_ENV := SYNCWORKER_TEST_BROKER_URL=$${SYNCWORKER_TEST_BROKER_URL:-redis://127.0.0.1:6379/6} \
	SYNCWORKER_TEST_REDIS_URL=$${SYNCWORKER_TEST_REDIS_URL:-redis://127.0.0.1:6379/5}

bench: $(STAMP) services
	@$(BENCH_ENV) $(BIN)/python -m bench

bench-full: $(STAMP) services
	@$(BENCH_ENV) $(BIN)/python -m bench --full

clean:
	rm -rf $(VENV) $(NEWEST_VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
