"""Test session set-up: a private AIRFLOW_HOME on sqlite, before anything imports Airflow."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from tests.helpers import use_omics_connection

if TYPE_CHECKING:
    from airflow_provider_omics.testing import OmicsEmulator

TESTS_DIR = Path(__file__).parent
DAGS_DIR = TESTS_DIR / "dags"
EXAMPLE_DAGS_DIR = TESTS_DIR.parent / "example_dags"

_home = Path(tempfile.mkdtemp(prefix="omics-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_home)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_DIR)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
# Read without importing Airflow: its configuration is read at import, from the variables set here.
AIRFLOW_2 = int(importlib.metadata.version("apache-airflow").split(".")[0]) < 3
if AIRFLOW_2:
    # Airflow 2's unit-test configuration names the LocalExecutor, which refuses sqlite (a sensor in reschedule
    # mode asks the executor); Airflow 3 runs the LocalExecutor on sqlite.
    os.environ["AIRFLOW__CORE__EXECUTOR"] = "SequentialExecutor"
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
    if AIRFLOW_2:
        # Airflow 2's dag.test() does not write the DAG to the database, and an event emitted through a dataset
        # alias needs the alias there: record the DAG files once, as the scheduler's DAG processor would.
        from tests.compat import dag_bag

        for folder in (DAGS_DIR, EXAMPLE_DAGS_DIR):
            bag = dag_bag(dag_folder=str(folder), include_examples=False)
            assert not bag.import_errors, bag.import_errors
            bag.sync_to_db()
    return _home


@pytest.fixture(autouse=True)
def _task_logs_reach_this_tests_output() -> Iterator[None]:
    """Airflow 2's ``dag.test()`` prints task logs through a plain StreamHandler it adds to the ``airflow.task``
    logger once per process, bound to ``sys.stdout`` as it is then (one test's captured output, or a module
    fixture's): each test starts without one, so that its ``dag.test()`` prints into the test's own output."""
    import logging

    logger = logging.getLogger("airflow.task")

    def drop_dag_test_handlers() -> None:
        for handler in [h for h in logger.handlers if type(h) is logging.StreamHandler]:
            logger.removeHandler(handler)

    if not AIRFLOW_2:
        yield
        return
    drop_dag_test_handlers()
    yield
    drop_dag_test_handlers()


# The emulator every test gets unless it asks otherwise: a short activation, so read sets become ACTIVE quickly.
EMULATOR_SETTINGS: dict[str, Any] = {"activation_delay": 0.05}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "emulator_reads_s3: the module's ``emulator`` runs import jobs at once, reading moto's S3 server"
    )


@contextlib.contextmanager
def _emulators(request: pytest.FixtureRequest) -> Iterator[Callable[..., OmicsEmulator]]:
    """A factory of running emulators, all closed on exit. ``make(**settings)`` starts one with
    ``EMULATOR_SETTINGS`` updated by ``settings``; with ``reads_s3=True`` its import jobs start at once and read
    their objects from moto's S3 server (``s3_server``)."""
    from airflow_provider_omics.testing import OmicsEmulator

    with contextlib.ExitStack() as stack:

        def make(*, reads_s3: bool = False, **settings: Any) -> OmicsEmulator:
            if reads_s3:
                settings = {"import_job_delay": 0, "s3_endpoint_url": request.getfixturevalue("s3_server"), **settings}
            return stack.enter_context(OmicsEmulator(**{**EMULATOR_SETTINGS, **settings}))

        yield make


@pytest.fixture
def make_emulator(request: pytest.FixtureRequest) -> Iterator[Callable[..., OmicsEmulator]]:
    """Emulators of the test's own: ``make_emulator(**settings)`` starts one (see :func:`_emulators`), and every
    one it started is closed after the test."""
    with _emulators(request) as make:
        yield make


@pytest.fixture(scope="module")
def emulator(request: pytest.FixtureRequest) -> Iterator[OmicsEmulator]:
    """One emulator per test module, on a free port; in a module marked ``emulator_reads_s3``, one whose import
    jobs read moto's S3 server."""
    with _emulators(request) as make:
        yield make(reads_s3=request.node.get_closest_marker("emulator_reads_s3") is not None)


@pytest.fixture
def own_emulator(make_emulator: Callable[..., OmicsEmulator], monkeypatch: pytest.MonkeyPatch) -> OmicsEmulator:
    """An emulator of the test's own and the ``omics_test`` connection to it: faults injected and holds left by
    one test never reach another."""
    emu = make_emulator()
    use_omics_connection(monkeypatch, emu.endpoint_url)
    return emu


@pytest.fixture
def omics_conn(emulator: OmicsEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """The connection as users define it: an AIRFLOW_CONN_ variable with the endpoint in its extra."""
    return use_omics_connection(monkeypatch, emulator.endpoint_url)


@pytest.fixture
def store_id(emulator: OmicsEmulator) -> str:
    return emulator.client().create_sequence_store(name=f"store-{time.monotonic_ns()}")["id"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_staging(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A staging bucket on moto's S3 server, and the ``s3_staging`` connection that reads it."""
    extra = {"endpoint_url": s3_server, "region_name": "us-east-1"}
    monkeypatch.setenv("AIRFLOW_CONN_S3_STAGING", json.dumps({"conn_type": "aws", "extra": extra}))
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    bucket = f"staging-{time.monotonic_ns()}"
    s3.create_bucket(Bucket=bucket)
    return SimpleNamespace(client=s3, bucket=bucket, endpoint_url=s3_server)


@pytest.fixture(autouse=True)
def _operator_links_stay_loadable() -> Iterator[None]:
    """Some of Airflow's own code paths (clearing, deferring and resuming a task) deserialize DAGs without
    operator links by setting a class-wide switch, and leave it set for the whole process: put it back after every
    test, so that a DAG deserialized later (the UI's view, tests/test_links.py) keeps its links."""
    yield
    if "airflow.serialization.serialized_objects" in sys.modules:
        from tests.compat import serialization_classes

        dag_serialization, operator_serialization = serialization_classes()
        dag_serialization._load_operator_extra_links = True
        operator_serialization._load_operator_extra_links = True
