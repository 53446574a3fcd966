PY ?= .venv/bin/python
VENV_BIN = $(dir $(PY))

.PHONY: install test lint typecheck pytest bench load demo screenshots

# A fresh checkout installs itself on first use (Python 3.11+).
.venv/bin/atlas-compliance: pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q -e '.[dev]'
	touch $@

install: .venv/bin/atlas-compliance

lint:
	$(VENV_BIN)ruff check src tests bench tools

typecheck:
	$(VENV_BIN)mypy

pytest:
	$(VENV_BIN)pytest -q -p no:cacheprovider $(PYTEST_ARGS) tests
	$(VENV_BIN)pytest -q -p no:cacheprovider --doctest-modules src/atlas_compliance --ignore=src/atlas_compliance/db/migrations

## The whole suite: lint, types, tests (DATABASE_URL if set, else an embedded PostgreSQL).
test: install lint typecheck pytest

bench: install
	$(PY) -m bench.run $(BENCH_ARGS)

## The load test: 20 report users with CSV exports and continuous ingest for 60 s (docs/RELIABILITY.md).
load: install
	$(PY) -m bench.load $(LOAD_ARGS)

## The product: the Acme Health demo on the embedded PostgreSQL, serving the console and API.
demo: install
	$(VENV_BIN)atlas-compliance demo

## The four console screenshots in docs/screenshots/, taken from the demo data (needs /usr/bin/chromium).
screenshots: install
	$(PY) -m tools.screenshots $(SCREENSHOT_ARGS)
