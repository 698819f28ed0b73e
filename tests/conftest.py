"""Test session set-up: a private AIRFLOW_HOME on sqlite, before anything imports Airflow."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).parent
DAGS_DIR = TESTS_DIR / "dags"

_home = Path(tempfile.mkdtemp(prefix="omics-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_home)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_DIR)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_home}/airflow.db"
os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] = str(_home / "logs")
# Clients built by libraries we do not configure (AWS's uploader) must not prepend host prefixes.
os.environ.setdefault("AWS_DISABLE_HOST_PREFIX_INJECTION", "true")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
for _var in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the sqlite metadata database once per session; returns AIRFLOW_HOME."""
    from airflow.utils.db import resetdb

    resetdb(skip_init=False)
    return _home
