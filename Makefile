# The two commands of the README: `make demo` and `make test`. Both build .venv from plain python3.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo bench lint lock clean services

$(STAMP): pyproject.toml requirements-lock.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv
	# uv installs the pinned lock (all of Airflow's tree) in seconds; pip would take minutes.
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements-lock.txt -e .
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint services
	$(BIN)/pytest

# Services the tests start on loopback ports of their own: Redis, the Celery broker of the CeleryExecutor test.
# Installed from Debian's packages when missing (CI runs as root); elsewhere that test skips and says why.
services:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server; \
	  else \
	    echo "redis-server is missing and cannot be installed here (needs apt-get as root): the CeleryExecutor test will skip"; \
	  fi; }

demo: $(STAMP)
	$(BIN)/python demo/run_demo.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_upload.py $(BENCH_ARGS)

# Re-pin the dependency tree after changing pyproject.toml.
lock:
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 -o requirements-lock.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
