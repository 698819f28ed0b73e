"""The read_set_active waiter, OmicsReadSetStatusSensor and OmicsReadSetActiveTrigger against the emulator.

Everything talks to a real HTTP emulator through the real boto3 (blocking) and aiobotocore (deferred) clients
that OmicsHook builds from an Airflow AWS connection. What a first look at a new read set sees is decided by the
emulator's activation hold (:func:`first_look_sees_processing`), never by the activation being slower than the
code under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from botocore.exceptions import WaiterError
from botocore.waiter import WaiterModel

import airflow_provider_omics
from airflow_provider_omics.hooks.omics import OmicsHook
from airflow_provider_omics.links.omics import OmicsReadSetLink
from airflow_provider_omics.sensors.omics import OmicsReadSetStatusSensor
from airflow_provider_omics.testing import OmicsEmulator
from airflow_provider_omics.triggers.omics import OmicsReadSetActiveTrigger
from airflow_provider_omics.version_compat import AIRFLOW_V_3_1_PLUS
from tests.compat import dag_test, rendered_link
from tests.helpers import CONN_ID, console_words, use_omics_connection

WAITER_JSON = Path(airflow_provider_omics.__file__).parent / "waiters" / "omics.json"
DAG_FILE = Path(__file__).parent / "dags" / "sensor_omics.py"
GOOD_FASTQ = b"@r1\nACGT\n+\nIIII\n"
BAD_FASTQ = b"not a fastq\n"


@pytest.fixture(scope="module")
def store_id(emulator: OmicsEmulator) -> str:
    return emulator.client().create_sequence_store(name="sensor-tests")["id"]


@pytest.fixture(scope="module", autouse=True)
def omics_conn(emulator: OmicsEmulator) -> Iterator[None]:
    """The AWS connection the way users define one, pointing at the module's emulator, for the whole module."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_omics_connection(monkeypatch, emulator.endpoint_url)
        yield


def new_read_set(emulator: OmicsEmulator, store_id: str, payload: bytes) -> str:
    """Upload ``payload`` as a one-part FASTQ read set; returns its id (status PROCESSING_UPLOAD)."""
    client = emulator.client()
    upload_id = client.create_multipart_read_set_upload(
        sequenceStoreId=store_id, sourceFileType="FASTQ", subjectId="subject", sampleId="sample", name="rs"
    )["uploadId"]
    checksum = client.upload_read_set_part(
        sequenceStoreId=store_id, uploadId=upload_id, partSource="SOURCE1", partNumber=1, payload=payload
    )["checksum"]
    return client.complete_multipart_read_set_upload(
        sequenceStoreId=store_id,
        uploadId=upload_id,
        parts=[{"partNumber": 1, "partSource": "SOURCE1", "checksum": checksum}],
    )["readSetId"]


@contextlib.contextmanager
def first_look_sees_processing(emulator: OmicsEmulator) -> Iterator[None]:
    """Read sets completed in this block stay PROCESSING_UPLOAD until GetReadSetMetadata has answered that once,
    then activate: the first look sees PROCESSING_UPLOAD and every later look may see the final status."""
    emulator.hold_activations(release_after_reads=1)
    try:
        yield
    finally:
        # The emulator is shared by the module: a failed test must not leave read sets held.
        emulator.release_activations()


def settled_status(emulator: OmicsEmulator, store_id: str, read_set_id: str) -> dict[str, Any]:
    """Wait (bounded) until the read set has left PROCESSING_UPLOAD; returns its metadata."""
    deadline = time.monotonic() + 30
    while True:
        metadata = emulator.client().get_read_set_metadata(sequenceStoreId=store_id, id=read_set_id)
        if metadata["status"] != "PROCESSING_UPLOAD" or time.monotonic() > deadline:
            return metadata
        time.sleep(0.1)


@pytest.fixture(scope="module")
def settled(emulator: OmicsEmulator, store_id: str) -> dict[str, str]:
    """One read set that has become ACTIVE and one that has become UPLOAD_FAILED, by final status."""
    read_set_ids = [new_read_set(emulator, store_id, payload) for payload in (GOOD_FASTQ, BAD_FASTQ)]
    by_status = {settled_status(emulator, store_id, rs)["status"]: rs for rs in read_set_ids}
    assert set(by_status) == {"ACTIVE", "UPLOAD_FAILED"}
    return by_status


def make_sensor(store_id: str, read_set_id: str, **kwargs: Any) -> OmicsReadSetStatusSensor:
    return OmicsReadSetStatusSensor(
        task_id="wait_active",
        sequence_store_id=store_id,
        read_set_id=read_set_id,
        aws_conn_id=CONN_ID,
        **kwargs,
    )


class RecordingTI:
    """Just enough of a task instance for BaseAwsLink.persist: records what it pushes to XCom."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


# -- the waiter ----------------------------------------------------------------------------------------------


def test_waiter_json_is_a_botocore_waiter_on_get_read_set_metadata() -> None:
    model = WaiterModel(json.loads(WAITER_JSON.read_text()))
    assert model.waiter_names == ["read_set_active", "read_set_import_job_complete"]
    waiter = model.get_waiter("read_set_active")
    assert waiter.operation == "GetReadSetMetadata"
    by_state: dict[str, set[str]] = {}
    for acceptor in waiter.acceptors:
        assert (acceptor.matcher, acceptor.argument) == ("path", "status")
        by_state.setdefault(acceptor.state, set()).add(acceptor.expected)
    assert by_state["success"] == {"ACTIVE"}
    assert by_state["failure"] == {"UPLOAD_FAILED", "DELETING", "DELETED", "ARCHIVED"}
    assert by_state["retry"] == {"PROCESSING_UPLOAD", "ACTIVATING"}
    # Every status the service model knows is handled explicitly.
    service_model = OmicsHook(aws_conn_id=CONN_ID).conn.meta.service_model
    output_shape = service_model.operation_model("GetReadSetMetadata").output_shape
    assert output_shape is not None
    status_enum = getattr(output_shape.members["status"], "enum", [])
    assert set(status_enum) == set().union(*by_state.values())


def test_the_import_job_waiter_handles_every_job_status() -> None:
    model = WaiterModel(json.loads(WAITER_JSON.read_text()))
    waiter = model.get_waiter("read_set_import_job_complete")
    assert waiter.operation == "GetReadSetImportJob"
    by_state: dict[str, set[str]] = {}
    for acceptor in waiter.acceptors:
        assert (acceptor.matcher, acceptor.argument) == ("path", "status")
        by_state.setdefault(acceptor.state, set()).add(acceptor.expected)
    # Finished, with or without failed sources: the operator then reads each source's outcome.
    assert by_state["success"] == {"COMPLETED", "COMPLETED_WITH_FAILURES"}
    assert by_state["failure"] == {"FAILED", "CANCELLED"}
    assert by_state["retry"] == {"SUBMITTED", "IN_PROGRESS", "CANCELLING"}
    service_model = OmicsHook(aws_conn_id=CONN_ID).conn.meta.service_model
    output_shape = service_model.operation_model("GetReadSetImportJob").output_shape
    assert output_shape is not None
    assert set(output_shape.members["status"].enum) == set().union(*by_state.values())


def test_blocking_waiter_waits_until_active(emulator: OmicsEmulator, store_id: str) -> None:
    hook = OmicsHook(aws_conn_id=CONN_ID)
    assert "read_set_active" in hook.list_waiters()
    with first_look_sees_processing(emulator):
        read_set_id = new_read_set(emulator, store_id, GOOD_FASTQ)
        assert hook.get_read_set_metadata(store_id, read_set_id)["status"] == "PROCESSING_UPLOAD"

        hook.get_waiter("read_set_active").wait(
            sequenceStoreId=store_id, id=read_set_id, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50}
        )

    assert hook.get_read_set_metadata(store_id, read_set_id)["status"] == "ACTIVE"


def test_blocking_waiter_fails_on_upload_failed(store_id: str, settled: dict[str, str]) -> None:
    read_set_id = settled["UPLOAD_FAILED"]
    waiter = OmicsHook(aws_conn_id=CONN_ID).get_waiter("read_set_active")

    with pytest.raises(WaiterError, match="terminal failure") as excinfo:
        waiter.wait(sequenceStoreId=store_id, id=read_set_id, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})

    last_response: dict[str, Any] = dict(excinfo.value.last_response)
    assert last_response["status"] == "UPLOAD_FAILED"
    assert last_response["statusMessage"]


# -- the sensor, blocking ------------------------------------------------------------------------------------


def test_poke_is_false_while_processing_then_true_once_active(emulator: OmicsEmulator, store_id: str) -> None:
    with first_look_sees_processing(emulator):
        read_set_id = new_read_set(emulator, store_id, GOOD_FASTQ)
        sensor = make_sensor(store_id, read_set_id)

        assert sensor.poke({}) is False

    assert settled_status(emulator, store_id, read_set_id)["status"] == "ACTIVE"
    assert sensor.poke({}) is True


def test_poke_fails_with_the_status_message_on_upload_failed(
    emulator: OmicsEmulator, store_id: str, settled: dict[str, str]
) -> None:
    read_set_id = settled["UPLOAD_FAILED"]
    sensor = make_sensor(store_id, read_set_id)
    metadata = settled_status(emulator, store_id, read_set_id)

    # AirflowFailException: a retry cannot turn a failed upload into an ACTIVE read set.
    with pytest.raises(AirflowFailException, match="UPLOAD_FAILED") as excinfo:
        sensor.poke({})
    assert metadata["statusMessage"] in str(excinfo.value)
    assert read_set_id in str(excinfo.value)


def test_poke_fails_for_a_read_set_that_does_not_exist(store_id: str) -> None:
    sensor = make_sensor(store_id, "1234567890")
    with pytest.raises(Exception, match="ResourceNotFoundException"):
        sensor.poke({})


def test_waiter_parameters_set_the_blocking_cadence_and_patience() -> None:
    sensor = make_sensor("1234567890", "2345678901", waiter_delay=5, waiter_max_attempts=12)
    assert (sensor.poke_interval, sensor.timeout) == (5, 60)
    explicit = make_sensor("1234567890", "2345678901", waiter_delay=5, poke_interval=7, timeout=99)
    assert (explicit.poke_interval, explicit.timeout) == (7, 99)


# -- the sensor, deferred ------------------------------------------------------------------------------------


def test_deferrable_execute_defers_to_the_trigger_while_processing(emulator: OmicsEmulator, store_id: str) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    with first_look_sees_processing(emulator):
        read_set_id = new_read_set(emulator, store_id, GOOD_FASTQ)
        sensor = make_sensor(store_id, read_set_id, deferrable=True, waiter_delay=2, waiter_max_attempts=9)
        ti = RecordingTI()

        with pytest.raises(TaskDeferred) as excinfo:
            sensor.execute({"ti": ti})  # type: ignore[typeddict-item]

    trigger = excinfo.value.trigger
    assert isinstance(trigger, OmicsReadSetActiveTrigger)
    assert excinfo.value.method_name == "execute_complete"
    assert (trigger.sequence_store_id, trigger.read_set_id) == (store_id, read_set_id)
    assert (trigger.waiter_delay, trigger.attempts, trigger.aws_conn_id) == (2, 9, CONN_ID)
    assert ti.pushed[OmicsReadSetLink.key] == {
        "region_name": "us-east-1",
        "aws_domain": "aws.amazon.com",
        "sequence_store_id": store_id,
        "read_set_id": read_set_id,
    }


def test_deferrable_execute_returns_without_deferring_when_already_active(
    store_id: str, settled: dict[str, str]
) -> None:
    sensor = make_sensor(store_id, settled["ACTIVE"], deferrable=True)
    ti = RecordingTI()

    sensor.execute({"ti": ti})  # type: ignore[typeddict-item]

    assert ti.pushed[OmicsReadSetLink.key]["read_set_id"] == settled["ACTIVE"]


def first_event(trigger: OmicsReadSetActiveTrigger) -> dict[str, Any]:
    """Run the trigger as the triggerer does, up to the event it fires."""

    async def run() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(run())


def trigger_for(store_id: str, read_set_id: str, **kwargs: Any) -> OmicsReadSetActiveTrigger:
    defaults: dict[str, Any] = {"waiter_delay": 0.2, "waiter_max_attempts": 50, "aws_conn_id": CONN_ID}
    return OmicsReadSetActiveTrigger(sequence_store_id=store_id, read_set_id=read_set_id, **defaults | kwargs)


def test_trigger_serializes_and_round_trips() -> None:
    trigger = OmicsReadSetActiveTrigger(
        sequence_store_id="1234567890",
        read_set_id="2345678901",
        waiter_delay=7,
        waiter_max_attempts=11,
        aws_conn_id=CONN_ID,
        region_name="eu-west-1",
        botocore_config={"retries": {"max_attempts": 3}},
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_omics.triggers.omics.OmicsReadSetActiveTrigger"
    assert kwargs == {
        "sequence_store_id": "1234567890",
        "read_set_id": "2345678901",
        "waiter_delay": 7,
        "waiter_max_attempts": 11,
        "aws_conn_id": CONN_ID,
        "region_name": "eu-west-1",
        "botocore_config": {"retries": {"max_attempts": 3}},
    }
    assert OmicsReadSetActiveTrigger(**kwargs).serialize() == (classpath, kwargs)
    hook = trigger.hook()
    assert isinstance(hook, OmicsHook)
    assert (hook.aws_conn_id, hook.region_name) == (CONN_ID, "eu-west-1")


def test_trigger_fires_success_once_active(emulator: OmicsEmulator, store_id: str) -> None:
    with first_look_sees_processing(emulator):  # the trigger waits at least once
        read_set_id = new_read_set(emulator, store_id, GOOD_FASTQ)

        event = first_event(trigger_for(store_id, read_set_id))

    assert event == {"status": "success", "read_set_id": read_set_id}
    assert emulator.client().get_read_set_metadata(sequenceStoreId=store_id, id=read_set_id)["status"] == ("ACTIVE")
    make_sensor(store_id, read_set_id, deferrable=True).execute_complete({}, event)


def test_trigger_fires_error_with_the_status_message_on_upload_failed(emulator: OmicsEmulator, store_id: str) -> None:
    with first_look_sees_processing(emulator):  # the trigger waits at least once
        read_set_id = new_read_set(emulator, store_id, BAD_FASTQ)

        event = first_event(trigger_for(store_id, read_set_id))

    status_message = settled_status(emulator, store_id, read_set_id)["statusMessage"]
    assert event["status"] == "error"
    assert event["read_set_id"] == read_set_id
    assert (event["read_set_status"], event["status_message"]) == ("UPLOAD_FAILED", status_message)
    assert "UPLOAD_FAILED" in event["message"]
    assert status_message in event["message"]
    json.dumps(event)  # events travel through the metadata database

    with pytest.raises(AirflowFailException, match="UPLOAD_FAILED") as excinfo:
        make_sensor(store_id, read_set_id, deferrable=True).execute_complete({}, event)
    assert status_message in str(excinfo.value)


def test_trigger_fires_error_when_attempts_run_out(emulator: OmicsEmulator, store_id: str) -> None:
    with first_look_sees_processing(emulator):  # the only attempt sees PROCESSING_UPLOAD
        read_set_id = new_read_set(emulator, store_id, GOOD_FASTQ)

        event = first_event(trigger_for(store_id, read_set_id, waiter_delay=0, waiter_max_attempts=1))

    assert event["status"] == "error"
    assert "max attempts" in event["message"]
    assert "read_set_status" not in event
    # Not a terminal status: a plain (retryable) failure, not AirflowFailException.
    with pytest.raises(AirflowException, match="max attempts") as excinfo:
        make_sensor(store_id, read_set_id, deferrable=True).execute_complete({}, event)
    assert not isinstance(excinfo.value, AirflowFailException)


def test_execute_complete_rejects_a_missing_event() -> None:
    with pytest.raises(AirflowException, match="event is None"):
        make_sensor("1234567890", "2345678901").execute_complete({}, None)


# -- the sensor in a DAG run ---------------------------------------------------------------------------------


def load_dag_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sensor_omics", DAG_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_sensor_dag(deferrable: bool, store_id: str, read_set_id: str) -> tuple[Any, Any]:
    """Run the sensor DAG with ``dag.test()``; returns the DAG run and the sensor's task instance."""
    module = load_dag_module()
    dag = getattr(module, module.SENSOR_DAG_IDS[deferrable])
    dag_run = dag_test(dag, {"sequence_store_id": store_id, "read_set_id": read_set_id})
    (ti,) = dag_run.get_task_instances()
    return dag_run, ti


def sensor_task(deferrable: bool) -> Any:
    module = load_dag_module()
    return getattr(module, module.SENSOR_DAG_IDS[deferrable]).get_task("wait_active")


@pytest.fixture(scope="module")
def sensor_dags_synced(airflow_db: Path, omics_conn: None, store_id: str, settled: dict[str, str]) -> None:
    """Pay once for the first ``dag.test()`` (it parses the whole DAGs folder into the database), and see that
    a read set that is ACTIVE already lets the sensor DAG succeed at its first look."""
    dag_run, _ = run_sensor_dag(False, store_id, settled["ACTIVE"])
    assert dag_run.state == "success"


def deferred_to_triggers(read_set_id: str) -> list[dict[str, Any]]:
    """The read set's part of each OmicsReadSetActiveTrigger that a task deferred to for ``read_set_id``."""
    from tests.compat import deferred_triggers

    return [
        {"sequence_store_id": kw["sequence_store_id"], "read_set_id": kw["read_set_id"]}
        for kw in deferred_triggers(OmicsReadSetActiveTrigger)
        if kw["read_set_id"] == read_set_id
    ]


@pytest.mark.compat
@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_dag_run_succeeds_once_the_read_set_is_active(
    sensor_dags_synced: None,
    emulator: OmicsEmulator,
    store_id: str,
    deferrable: bool,
) -> None:
    # The sensor's first look sees PROCESSING_UPLOAD: it waits (pokes again, or defers to the trigger).
    with first_look_sees_processing(emulator):
        read_set_id = new_read_set(emulator, store_id, GOOD_FASTQ)

        dag_run, ti = run_sensor_dag(deferrable, store_id, read_set_id)

    assert (dag_run.state, ti.state) == ("success", "success")
    assert ti.try_number == 1
    if deferrable:
        assert deferred_to_triggers(read_set_id) == [{"sequence_store_id": store_id, "read_set_id": read_set_id}]
    # What the UI shows.
    assert rendered_link(OmicsReadSetLink(), sensor_task(deferrable), ti) == (
        f"https://console.aws.amazon.com/omics/home?region=us-east-1#/sequenceStore/{store_id}/readSet/{read_set_id}"
    )


@pytest.mark.compat
@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_dag_run_fails_without_retry_on_upload_failed(
    sensor_dags_synced: None,
    emulator: OmicsEmulator,
    store_id: str,
    deferrable: bool,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # The sensor's first look sees PROCESSING_UPLOAD, then the read set fails: in deferrable mode the failure
    # reaches the task through the trigger.
    with first_look_sees_processing(emulator):
        read_set_id = new_read_set(emulator, store_id, BAD_FASTQ)

        dag_run, ti = run_sensor_dag(deferrable, store_id, read_set_id)

    # The DAG allows one retry; a terminal read set status does not use it.
    assert (dag_run.state, ti.state) == ("failed", "failed")
    assert ti.try_number == 1
    if deferrable:
        assert deferred_to_triggers(read_set_id) == [{"sequence_store_id": store_id, "read_set_id": read_set_id}]
        # The trigger fired and the task came back to execute_complete, which failed it (a trigger that
        # crashes instead leaves the task failed with next_method still set). Airflow before 3.1 leaves next_method
        # set in either case: there the error execute_complete raises tells them apart.
        if AIRFLOW_V_3_1_PLUS:
            assert ti.next_method is None
        else:
            assert "did not become ACTIVE: UPLOAD_FAILED" in console_words(capfd)
