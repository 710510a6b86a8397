# Two commands do all set-up on a fresh machine:
#   make run   - environment, SQLite migration, demo data, server on http://127.0.0.1:8000
#   make test  - environment and every test (unit; PostgreSQL, Slurm and browser
#                integration tests run when those are present, else skip with a reason)
#
# `make run` installs what the server needs (`pip install -e '.[sessions]'`: JupyterLab for
# the portal's notebooks, no torch, no test tools); `make test` adds the extras `dev`
# (pytest, mypy, ruff, playwright, ...) and `recipes` (torch). Each has its own stamp, so
# `make run` then `make test` (or the other way round) installs what is missing and
# nothing twice.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP_RUN  := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test

.PHONY: run test lint unit venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[sessions]'
	touch $(STAMP_RUN)

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,recipes,sessions]'
	touch $(STAMP_TEST)

venv: $(STAMP_TEST)

run: $(STAMP_RUN)
	$(BIN)/rechenwerk admin db upgrade
	$(BIN)/rechenwerk admin demo --if-empty
	$(BIN)/rechenwerk server

lint: $(STAMP_TEST)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

unit: $(STAMP_TEST)
	$(BIN)/pytest -q -m "not postgres and not slurm and not browser and not oidc"

test: $(STAMP_TEST) lint
	$(BIN)/pytest -q -n 2 --dist loadgroup --hypothesis-seed=20261122

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
