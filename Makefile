# The two set-up commands of the README: `make demo` and `make test`. Both set up .venv first.
PY := .venv/bin/python
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: setup demo test lint unit e2e bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) -m meshward.cli.main demo $(DEMO_ARGS)

lint: setup
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
	.venv/bin/mypy
	.venv/bin/lint-imports

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	$(PY) bench/dataplane.py
	$(PY) bench/controlplane.py

clean:
	rm -rf .venv .meshward .pytest_cache .mypy_cache .ruff_cache
