# Two commands do all set-up on a fresh machine:
#   make run   - environment, SQLite migration, demo data, server on http://127.0.0.1:8000
#   make test  - environment and every test (unit; PostgreSQL, Slurm and browser
#                integration tests run when those are present, else skip with a reason)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint unit venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,recipes]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/rechenwerk admin db upgrade
	$(BIN)/rechenwerk admin demo --if-empty
	$(BIN)/rechenwerk server

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q -m "not postgres and not slurm and not browser"

test: $(STAMP) lint
	$(BIN)/pytest -q -n 2 --dist loadgroup --hypothesis-seed=20261122

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
