PY ?= .venv/bin/python
VENV_BIN = $(dir $(PY))

.PHONY: install test lint typecheck pytest bench demo

install:
	python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q -e '.[dev]'

lint:
	$(VENV_BIN)ruff check src tests bench

typecheck:
	$(VENV_BIN)mypy

pytest:
	$(VENV_BIN)pytest -q -p no:cacheprovider $(PYTEST_ARGS)

## The whole suite: lint, types, tests (DATABASE_URL if set, else an embedded PostgreSQL).
test: lint typecheck pytest

bench:
	$(PY) -m bench.run $(BENCH_ARGS)

demo:
	$(VENV_BIN)atlas-compliance demo
