# jobqueue: two commands matter. `make run` installs and runs the service on an embedded
# PostgreSQL; `make test` installs the dev tools and runs every check and test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/jobqueue serve

lint: $(STAMP)
	$(BIN)/ruff check src tests alembic
	$(BIN)/ruff format --check src tests alembic
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy --strict src

test: lint typecheck
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist
