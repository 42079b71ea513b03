# Two commands do all setup on a fresh machine (Python 3.10+ with venv):
#   make demo   installs into .venv and runs the offline demo (no broker, SQLite)
#   make test   installs into .venv (with test extras) and runs the test suite
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed
# Two pytest-xdist workers, each running whole modules (their module fixtures once), slow ones first
# (tests/conftest.py); `make test PYTEST_WORKERS=` runs everything in one process.
PYTEST_WORKERS ?= -n 2 --dist loadfile --no-loadscope-reorder

.PHONY: demo test lint install bench clean wheelhouse compose-smoke

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tiktok-tracker demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_WORKERS) -ra --durations=25 $(PYTEST_ARGS)

# Lint, format and types (pyproject.toml: [tool.ruff], [tool.mypy]); .ci/run runs it before the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check workers
	$(VENV)/bin/ruff format --check workers
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(VENV)/bin/python -m pip install -q -e '.[test,bench]'
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)

# Wheels for offline image builds (infra/wheelhouse/); then the compose stack run for
# real on the seed videos (root, Docker; docs/pipeline.md, "With Docker Compose").
wheelhouse:
	infra/wheelhouse.sh $(WHEELHOUSE_EXTRA)

compose-smoke:
	infra/compose-smoke.sh $(SMOKE_ARGS)

clean:
	rm -rf $(VENV) data .pytest_cache
