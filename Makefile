# jobqueue: two commands matter. `make run` installs and runs the service on an embedded
# PostgreSQL; `make test` installs the dev tools and runs every check and test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUNTIME := $(VENV)/.runtime

.PHONY: run test lint typecheck unit bench clean chromium pgbouncer

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# `make run` needs only the service's own packages; the dev tools come with `make test`.
$(RUNTIME): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUNTIME)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $(RUNTIME)

run: $(RUNTIME)
	$(BIN)/jobqueue serve

lint: $(STAMP)
	$(BIN)/ruff check src tests alembic
	$(BIN)/ruff format --check src tests alembic
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy --strict src tests

# --- dashboard browser tests: Debian's chromium, installed when missing (root only; else they skip)
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium) \
		|| echo "could not install chromium: the browser tests will skip"; \
	else echo "no /usr/bin/chromium and not root: the browser tests will skip" \
		"(sudo apt-get install chromium to run them)"; fi

# --- pgbouncer tests (tests/e2e/test_pgbouncer.py): Debian's pgbouncer, installed when missing
# (root only; else they skip). Only the binary is used: the tests start their own instance.
pgbouncer:
	@if [ -x /usr/sbin/pgbouncer ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y pgbouncer) \
		|| echo "could not install pgbouncer: the pgbouncer tests will skip"; \
	else echo "no /usr/sbin/pgbouncer and not root: the pgbouncer tests will skip" \
		"(sudo apt-get install pgbouncer to run them)"; fi

test: lint typecheck chromium pgbouncer
	$(BIN)/pytest

# jobqueue vs pgqueuer, procrastinate, oban and graphile-worker on the local PostgreSQL
# (BENCH_DATABASE_URL), under 15 minutes; BENCH_QUICK=1 for a short development run. oban gets
# its own Python 3.12 venv (bench/.venv-oban), graphile-worker `npm ci` in bench/graphile; a
# peer whose runtime is missing is skipped with the reason. See bench/README.md.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.peers_oban
	$(BIN)/python -m bench.peers_graphile
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist bench/.venv-oban bench/graphile/node_modules
