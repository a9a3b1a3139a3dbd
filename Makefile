# Servicewire: the commands a new user runs. Everything goes through .venv, which
# `uv sync --locked` builds from uv.lock, so two machines on two days get the same
# versions. uv itself is pinned and installed from PyPI into .tools/ on first use.
PYTHON ?= python3.11
UV_VERSION := 0.13.9
TOOLS := .tools
UV ?= $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synced
PYTEST_ARGS ?=
# make fuzz: inputs per surface, and the stores FTGO and the pipeline run on.
FUZZ_EXAMPLES ?= 10000
FUZZ_STORES ?= postgres,mariadb
# uv must use the machine's Python (it may not download one) and this venv.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
export SERVICEWIRE_UV := $(abspath $(UV))

.PHONY: help install demo test soak fuzz test-latest test-minimum lock lint typecheck bench services protos clean

help:
	@echo "make demo          run the FTGO demo on the embedded default (SQLite + in-memory transport)"
	@echo "make test          install from uv.lock, prepare local services, run ruff, mypy and pytest"
	@echo "make soak          the long tests (marked soak) that make test leaves out"
	@echo "make fuzz          the fuzz suites, 10,000 inputs per surface, on PostgreSQL and MariaDB"
	@echo "make test-latest   the suite on the newest release of every dependency (.venv-latest)"
	@echo "make test-minimum  the suite on the lowest declared version of every dependency (.venv-minimum)"
	@echo "make lock          refresh uv.lock to the newest versions pyproject.toml allows"
	@echo "make bench         run the benchmarks in benchmarks/ and print their ratios"
	@echo "make lint          ruff, mypy and the import layers (lint-imports)"
	@echo "make protos        regenerate the checked-in protobuf/gRPC code"

$(UV):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH"; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q uv==$(UV_VERSION)

# --locked: fail, instead of silently re-resolving, when pyproject.toml changed
# without `make lock`.
$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --extra dev --python $(PYTHON)
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ftgo demo

lock: $(UV)
	$(UV) lock --upgrade --python $(PYTHON)

services:
	bash scripts/prepare_services.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples scripts
	$(BIN)/ruff format --check src tests benchmarks examples scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# -n 2 --dist loadfile: pytest-xdist runs two test files at a time, each file whole on one
# worker (its module fixtures, e.g. a private broker, start once). Most tests wait on a
# broker or a database, so two workers halve the time on 2 cores: 14:47 of pytest against
# 35:15 one at a time (2026-12-07). --durations: every run names its 25 slowest tests, so
# the 30-minute budget can be kept with figures.
test: $(STAMP) services lint
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=25 -n 2 --dist loadfile $(PYTEST_ARGS)

# Tests too long for every run (a 200,000-row transaction through each log-tailing
# relay...); pyproject's addopts deselects them, `-m soak` selects only them.
soak: $(STAMP) services
	$(BIN)/python -m pytest -q -p no:cacheprovider -m soak $(PYTEST_ARGS)

# The fuzz suites at full strength (docs/security.md): FUZZ_EXAMPLES generated inputs per
# surface, FTGO and the pipeline on each of FUZZ_STORES. `make test` runs the same
# suites as a fast slice: 150 inputs per surface, on PostgreSQL.
fuzz: $(STAMP) services
	SERVICEWIRE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) SERVICEWIRE_FUZZ_STORES=$(FUZZ_STORES) \
		$(BIN)/python -m pytest -q -p no:cacheprovider --durations=0 --timeout=0 \
		tests/fuzz tests/codecs $(PYTEST_ARGS)

# The same suite outside the lock: an upstream release that breaks us shows up here,
# as its own signal, instead of turning main red.
test-latest: $(UV) services
	bash scripts/test_variant.sh latest $(PYTEST_ARGS)

test-minimum: $(UV) services
	bash scripts/test_variant.sh minimum $(PYTEST_ARGS)

bench: $(STAMP)
	bash scripts/run_benchmarks.sh

protos: $(STAMP)
	$(BIN)/python scripts/compile_protos.py

clean:
	rm -rf $(VENV) $(VENV)-latest $(VENV)-minimum $(TOOLS) .mypy_cache .ruff_cache .pytest_cache build *.egg-info src/*.egg-info
