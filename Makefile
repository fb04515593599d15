PYTHON ?= python3
PYTEST ?= $(PYTHON) -m pytest
# A PostgreSQL server to test against (trust auth by default, as on CI).
export PGHOST ?= 127.0.0.1
export PGPORT ?= 5432
export PGUSER ?= postgres
# Django 6.x needs Python 3.12+: the unit tests run once more in their own virtualenv.
PYTHON_DJANGO6 ?= $(shell for p in $$HOME/.pyenv/versions/3.1[23]*/bin/python python3.13 python3.12; do \
	$$p -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null && echo $$p && break; done)
DJANGO6_VENV ?= .venv-django6
DEMO_VENV ?= .venv-demo

.PHONY: test test-sqlite test-postgres test-django6 demo bench

## make test: the whole suite - SQLite (unit, end-to-end, browser), PostgreSQL (unit, end-to-end),
## then the unit tests on Django 6.x.
test: test-sqlite test-postgres test-django6

test-sqlite:
	$(PYTEST) -q

test-postgres:
	TEST_DB=postgres $(PYTEST) -q -m "not browser"

test-django6:
	@if [ -z "$(PYTHON_DJANGO6)" ]; then echo "test-django6: SKIPPED, no Python 3.12+ found (set PYTHON_DJANGO6)" >&2; exit 0; fi; \
	test -x $(DJANGO6_VENV)/bin/python || $(PYTHON_DJANGO6) -m venv $(DJANGO6_VENV); \
	$(DJANGO6_VENV)/bin/python -m pip install -q --disable-pip-version-check -e ".[test,local]" "Django>=6.0,<7" && \
	$(DJANGO6_VENV)/bin/python -m pytest -q -m "not browser and not e2e" -p no:cacheprovider

## make demo: a virtualenv with the package and the local gateway, the demo project, both servers.
demo:
	test -x $(DEMO_VENV)/bin/python || $(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install -q --disable-pip-version-check -e ".[local]"
	$(DEMO_VENV)/bin/python example/run_demo.py

## make bench: broadcast, serial baseline, gateway relay, query counts -> bench/results/latest.json
bench:
	$(PYTHON) bench/run.py
