"""Helpers shared by the end-to-end tests: point the connection at an emulator, run a test DAG, read back what the
service stored."""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_omics.testing import OmicsEmulator

CONN_ID = "omics_test"


# The extra of a connection to an emulator without quotas: no client-side pacing (hooks/pacing.py).
UNPACED: dict[str, Any] = {"omics_quotas": False}


def use_omics_connection(monkeypatch: pytest.MonkeyPatch, endpoint_url: str, **conn: Any) -> str:
    """Define the ``omics_test`` connection as users do (an AIRFLOW_CONN_ variable, the endpoint in its extra) for
    the test; ``conn`` adds fields (``login``, ``password``) and ``extra`` entries. Returns the connection id.

    The test emulators enforce no quotas, so the connection does not pace its calls (``omics_quotas`` off) unless
    ``extra`` says otherwise."""
    extra = {"endpoint_url": endpoint_url, "region_name": "us-east-1", **UNPACED, **conn.pop("extra", {})}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({"conn_type": "aws", "extra": extra, **conn}))
    return CONN_ID


class RecordingTaskInstance:
    """The slice of a task instance that operators called directly use: identity and xcom_push."""

    dag_id, run_id, task_id, map_index = "direct", "manual__1", "task", -1

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


# A terminal colour code: Airflow 3.0's dag.test() prints a task's error through rich.
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def console_words(capfd: pytest.CaptureFixture[str]) -> str:
    """What the test printed so far, without terminal colours and with every run of whitespace one space: the words
    of a task's error as each Airflow prints it (Airflow 3.0 colours the numbers and wraps long lines)."""
    return " ".join(_COLOUR.sub("", "".join(capfd.readouterr())).split())


def run_dag(dag_id: str, sources: list[str], logical_date: Any = None, **conf: Any) -> Any:
    """Run a DAG of tests/dags/upload_omics.py; a ``logical_date`` run before is replaced (same run id)."""
    from tests.compat import dag_test
    from tests.dags import upload_omics

    dag = getattr(upload_omics, dag_id)
    # Every param given every time: a run must not inherit the conf of the run before it.
    run_conf = {**upload_omics.PARAMS, "read1": sources[0], "read2": sources[1] if len(sources) > 1 else "", **conf}
    return dag_test(dag, run_conf, logical_date)


def clear_and_rerun(dag_run: Any, tasks: list[str | tuple[str, int]], downstream: bool) -> Any:
    """Clear tasks of a finished run as the UI does (with their setups and teardowns, and optionally everything
    downstream), then run what became runnable, the way ``dag.test()`` runs a DAG run. Returns the run.

    ``tasks`` are task ids without their group prefix, or ``(task_id, map_index)`` for one mapped task.
    """
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from sqlalchemy import select

    from tests.compat import clear_dag_run_tasks, latest_serialized_dag, run_task_as_dag_test, serialization_classes
    from tests.dags import upload_omics

    sdk_dag = getattr(upload_omics, dag_run.dag_id)
    with create_session() as session:
        dag = latest_serialized_dag(sdk_dag, session=session)
        assert dag is not None

        def full_id(task: str) -> str:
            return next(tid for tid in dag.task_dict if tid.rsplit(".", 1)[-1] == task)

        selected: list[str | tuple[str, int]] = [
            (full_id(t[0]), t[1]) if isinstance(t, tuple) else full_id(t) for t in tasks
        ]
        if downstream:
            plain = {t if isinstance(t, str) else t[0] for t in selected}
            # The task ids go first and unnamed: Airflow 2 names them task_ids_or_regex.
            subset = dag.partial_subset(plain, include_downstream=True, include_upstream=False)
            selected += [tid for tid in subset.task_dict if tid not in plain]
        dag_serialization, operator_serialization = serialization_classes()
        # Clearing loads DAGs without operator links and leaves that switch set for the whole process: put it
        # back, or DAGs deserialized later in this process (tests/test_links.py) lose their links.
        load_links = dag_serialization._load_operator_extra_links, operator_serialization._load_operator_extra_links
        try:
            clear_dag_run_tasks(dag, selected, dag_run, session)
        finally:
            dag_serialization._load_operator_extra_links, operator_serialization._load_operator_extra_links = load_links
    stalled = 0
    while True:
        with create_session() as session:
            dr = session.scalar(select(DagRun).where(DagRun.dag_id == dag_run.dag_id, DagRun.run_id == dag_run.run_id))
            assert dr is not None
            if dr.state == DagRunState.QUEUED:
                dr.state = DagRunState.RUNNING
            if dr.state != DagRunState.RUNNING:
                return dr
            dr.dag = dag
            schedulable, _ = dr.update_state(session=session)
            for ti in schedulable:
                ti.try_number += 1
                ti.state = TaskInstanceState.SCHEDULED
            session.commit()
            scheduled = [ti for ti in dr.get_task_instances(session=session) if ti.state == TaskInstanceState.SCHEDULED]
            if not scheduled and dr.state == DagRunState.RUNNING:
                # A pass may only settle states (a mapped task expanded to nothing is skipped), which makes its
                # downstream tasks runnable in the next pass, as the scheduler's next loop would find them.
                stalled += 1
                if stalled > 2:
                    states = [(ti.task_id, ti.state) for ti in dr.get_task_instances()]
                    raise AssertionError(f"nothing to run: {states}")
                continue
            stalled = 0
        for ti in scheduled:
            run_task_as_dag_test(ti, sdk_dag.task_dict[ti.task_id])


def tries(dag_run: Any, task_id: str) -> list[int]:
    return sorted(ti.try_number for ti in dag_run.get_task_instances() if ti.task_id.endswith(task_id))


def summary_row(dag_run: Any) -> dict[str, Any]:
    """The one row of an ``upload_read_set`` group's summary (its XCom): the read set's id, status, verified."""
    (ti,) = [ti for ti in dag_run.get_task_instances() if ti.task_id.rsplit(".", 1)[-1] == "summary"]
    (row,) = ti.xcom_pull(task_ids=ti.task_id)
    return dict(row)


def task_xcom(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    """The XCom ``key`` (its return value by default) of the task ``task_id`` (its whole id) of ``dag_run``:
    ``xcom_pull()`` without task ids would give any task's, the latest."""
    ti = next(ti for ti in dag_run.get_task_instances() if ti.task_id == task_id)
    return ti.xcom_pull(task_ids=task_id, key=key)


def task_states(dag_run: Any) -> dict[str, list[str]]:
    states: dict[str, list[str]] = {}
    for ti in dag_run.get_task_instances():
        states.setdefault(ti.task_id.rsplit(".", 1)[-1], []).append(str(ti.state))
    return states


def wait_active(client: Any, store_id: str, read_set_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        metadata = client.get_read_set_metadata(sequenceStoreId=store_id, id=read_set_id)
        if metadata["status"] != "PROCESSING_UPLOAD" or time.monotonic() > deadline:
            return metadata
        time.sleep(0.05)


def only_read_set(client: Any, store_id: str) -> str:
    read_sets = client.list_read_sets(sequenceStoreId=store_id)["readSets"]
    assert len(read_sets) == 1, read_sets
    return read_sets[0]["id"]


def stored_bytes(client: Any, store_id: str, read_set_id: str, source: str) -> bytes:
    """The stored file of one source, read back part by part with GetReadSet."""
    metadata = client.get_read_set_metadata(sequenceStoreId=store_id, id=read_set_id)
    total = metadata["files"][source.lower()]["totalParts"]
    return b"".join(
        client.get_read_set(sequenceStoreId=store_id, id=read_set_id, file=source, partNumber=n)["payload"].read()
        for n in range(1, total + 1)
    )


def assert_no_upload_left(client: Any, store_id: str) -> None:
    assert client.list_multipart_read_set_uploads(sequenceStoreId=store_id)["uploads"] == []


def assert_uploaded(client: Any, store_id: str, originals: dict[str, bytes]) -> dict[str, Any]:
    read_set_id = only_read_set(client, store_id)
    metadata = wait_active(client, store_id, read_set_id)
    assert metadata["status"] == "ACTIVE", metadata.get("statusMessage")
    for source, data in originals.items():
        assert stored_bytes(client, store_id, read_set_id, source) == data
    assert_no_upload_left(client, store_id)
    return metadata


def asset_events(dag_run: Any) -> list[tuple[str, dict[str, Any]]]:
    """The asset events the run emitted: (asset URI, extra) each."""
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from tests.compat import asset_event_models

    AssetEvent, AssetModel, event_asset_id = asset_event_models()

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.uri, AssetEvent.extra)
            .join(AssetModel, event_asset_id == AssetModel.id)
            .where(AssetEvent.source_dag_id == dag_run.dag_id, AssetEvent.source_run_id == dag_run.run_id)
        ).all()
    return [(uri, dict(extra)) for uri, extra in rows]


def new_read_set(emulator: OmicsEmulator, store_id: str, payload: bytes, name: str) -> tuple[str, str]:
    """Upload ``payload`` as a one-part FASTQ read set; returns its id and its upload's creation time."""
    client = emulator.client()
    upload = client.create_multipart_read_set_upload(
        sequenceStoreId=store_id, sourceFileType="FASTQ", subjectId="subject", sampleId=name, name=name
    )
    checksum = client.upload_read_set_part(
        sequenceStoreId=store_id, uploadId=upload["uploadId"], partSource="SOURCE1", partNumber=1, payload=payload
    )["checksum"]
    read_set_id = client.complete_multipart_read_set_upload(
        sequenceStoreId=store_id,
        uploadId=upload["uploadId"],
        parts=[{"partNumber": 1, "partSource": "SOURCE1", "checksum": checksum}],
    )["readSetId"]
    return read_set_id, upload["creationTime"].isoformat()
