"""End-to-end upload DAG runs: real Airflow (dag.test on sqlite), the emulator over HTTP, moto's S3 server."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_omics.assets.omics import event_read_sets
from airflow_provider_omics.testing import OmicsEmulator
from airflow_provider_omics.testing.samples import write_bam, write_fastq
from tests.helpers import UNPACED, assert_no_upload_left, assert_uploaded, asset_events, run_dag, task_states

REFERENCE_ARN = "arn:aws:omics:us-east-1:123456789012:referenceStore/1234567890/reference/1234567890"


# -- local sources -------------------------------------------------------------------------------------------


@pytest.mark.compat
@pytest.mark.parametrize("dag_id", ["omics_upload_operators", "omics_upload_group"])
def test_local_gzipped_fastq_in_many_parts(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, store_id: str, tmp_path: Path, dag_id: str
) -> None:
    fastq = write_fastq(tmp_path / "reads.fastq.gz", 1500, compress=True, seed=1)
    data = fastq.read_bytes()
    part_size = 16 * 1024
    assert len(data) > 10 * part_size

    dag_run = run_dag(dag_id, sequence_store_id=store_id, sources=[str(fastq)], part_size=part_size, max_tasks=4)

    states = task_states(dag_run)
    assert dag_run.state == "success", states
    # At most max_tasks mapped uploads, every one a success.
    assert 1 < len(states["upload_parts"]) <= 4 and set(states["upload_parts"]) == {"success"}
    # Each mapped task is named in the UI by its batch; together they cover every part once.
    total = -(-len(data) // part_size)
    labels = sorted(ti.rendered_map_index for ti in dag_run.get_task_instances() if ti.task_id.endswith("upload_parts"))
    # The group names the sample, as a run's part tasks do; the operators wired by hand name the source.
    words = "sample-1 read 1" if dag_id == "omics_upload_group" else r"read 1 \(SOURCE1\)"
    named = [re.fullmatch(rf"{words} (?:part (\d+)|parts (\d+)-(\d+)) of {total}", label) for label in labels]
    assert all(named), labels
    covered = [range(int(m[1] or m[2]), int(m[1] or m[3]) + 1) for m in named if m is not None]
    assert sorted(n for r in covered for n in r) == list(range(1, total + 1))
    metadata = assert_uploaded(emulator.client(), store_id, {"SOURCE1": data})
    assert metadata["files"]["source1"]["contentLength"] == len(data)
    assert metadata["etag"]["source1"] == hashlib.md5(gzip.decompress(data)).hexdigest()
    if dag_id == "omics_upload_group":
        # The group waited for ACTIVE and verified the ETag; abort had nothing to do.
        assert states["wait_active"] == ["success"] and states["verify"] == ["success"]
        assert states["abort"] == ["success"]
        # verify announced the read set on the store's asset.
        [(uri, extra)] = asset_events(dag_run)
        assert uri.startswith("omics://us-east-1/") and uri.endswith(f"/sequence-store/{store_id}")
        [entry] = event_read_sets(extra)
        assert entry["read_set_arn"] == metadata["arn"] and entry["etags"]["source1"] == metadata["etag"]["source1"]
        # complete and verify link to the one read set in the console.
        for task in ("complete", "verify"):
            (ti,) = [ti for ti in dag_run.get_task_instances() if ti.task_id.endswith(f".{task}")]
            link = ti.xcom_pull(task_ids=ti.task_id, key="omics_read_set")
            assert (link["sequence_store_id"], link["read_set_id"]) == (store_id, metadata["id"]), task
    else:
        assert asset_events(dag_run) == []


@pytest.mark.compat
@pytest.mark.parametrize("dag_id", ["omics_upload_operators", "omics_upload_group"])
def test_paired_fastq_staged_on_s3(
    airflow_db: Path,
    emulator: OmicsEmulator,
    omics_conn: str,
    store_id: str,
    s3_staging: Any,
    tmp_path: Path,
    dag_id: str,
) -> None:
    originals = {}
    uris = []
    for source, read in (("SOURCE1", 1), ("SOURCE2", 2)):
        path = write_fastq(tmp_path / f"r{read}.fastq.gz", 800, compress=True, seed=read, prefix=f"r{read}")
        s3_staging.client.upload_file(str(path), s3_staging.bucket, f"run1/r{read}.fastq.gz")
        originals[source] = path.read_bytes()
        uris.append(f"s3://{s3_staging.bucket}/run1/r{read}.fastq.gz")

    dag_run = run_dag(
        dag_id,
        sequence_store_id=store_id,
        sources=uris,
        part_size=20 * 1024,
        source_aws_conn_id="s3_staging",
    )

    assert dag_run.state == "success", task_states(dag_run)
    metadata = assert_uploaded(emulator.client(), store_id, originals)
    for source, data in originals.items():
        assert metadata["etag"][source.lower()] == hashlib.md5(gzip.decompress(data)).hexdigest()


@pytest.mark.parametrize(
    ("file_type", "reference_arn", "aligned"), [("BAM", REFERENCE_ARN, True), ("UBAM", None, False)]
)
def test_bam_with_reference_and_ubam_without(
    airflow_db: Path,
    emulator: OmicsEmulator,
    omics_conn: str,
    store_id: str,
    tmp_path: Path,
    file_type: str,
    reference_arn: str | None,
    aligned: bool,
) -> None:
    bam = write_bam(tmp_path / "reads.bam", 3000, aligned=aligned)
    data = bam.read_bytes()

    dag_run = run_dag(
        "omics_upload_group",
        sequence_store_id=store_id,
        sources=[str(bam)],
        source_file_type=file_type,
        reference_arn=reference_arn,
        part_size=64 * 1024,
    )

    states = task_states(dag_run)
    assert dag_run.state == "success", states
    metadata = assert_uploaded(emulator.client(), store_id, {"SOURCE1": data})
    assert metadata["fileType"] == file_type
    # The ETag of an aligned file is not reproducible client-side: verify checked the stored size only.
    assert states["verify"] == ["success"]


def test_more_parts_than_max_map_length_upload_in_batches(
    airflow_db: Path,
    emulator: OmicsEmulator,
    omics_conn: str,
    store_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "3")
    fastq = write_fastq(tmp_path / "reads.fastq", 400, seed=3)
    data = fastq.read_bytes()
    part_size = 2048
    assert len(data) // part_size > 3 * 10

    dag_run = run_dag("omics_upload_operators", sequence_store_id=store_id, sources=[str(fastq)], part_size=part_size)

    states = task_states(dag_run)
    assert dag_run.state == "success", states
    assert len(states["upload_parts"]) == 3
    metadata = assert_uploaded(emulator.client(), store_id, {"SOURCE1": data})
    assert metadata["files"]["source1"]["totalParts"] == -(-len(data) // part_size)


# -- failures ------------------------------------------------------------------------------------------------


def test_part_task_that_fails_once_retries_into_a_correct_read_set(
    airflow_db: Path,
    emulator: OmicsEmulator,
    store_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_provider_omics.hooks import omics as omics_hook

    # One botocore attempt and no pause between the part loop's rounds, so that three injected server errors
    # exhaust the first try of the task; its Airflow retry then re-uploads every part of the batch.
    extra = {
        "endpoint_url": emulator.endpoint_url,
        "region_name": "us-east-1",
        "config_kwargs": {"retries": {"mode": "standard", "total_max_attempts": 1}},
        **UNPACED,
    }
    monkeypatch.setenv("AIRFLOW_CONN_OMICS_TEST", json.dumps({"conn_type": "aws", "extra": extra}))
    monkeypatch.setattr(omics_hook, "PART_RETRY_DELAY", 0.0)
    fastq = write_fastq(tmp_path / "reads.fastq.gz", 600, compress=True, seed=4)
    data = fastq.read_bytes()
    emulator.inject(error="InternalServerException", operation="UploadReadSetPart", count=omics_hook.PART_ATTEMPTS)

    dag_run = run_dag(
        "omics_upload_operators",
        sequence_store_id=store_id,
        sources=[str(fastq)],
        part_size=8 * 1024,
        max_tasks=1,
        max_concurrency=1,
    )

    assert dag_run.state == "success", task_states(dag_run)
    (upload_ti,) = [ti for ti in dag_run.get_task_instances() if ti.task_id == "upload_parts"]
    assert upload_ti.try_number == 2
    assert_uploaded(emulator.client(), store_id, {"SOURCE1": data})


@pytest.mark.compat
def test_run_that_fails_for_good_leaves_no_upload(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, store_id: str, tmp_path: Path
) -> None:
    fastq = write_fastq(tmp_path / "reads.fastq", 300, seed=5)
    emulator.inject(error="AccessDeniedException", operation="UploadReadSetPart", count=1)

    dag_run = run_dag("omics_upload_operators", sequence_store_id=store_id, sources=[str(fastq)], part_size=8192)

    states = task_states(dag_run)
    assert dag_run.state == "failed", states
    assert "failed" in states["upload_parts"]
    # Permanent: the part task did not use its retries.
    (failed,) = [ti for ti in dag_run.get_task_instances() if ti.task_id == "upload_parts" and ti.state == "failed"]
    assert failed.try_number == 1
    assert states["complete"] == ["upstream_failed"] and states["abort"] == ["success"]
    client = emulator.client()
    assert_no_upload_left(client, store_id)
    assert client.list_read_sets(sequenceStoreId=store_id)["readSets"] == []
