# Servicewire: the commands a new user runs. Everything goes through .venv.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help install demo test lint typecheck bench services protos clean

help:
	@echo "make demo     run the FTGO demo on the embedded default (SQLite + in-memory transport)"
	@echo "make test     install, prepare local services, run ruff, mypy and pytest"
	@echo "make bench    run the benchmarks in benchmarks/ and print their ratios"
	@echo "make lint     ruff and mypy only"
	@echo "make protos   regenerate the checked-in protobuf/gRPC code"

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ftgo demo

services:
	bash scripts/prepare_services.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) services lint
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: $(STAMP)
	bash scripts/run_benchmarks.sh

protos: $(STAMP)
	$(BIN)/python scripts/compile_protos.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info src/*.egg-info
