"""S3 import jobs end to end: the operator and the sensor in real Airflow (``dag.test()``), the boto3 client over
HTTP against the emulator, which reads the objects from moto's S3 server as the service reads them from S3."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_omics.testing import OmicsEmulator
from airflow_provider_omics.testing.samples import write_bam, write_fastq
from airflow_provider_omics.triggers.omics import OmicsReadSetImportJobCompleteTrigger
from tests.helpers import stored_bytes, task_states

REFERENCE_ARN = "arn:aws:omics:us-east-1:123456789012:referenceStore/1234567890/reference/1234567890"
ROLE_ARN = "arn:aws:iam::123456789012:role/omics-import"
TASK = "import_read_sets"


# The module's ``emulator`` reads import jobs' objects from moto's S3 server.
pytestmark = pytest.mark.emulator_reads_s3


def _run(dag_id: str, logical_date: datetime | None = None, **conf: Any) -> Any:
    from tests.compat import dag_test
    from tests.dags import import_s3

    dag = getattr(import_s3, dag_id)
    run_conf = {**import_s3.PARAMS, **conf}
    return dag_test(dag, run_conf, logical_date)


def _stage(s3_staging: Any, path: Path, key: str) -> str:
    s3_staging.client.upload_file(str(path), s3_staging.bucket, key)
    return f"s3://{s3_staging.bucket}/{key}"


def _source(sample: str, files: list[str], file_type: str = "FASTQ", **extra: Any) -> dict[str, Any]:
    source_files = {f"source{i}": uri for i, uri in enumerate(files, start=1)}
    return {
        "sourceFiles": source_files,
        "sourceFileType": file_type,
        "sampleId": sample,
        "subjectId": f"subject-{sample}",
        "name": f"{sample}-reads",
        **extra,
    }


def _outcome(dag_run: Any, key: str = "return_value") -> Any:
    ti = next(ti for ti in dag_run.get_task_instances() if ti.task_id in (TASK, "wait_for_import"))
    return ti.xcom_pull(task_ids=ti.task_id, key=key)


def _jobs(client: Any, store_id: str) -> list[dict[str, Any]]:
    return client.list_read_set_import_jobs(sequenceStoreId=store_id)["importJobs"]


@pytest.mark.compat
@pytest.mark.parametrize("dag_id", ["omics_import", "omics_import_deferrable"])
def test_paired_fastq_and_a_bam_are_imported_from_s3(
    airflow_db: Path,
    emulator: OmicsEmulator,
    omics_conn: str,
    store_id: str,
    s3_staging: Any,
    tmp_path: Path,
    dag_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads = [write_fastq(tmp_path / f"S1_R{r}.fastq.gz", 300, compress=True, seed=r) for r in (1, 2)]
    bam = write_bam(tmp_path / "S2.bam", 200)
    originals = {"S1": [p.read_bytes() for p in reads], "S2": [bam.read_bytes()]}
    sources = [
        _source("S1", [_stage(s3_staging, p, f"run/{p.name}") for p in reads]),
        _source("S2", [_stage(s3_staging, bam, "run/S2.bam")], "BAM", referenceArn=REFERENCE_ARN),
    ]

    triggered: list[str] = []
    original_run = OmicsReadSetImportJobCompleteTrigger.run

    async def counting_run(self: OmicsReadSetImportJobCompleteTrigger) -> Any:
        triggered.append(self.job_id)
        async for event in original_run(self):
            yield event

    monkeypatch.setattr(OmicsReadSetImportJobCompleteTrigger, "run", counting_run)
    # Held SUBMITTED for the first two looks: the task (or its trigger) must wait, whatever the machine's speed; a
    # report of an unfinished job would fail the task.
    emulator.hold_import_jobs(at="SUBMITTED", release_after_reads=2)
    try:
        dag_run = _run(dag_id, sequence_store_id=store_id, sources=json.dumps(sources))
    finally:
        emulator.release_import_jobs()

    assert dag_run.state == "success", task_states(dag_run)
    jobs = _outcome(dag_run, "import_jobs")
    assert triggered == (jobs if dag_id.endswith("deferrable") else [])
    outcome = _outcome(dag_run)
    assert [(e["sample_id"], e["status"]) for e in outcome] == [("S1", "FINISHED"), ("S2", "FINISHED")]
    client = emulator.client()
    [job] = _jobs(client, store_id)
    assert _outcome(dag_run, "import_jobs") == [job["id"]] and job["status"] == "COMPLETED"
    for entry in outcome:
        metadata = client.get_read_set_metadata(sequenceStoreId=store_id, id=entry["read_set_id"])
        assert metadata["status"] == "ACTIVE" and metadata["creationType"] == "IMPORT"
        for i, data in enumerate(originals[entry["sample_id"]], start=1):
            assert stored_bytes(client, store_id, entry["read_set_id"], f"SOURCE{i}") == data
            if entry["sample_id"] == "S1":
                assert metadata["etag"][f"source{i}"] == hashlib.md5(gzip.decompress(data)).hexdigest()


def test_150_sources_are_two_jobs_and_come_back_in_order(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, store_id: str, s3_staging: Any, tmp_path: Path
) -> None:
    fastq = write_fastq(tmp_path / "tiny.fastq", 4, seed=7)
    sources = [_source(f"S{n:03d}", [_stage(s3_staging, fastq, f"many/S{n:03d}.fastq")]) for n in range(1, 151)]

    dag_run = _run("omics_import", sequence_store_id=store_id, sources=json.dumps(sources))

    assert dag_run.state == "success", task_states(dag_run)
    outcome = _outcome(dag_run)
    assert [e["sample_id"] for e in outcome] == [f"S{n:03d}" for n in range(1, 151)]
    jobs = _outcome(dag_run, "import_jobs")
    assert len(jobs) == 2 and [e["job_id"] for e in outcome] == [jobs[0]] * 100 + [jobs[1]] * 50
    client = emulator.client()
    assert len({e["read_set_id"] for e in outcome}) == 150
    assert sorted(j["id"] for j in _jobs(client, store_id)) == sorted(jobs)


def test_a_source_that_fails_fails_the_task_by_name_and_the_others_are_reported(
    airflow_db: Path,
    emulator: OmicsEmulator,
    omics_conn: str,
    store_id: str,
    s3_staging: Any,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    good = write_fastq(tmp_path / "good.fastq", 20, seed=1)
    bad = tmp_path / "bad.fastq"
    bad.write_bytes(b"this is not a FASTQ record\n" * 50)
    sources = [
        _source("S1", [_stage(s3_staging, good, "mixed/good.fastq")]),
        _source("S2", [_stage(s3_staging, bad, "mixed/bad.fastq")]),
    ]

    dag_run = _run("omics_import", sequence_store_id=store_id, sources=json.dumps(sources))

    assert dag_run.state == "failed", task_states(dag_run)
    log = "".join(capfd.readouterr())
    assert "The import failed for 1 of 2 source(s)" in log and "S2/S2-reads" in log and "mixed/bad.fastq" in log
    [job] = _jobs(emulator.client(), store_id)
    assert job["status"] == "COMPLETED_WITH_FAILURES"
    imported = _outcome(dag_run, "read_sets")
    assert [(e["sample_id"], e["name"]) for e in imported] == [("S1", "S1-reads")]
    metadata = emulator.client().get_read_set_metadata(sequenceStoreId=store_id, id=imported[0]["read_set_id"])
    assert metadata["status"] == "ACTIVE"
    assert f"Imported: S1/S1-reads -> {imported[0]['read_set_id']}" in log


@pytest.mark.compat
def test_a_rerun_of_the_task_gets_back_its_job_instead_of_starting_another(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, store_id: str, s3_staging: Any, tmp_path: Path
) -> None:
    fastq = write_fastq(tmp_path / "S1.fastq.gz", 50, compress=True, seed=3)
    sources = json.dumps([_source("S1", [_stage(s3_staging, fastq, "again/S1.fastq.gz")])])
    when = datetime(2026, 11, 1, tzinfo=UTC)

    first = _run("omics_import", logical_date=when, sequence_store_id=store_id, sources=sources)
    second = _run("omics_import", logical_date=when, sequence_store_id=store_id, sources=sources)

    assert first.run_id == second.run_id and second.state == "success", task_states(second)
    client = emulator.client()
    [job] = _jobs(client, store_id)
    assert _outcome(second, "import_jobs") == [job["id"]]
    assert len(client.list_read_sets(sequenceStoreId=store_id)["readSets"]) == 1


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("local file", "An import job reads only S3 objects"),
        ("missing object", "does not exist"),
        ("malformed role", "is not an IAM role ARN"),
        ("BAM without reference", "reference"),
        ("read 2 of a BAM", "source2"),
    ],
)
def test_bad_input_is_refused_before_any_job_starts(
    airflow_db: Path,
    emulator: OmicsEmulator,
    omics_conn: str,
    store_id: str,
    s3_staging: Any,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    case: str,
    message: str,
) -> None:
    fastq = write_fastq(tmp_path / "S1.fastq", 10, seed=1)
    bam = write_bam(tmp_path / "S1.bam", 10)
    s3_fastq = _stage(s3_staging, fastq, "bad/S1.fastq")
    s3_bam = _stage(s3_staging, bam, "bad/S1.bam")
    role = ROLE_ARN
    source = {
        "local file": _source("S1", [str(fastq)]),
        "missing object": _source("S1", [f"s3://{s3_staging.bucket}/bad/missing.fastq"]),
        "malformed role": _source("S1", [s3_fastq]),
        "BAM without reference": _source("S1", [s3_bam], "BAM"),
        "read 2 of a BAM": _source("S1", [s3_bam, s3_fastq], "BAM", referenceArn=REFERENCE_ARN),
    }[case]
    if case == "malformed role":
        role = "arn:aws:iam::123:user/someone"

    dag_run = _run("omics_import", sequence_store_id=store_id, sources=json.dumps([source]), role_arn=role)

    assert dag_run.state == "failed", task_states(dag_run)
    log = "".join(capfd.readouterr())
    assert message in log, log[-3000:]
    assert _jobs(emulator.client(), store_id) == []


@pytest.mark.parametrize("dag_id", ["omics_import_sensor", "omics_import_sensor_deferrable"])
def test_the_sensor_waits_for_a_job_started_elsewhere(
    airflow_db: Path,
    emulator: OmicsEmulator,
    omics_conn: str,
    store_id: str,
    s3_staging: Any,
    tmp_path: Path,
    dag_id: str,
) -> None:
    fastq = write_fastq(tmp_path / "S1.fastq", 30, seed=5)
    client = emulator.client()
    # Held SUBMITTED until the sensor has looked twice: it sees the job unfinished, whatever the machine's speed.
    emulator.hold_import_jobs(at="SUBMITTED", release_after_reads=2)
    try:
        job = client.start_read_set_import_job(
            sequenceStoreId=store_id,
            roleArn=ROLE_ARN,
            sources=[_source("S1", [_stage(s3_staging, fastq, "sensor/S1.fastq")])],
        )
        dag_run = _run(dag_id, sequence_store_id=store_id, job_id=job["id"])
    finally:
        emulator.release_import_jobs()

    assert dag_run.state == "success", task_states(dag_run)
    [entry] = _outcome(dag_run)
    assert entry["job_id"] == job["id"] and entry["status"] == "FINISHED" and entry["read_set_id"]
