# The two commands of the README: `make demo` and `make test`. Both build .venv from plain python3.
#
# AIRFLOW=2.11 or AIRFLOW=3.0 (the Airflow releases Amazon MWAA runs) selects that release's lock and venv instead:
# `make demo AIRFLOW=3.0` runs the demo in .venv-airflow-3.0, `make test-compat AIRFLOW=3.0` the compat suite there.
PYTHON ?= python3
# The Airflow releases proven besides the newest, each with requirements-lock-airflow-<release>.txt.
COMPAT_AIRFLOW := 2.11 3.0
AIRFLOW ?=
ifeq ($(AIRFLOW),)
VENV ?= .venv
LOCK := requirements-lock.txt
else
ifeq ($(filter $(AIRFLOW),$(COMPAT_AIRFLOW)),)
$(error AIRFLOW=$(AIRFLOW) has no lock: use one of $(COMPAT_AIRFLOW), or leave AIRFLOW unset for the newest)
endif
VENV ?= .venv-airflow-$(AIRFLOW)
LOCK := requirements-lock-airflow-$(AIRFLOW).txt
endif
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The suite's processes: one per core (pytest-xdist); PYTEST_WORKERS=0 runs it in this process.
PYTEST_WORKERS ?= auto

.PHONY: test test-compat demo ui bench lint lock clean services

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv
	# uv installs the pinned lock (all of Airflow's tree) in seconds; pip would take minutes.
	$(BIN)/uv pip install -q --python $(BIN)/python -r $(LOCK) -e .
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The releases whose compat suite and demo make test runs: the Airflow 3 and 2 releases Amazon MWAA runs.
TEST_COMPAT_AIRFLOW := 3.0 2.11

# The whole suite on the newest Airflow, then the compat suite and the demo on each release above.
test: lint services
	$(BIN)/pytest -n $(PYTEST_WORKERS)
	@for release in $(TEST_COMPAT_AIRFLOW); do $(MAKE) --no-print-directory test-compat AIRFLOW=$$release || exit 1; done

# The compat suite (tests marked `compat`) and the demo on one Airflow release: AIRFLOW=2.11 or AIRFLOW=3.0.
test-compat: $(STAMP)
	@test -n "$(AIRFLOW)" || { echo "make test-compat needs AIRFLOW=<release>: one of $(COMPAT_AIRFLOW)"; exit 2; }
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m compat
	$(BIN)/python demo/run_demo.py

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

# A working Airflow UI on the emulator, on http://127.0.0.1:8080 (UI_ARGS="--port 0": a free port); Ctrl-C stops it.
ui: $(STAMP)
	$(BIN)/python scripts/ui.py $(UI_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_upload.py $(BENCH_ARGS)

# Re-pin the dependency tree after changing pyproject.toml: `make lock`, then `make lock AIRFLOW=2.11` and
# `make lock AIRFLOW=3.0`. An existing lock's pins are kept where they still fit (uv's preferences).
# A release's lock is resolved as of the day after that Airflow release (what worked with it then), except the
# AWS packages and the providers this package builds on, resolved as of LOCK_AWS_DATE.
LOCK_AS_OF_2.11 := 2025-05-27
LOCK_AS_OF_3.0 := 2025-09-05
LOCK_AWS_DATE := 2026-11-01
LOCK_AWS_PACKAGES := apache-airflow-providers-amazon apache-airflow-providers-common-compat \
  apache-airflow-providers-common-sql sagemaker-studio boto3 botocore aiobotocore s3transfer aws-healthomics-tools
# aws-healthomics-tools (a test extra) needs a pillow newer than May 2025's.
LOCK_AWS_PACKAGES_2.11 := pillow
# uv from the newest's .venv for every lock (the target installs nothing, in no venv).
UV := .venv/bin/uv
lock:
	@test -x $(UV) || { echo "make lock needs $(UV): run make demo or make test first"; exit 2; }
ifeq ($(AIRFLOW),)
	$(UV) pip compile pyproject.toml --extra test --python-version 3.11 -o requirements-lock.txt
else
	$(UV) pip compile pyproject.toml --extra test -c requirements-airflow-$(AIRFLOW).in --python-version 3.11 \
	  --exclude-newer $(LOCK_AS_OF_$(AIRFLOW)) \
	  $(foreach package,$(LOCK_AWS_PACKAGES) $(LOCK_AWS_PACKAGES_$(AIRFLOW)),--exclude-newer-package $(package)=$(LOCK_AWS_DATE)) \
	  -o $(LOCK)
endif

clean:
	rm -rf .venv $(foreach release,$(COMPAT_AIRFLOW),.venv-airflow-$(release)) .pytest_cache .mypy_cache .ruff_cache
