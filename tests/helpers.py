"""Helpers shared by the end-to-end tests: run a test DAG, read back what the service stored."""

from __future__ import annotations

import time
from typing import Any


class RecordingTaskInstance:
    """The slice of a task instance that operators called directly use: identity and xcom_push."""

    dag_id, run_id, task_id, map_index = "direct", "manual__1", "task", -1

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def run_dag(dag_id: str, sources: list[str], **conf: Any) -> Any:
    from tests.dags import upload_omics

    dag = getattr(upload_omics, dag_id)
    # Every param given every time: a run must not inherit the conf of the run before it.
    run_conf = {**upload_omics.PARAMS, "read1": sources[0], "read2": sources[1] if len(sources) > 1 else "", **conf}
    return dag.test(run_conf=run_conf)


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
