PYTHON ?= python3
# The project's virtualenv: made and kept in step with pyproject.toml by the targets below, so
# `make test`, `make bench` and `make lint` need nothing installed beforehand.
VENV ?= .venv
VENV_PYTHON := $(VENV)/bin/python
PYTEST := $(VENV_PYTHON) -m pytest
PIP := $(VENV_PYTHON) -m pip install -q --disable-pip-version-check
# A PostgreSQL server to test against (trust auth by default, as on CI).
export PGHOST ?= 127.0.0.1
export PGPORT ?= 5432
export PGUSER ?= postgres
DEMO_VENV ?= .venv-demo

.PHONY: venv lint lint-mypy docs test test-sqlite test-postgres test-matrix demo bench bench-connect
## make venv: the package (editable, with the local gateway and Celery) and the dev and bench
## dependency groups (pip >= 25.1 reads them); redone when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(VENV_PYTHON) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade "pip>=25.1"
	$(PIP) -e ".[local,celery]" --group dev --group bench --group docs
	touch $@

venv: $(VENV)/.installed

## make lint: ruff (lint and format), mypy on the whole package, biome on the browser scripts,
## tsc on the browser client's TypeScript declarations (tsconfig.json, tests/typing/ts/)
## (the same as pre-commit runs).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(MAKE) --no-print-directory lint-mypy
	@if command -v npm >/dev/null 2>&1; then npm ci --silent --no-audit --no-fund && npx --no-install biome lint --error-on-warnings \
		&& npx --no-install tsc --noEmit -p .; \
	elif [ -n "$$CI" ]; then echo "lint: npm is missing (apt-get install npm)" >&2; exit 1; \
	else echo "lint: no npm: the browser scripts and their declarations are NOT checked (apt-get install npm)" >&2; fi

## make lint-mypy: the whole package, with django-stubs and check_untyped_defs (pyproject's
## [tool.mypy]); the Django-free modules of its [[tool.mypy.overrides]] with the strict flags too.
lint-mypy: venv
	$(VENV)/bin/mypy django_aws_api_gateway_websockets

## make docs: the documentation site (mkdocs.yml, docs/) built strictly: a broken link or any
## other warning fails; the site goes to site/ (ignored).
docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

## make test: the whole suite once per database - SQLite (unit, end-to-end, browser), then
## PostgreSQL (unit, end-to-end). The built wheel across Pythons and Djangos is `make test-matrix`.
test: test-sqlite test-postgres

# Each stage says what it runs before its dots, and -rs lists every skipped test with its reason.
test-sqlite: venv
	@echo "== make test-sqlite: unit, end-to-end and browser tests on SQLite =="
	@if command -v chromium >/dev/null 2>&1; then $(PYTEST) -q -rs; \
	elif [ -n "$$CI" ]; then echo "test-sqlite: chromium is missing (apt-get install chromium)" >&2; exit 1; \
	else echo "test-sqlite: no chromium: the browser tests are SKIPPED (apt-get install chromium runs them)" >&2; \
	  $(PYTEST) -q -rs -m "not browser"; fi

test-postgres: venv
	@echo "== make test-postgres: unit and end-to-end tests on PostgreSQL ($(PGHOST):$(PGPORT)) =="
	@if $(VENV_PYTHON) -c "import psycopg; psycopg.connect(host='$(PGHOST)', port='$(PGPORT)', user='$(PGUSER)', dbname='postgres', connect_timeout=3).close()" 2>/dev/null; then \
	  TEST_DB=postgres $(PYTEST) -q -rs -m "not browser"; \
	elif [ -n "$$CI" ]; then echo "test-postgres: no PostgreSQL answers on $(PGHOST):$(PGPORT)" >&2; exit 1; \
	else echo "test-postgres: SKIPPED, no PostgreSQL answers on $(PGHOST):$(PGPORT) (start one, or set PGHOST/PGPORT/PGUSER)" >&2; fi

## make test-matrix: CI's subset of the wheel x Python x Django matrix (noxfile.py; `nox` alone
## runs all of it); .ci/run runs it after `make test`.
test-matrix: venv
	@echo "== make test-matrix: the built wheel, newest Django, SQLite and PostgreSQL, downstream typing (nox -s ci) =="
	$(VENV_PYTHON) -m nox -s ci -- -rs

## make demo: a virtualenv with the package and the local gateway, the demo project, both servers.
demo:
	@$(PYTHON) example/run_demo.py --check-ports
	test -x $(DEMO_VENV)/bin/python || $(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install -q --disable-pip-version-check -e ".[local]"
	$(DEMO_VENV)/bin/python example/run_demo.py

## make bench: broadcast, serial baseline, gateway relay, query counts, subscriptions -> bench/results/latest.json;
## then $connect/message/$disconnect through gunicorn + PostgreSQL, this package against the 4.1.0
## wheel in the same run -> bench/results/connect-latest.json
bench: venv
	$(VENV_PYTHON) bench/run.py
	$(VENV_PYTHON) bench/connect.py
	$(VENV_PYTHON) bench/history.py
	$(VENV_PYTHON) bench/large_messages.py

## make bench-connect: only the $connect/message/$disconnect comparison
bench-connect: venv
	$(VENV_PYTHON) bench/connect.py
