"""Exactly one read set per upload, whatever fails: lost answers, cleared tasks, re-runs, colliding run ids.

End-to-end DAG runs (real Airflow ``dag.test()`` on sqlite) against the emulator over HTTP; the emulator's
``drop_response`` fault serves a request (its change commits) and then closes the connection unanswered.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_omics.operators.omics import OmicsCreateReadSetUploadOperator
from airflow_provider_omics.testing import OmicsEmulator
from airflow_provider_omics.testing.samples import write_fastq
from airflow_provider_omics.utils.payloads import UPLOAD_RECORD_KEY, UploadRecord
from tests.helpers import (
    RecordingTaskInstance,
    assert_no_upload_left,
    assert_uploaded,
    clear_and_rerun,
    run_dag,
    summary_row,
    task_states,
    tries,
    use_omics_connection,
)

# botocore's standard retry mode with the hook's 8 retries: one call and eight retries.
BOTOCORE_ATTEMPTS = 9


@pytest.fixture
def store(own_emulator: OmicsEmulator) -> str:
    return own_emulator.client().create_sequence_store(name="exactly-once")["id"]


def read_sets(emulator: OmicsEmulator, store_id: str) -> list[dict[str, Any]]:
    return emulator.client().list_read_sets(sequenceStoreId=store_id)["readSets"]


@pytest.mark.compat
def test_lost_complete_answer_is_recovered_into_the_one_read_set(
    airflow_db: Path, own_emulator: OmicsEmulator, store: str, tmp_path: Path
) -> None:
    """Finding 1: Complete commits, its answer is lost; botocore's retry finds the upload gone."""
    fastq = write_fastq(tmp_path / "reads.fastq.gz", 300, compress=True, seed=101)
    own_emulator.inject("drop_response", operation="CompleteMultipartReadSetUpload", count=1)

    dag_run = run_dag("omics_upload_group", [str(fastq)], sequence_store_id=store, part_size=4096, max_tasks=4)

    states = task_states(dag_run)
    assert dag_run.state == "success", states
    assert states["verify"] == ["success"] and tries(dag_run, "complete") == [1]
    metadata = assert_uploaded(own_emulator.client(), store, {"SOURCE1": fastq.read_bytes()})
    assert summary_row(dag_run)["read_set_id"] == metadata["id"]
    assert own_emulator.fault_counts.get("drop_response") == 1


@pytest.mark.compat
def test_create_whose_every_answer_is_lost_finds_its_upload_by_token(
    airflow_db: Path, own_emulator: OmicsEmulator, store: str, tmp_path: Path
) -> None:
    fastq = write_fastq(tmp_path / "reads.fastq", 200, seed=102)
    own_emulator.inject("drop_response", operation="CreateMultipartReadSetUpload", count=BOTOCORE_ATTEMPTS)

    dag_run = run_dag("omics_upload_group", [str(fastq)], sequence_store_id=store, part_size=4096)

    assert dag_run.state == "success", task_states(dag_run)
    assert own_emulator.fault_counts.get("drop_response") == BOTOCORE_ATTEMPTS  # every answer was lost
    assert_uploaded(own_emulator.client(), store, {"SOURCE1": fastq.read_bytes()})


def test_create_that_may_have_committed_is_aborted_by_the_teardown(
    airflow_db: Path, own_emulator: OmicsEmulator, store: str, tmp_path: Path
) -> None:
    """Finding 2: every Create answer lost and the upload cannot be looked up: create fails, abort still runs."""
    fastq = write_fastq(tmp_path / "reads.fastq", 200, seed=103)
    own_emulator.inject("drop_response", operation="CreateMultipartReadSetUpload", count=BOTOCORE_ATTEMPTS)
    own_emulator.inject("InternalServerException", operation="ListMultipartReadSetUploads", count=BOTOCORE_ATTEMPTS)

    dag_run = run_dag("omics_upload_group", [str(fastq)], sequence_store_id=store, part_size=4096)

    states = task_states(dag_run)
    assert dag_run.state == "failed", states
    assert states["create"] == ["failed"] and states["abort"] == ["success"], states
    assert_no_upload_left(own_emulator.client(), store)
    assert read_sets(own_emulator, store) == []


@pytest.mark.compat
def test_rerun_of_a_run_that_stored_its_read_set_reuses_it(
    airflow_db: Path, own_emulator: OmicsEmulator, store: str, tmp_path: Path
) -> None:
    """Finding 3: the same run (dag_id and run_id) again stores nothing twice and reports the read set."""
    fastq = write_fastq(tmp_path / "reads.fastq", 200, seed=104)
    when = datetime(2026, 3, 1, tzinfo=UTC)
    first = run_dag("omics_upload_group", [str(fastq)], sequence_store_id=store, part_size=4096, logical_date=when)
    assert first.state == "success", task_states(first)
    (stored,) = read_sets(own_emulator, store)

    again = run_dag("omics_upload_group", [str(fastq)], sequence_store_id=store, part_size=4096, logical_date=when)

    states = task_states(again)
    assert again.run_id == first.run_id
    assert again.state == "success", states
    assert states["verify"] == ["success"], states
    assert [rs["id"] for rs in read_sets(own_emulator, store)] == [stored["id"]]
    assert summary_row(again)["read_set_id"] == stored["id"]
    assert_no_upload_left(own_emulator.client(), store)


@pytest.mark.compat
def test_clearing_the_part_tasks_and_downstream_reuses_the_read_set(
    airflow_db: Path, own_emulator: OmicsEmulator, store: str, tmp_path: Path
) -> None:
    fastq = write_fastq(tmp_path / "reads.fastq", 300, seed=105)
    dag_run = run_dag("omics_upload_group", [str(fastq)], sequence_store_id=store, part_size=4096, max_tasks=3)
    assert dag_run.state == "success", task_states(dag_run)
    (stored,) = read_sets(own_emulator, store)

    rerun = clear_and_rerun(dag_run, ["upload_parts"], downstream=True)

    states = task_states(rerun)
    assert rerun.state == "success", states
    assert "failed" not in {s for values in states.values() for s in values}, states
    assert [rs["id"] for rs in read_sets(own_emulator, store)] == [stored["id"]]
    assert summary_row(rerun)["read_set_id"] == stored["id"]
    assert_no_upload_left(own_emulator.client(), store)


def test_clearing_one_part_task_of_a_finished_run_uploads_nothing_again(
    airflow_db: Path, own_emulator: OmicsEmulator, store: str, tmp_path: Path
) -> None:
    fastq = write_fastq(tmp_path / "reads.fastq", 300, seed=106)
    dag_run = run_dag("omics_upload_group", [str(fastq)], sequence_store_id=store, part_size=4096, max_tasks=3)
    assert dag_run.state == "success", task_states(dag_run)
    (stored,) = read_sets(own_emulator, store)

    rerun = clear_and_rerun(dag_run, [("upload_parts", 1)], downstream=False)

    states = task_states(rerun)
    assert rerun.state == "success", states
    assert [rs["id"] for rs in read_sets(own_emulator, store)] == [stored["id"]]
    assert_no_upload_left(own_emulator.client(), store)


def test_the_same_run_id_in_two_deployments_never_shares_an_upload(
    own_emulator: OmicsEmulator, store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 4: two deployments (or one after a metadata reset) reuse dag_id and run_id for other samples."""
    use_omics_connection(monkeypatch, own_emulator.endpoint_url)

    def create(sample: str, path: Path) -> tuple[str, UploadRecord]:
        plan = {"SOURCE1": {"uri": str(path), "fingerprint": {"size": path.stat().st_size}}}
        ti = RecordingTaskInstance()  # the same dag_id, run_id and task_id each time
        upload_id = OmicsCreateReadSetUploadOperator(
            task_id="create",
            sequence_store_id=store,
            source_file_type="FASTQ",
            name=sample,
            subject_id="subject",
            sample_id=sample,
            sources=plan,
            aws_conn_id="omics_test",
        ).execute({"ti": ti})  # type: ignore[arg-type]
        record = UploadRecord.from_dict(ti.xcoms[UPLOAD_RECORD_KEY])
        assert upload_id and record is not None
        return upload_id, record

    first_id, first = create("sample-A", write_fastq(tmp_path / "a.fastq", 20, seed=107))
    second_id, second = create("sample-B", write_fastq(tmp_path / "b.fastq", 20, seed=108))

    assert first.client_token != second.client_token
    assert first_id != second_id
    uploads = {
        u["uploadId"]: u
        for u in own_emulator.client().list_multipart_read_set_uploads(sequenceStoreId=store)["uploads"]
    }
    assert (uploads[first_id]["name"], uploads[second_id]["name"]) == ("sample-A", "sample-B")
