# Developer entry points. `make demo` needs nothing running; `make test` needs a local
# Postgres and Redis and starts them when they are down (Debian-like host).
VENV ?= .venv
PYTHON ?= python3.11
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LINTED := syncworker tests migrations/env.py

.PHONY: install demo test lint typecheck unit services chaos bench bench-full clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/syncworker demo

services:
	@ops/ensure-services.sh

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) services lint typecheck
	$(BIN)/pytest -m "not chaos"

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
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
