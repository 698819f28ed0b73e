"""Digest and verification: the staged data against what the service stored, for every ETag family."""

from __future__ import annotations

import gzip
import hashlib
import time
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_omics.operators.omics import (
    OmicsDigestSourcesOperator,
    OmicsSplitReadSetOperator,
    OmicsVerifyReadSetOperator,
)
from airflow_provider_omics.testing import OmicsEmulator
from airflow_provider_omics.testing.samples import write_bam, write_fastq
from tests.helpers import RecordingTaskInstance, run_dag, task_states, wait_active

REFERENCE_ARN = "arn:aws:omics:us-east-1:123456789012:referenceStore/1234567890/reference/1234567890"


def upload(emulator: OmicsEmulator, store_id: str, paths: list[Path], file_type: str = "FASTQ") -> str:
    """A read set made with the plain client (not the code under test), returned once ACTIVE."""
    client = emulator.client()
    kwargs = {"referenceArn": REFERENCE_ARN} if file_type == "BAM" else {}
    upload_id = client.create_multipart_read_set_upload(
        sequenceStoreId=store_id, sourceFileType=file_type, name="v", subjectId="s", sampleId="x", **kwargs
    )["uploadId"]
    parts = []
    for source, path in zip(("SOURCE1", "SOURCE2"), paths, strict=False):
        checksum = client.upload_read_set_part(
            sequenceStoreId=store_id, uploadId=upload_id, partSource=source, partNumber=1, payload=path.read_bytes()
        )["checksum"]
        parts.append({"partNumber": 1, "partSource": source, "checksum": checksum})
    read_set_id = client.complete_multipart_read_set_upload(sequenceStoreId=store_id, uploadId=upload_id, parts=parts)[
        "readSetId"
    ]
    assert wait_active(client, store_id, read_set_id)["status"] == "ACTIVE"
    return read_set_id


def plan_and_digest(store_id: str, paths: list[Path], file_type: str = "FASTQ") -> tuple[dict, dict]:
    ti = RecordingTaskInstance()
    OmicsSplitReadSetOperator(
        task_id="split", sources=[str(p) for p in paths], source_file_type=file_type, aws_conn_id="omics_test"
    ).execute({"ti": ti})  # type: ignore[arg-type]
    plan = ti.xcoms["sources"]
    digests = OmicsDigestSourcesOperator(
        task_id="digest", sequence_store_id=store_id, sources=plan, source_file_type=file_type, aws_conn_id="omics_test"
    ).execute({})  # type: ignore[arg-type]
    return plan, digests


def verify(store_id: str, read_set_id: str, digests: dict, plan: dict) -> dict[str, Any]:
    return OmicsVerifyReadSetOperator(
        task_id="verify",
        sequence_store_id=store_id,
        read_set_id=read_set_id,
        digests=digests,
        sources=plan,
        aws_conn_id="omics_test",
    ).execute({})  # type: ignore[arg-type]


@pytest.fixture
def paired(tmp_path: Path) -> list[Path]:
    return [
        write_fastq(tmp_path / "r1.fastq.gz", 500, compress=True, seed=31, members=3),
        write_fastq(tmp_path / "r2.fastq", 500, seed=32),  # a plain FASTQ as read 2
    ]


@pytest.mark.parametrize(("family", "hash_name"), [("MD5up", "md5"), ("SHA256up", "sha256"), ("SHA512up", "sha512")])
def test_digests_match_the_stored_etags_in_every_family(
    emulator: OmicsEmulator, omics_conn: str, paired: list[Path], family: str, hash_name: str
) -> None:
    store_id = emulator.client().create_sequence_store(name=f"v-{family}", eTagAlgorithmFamily=family)["id"]
    read_set_id = upload(emulator, store_id, paired)
    plan, digests = plan_and_digest(store_id, paired)

    assert digests["family"] == family
    uncompressed = [gzip.decompress(paired[0].read_bytes()), paired[1].read_bytes()]
    for source, data in zip(("SOURCE1", "SOURCE2"), uncompressed, strict=True):
        assert digests["sources"][source]["hexdigest"] == hashlib.new(hash_name, data).hexdigest()
    assert digests["sources"]["SOURCE1"]["compressed"] and not digests["sources"]["SOURCE2"]["compressed"]
    summary = verify(store_id, read_set_id, digests, plan)
    assert summary["etag_verified"] is True


def test_a_mismatched_etag_fails_and_names_the_source(
    emulator: OmicsEmulator, omics_conn: str, store_id: str, paired: list[Path]
) -> None:
    read_set_id = upload(emulator, store_id, paired)
    plan, digests = plan_and_digest(store_id, paired)
    digests["sources"]["SOURCE2"]["hexdigest"] = "0" * 32

    with pytest.raises(AirflowFailException, match=r"SOURCE2 \(.*r2\.fastq\): ETag [0-9a-f]{32} does not match") as err:
        verify(store_id, read_set_id, digests, plan)
    assert "SOURCE1" not in str(err.value)


def test_a_staged_size_that_differs_from_the_stored_one_fails(
    emulator: OmicsEmulator, omics_conn: str, store_id: str, paired: list[Path]
) -> None:
    read_set_id = upload(emulator, store_id, paired)
    plan, digests = plan_and_digest(store_id, paired)
    plan["SOURCE1"]["size"] += 1

    with pytest.raises(AirflowFailException, match=r"SOURCE1 .* the service stored \d+ bytes, \d+ were staged"):
        verify(store_id, read_set_id, digests, plan)


def test_bam_etag_check_is_skipped_with_the_reason_and_the_size_checked(
    emulator: OmicsEmulator, omics_conn: str, store_id: str, tmp_path: Path
) -> None:
    bam = write_bam(tmp_path / "a.bam", 200)
    read_set_id = upload(emulator, store_id, [bam], "BAM")
    plan, digests = plan_and_digest(store_id, [bam], "BAM")

    assert digests["family"] is None and "cannot be reproduced client-side" in digests["skipped"]
    summary = verify(store_id, read_set_id, digests, plan)
    assert summary["etag_verified"] is False
    assert summary["sources"]["SOURCE1"]["stored_size"] == bam.stat().st_size


def test_a_read_set_that_is_not_active_is_not_verified(
    emulator: OmicsEmulator, omics_conn: str, store_id: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.fastq"
    bad.write_bytes(b"this is not a fastq\n")
    client = emulator.client()
    upload_id = client.create_multipart_read_set_upload(
        sequenceStoreId=store_id, sourceFileType="FASTQ", name="v", subjectId="s", sampleId="x"
    )["uploadId"]
    checksum = client.upload_read_set_part(
        sequenceStoreId=store_id, uploadId=upload_id, partSource="SOURCE1", partNumber=1, payload=bad.read_bytes()
    )["checksum"]
    read_set_id = client.complete_multipart_read_set_upload(
        sequenceStoreId=store_id,
        uploadId=upload_id,
        parts=[{"partNumber": 1, "partSource": "SOURCE1", "checksum": checksum}],
    )["readSetId"]
    assert wait_active(client, store_id, read_set_id)["status"] == "UPLOAD_FAILED"

    with pytest.raises(AirflowFailException, match=r"is UPLOAD_FAILED, not ACTIVE"):
        verify(store_id, read_set_id, {"family": None, "sources": {}, "skipped": "n/a"}, {})


def test_group_run_verifies_a_sha512_store(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, paired: list[Path]
) -> None:
    store_id = emulator.client().create_sequence_store(
        name=f"sha512-{time.monotonic_ns()}", eTagAlgorithmFamily="SHA512up"
    )["id"]
    dag_run = run_dag("omics_upload_group", [str(p) for p in paired], sequence_store_id=store_id, part_size=16384)
    states = task_states(dag_run)
    assert dag_run.state == "success", states
    # One digest task per source: the pair's two reads hashed side by side, on any workers.
    assert states["digest"] == ["success", "success"] and states["verify"] == ["success"]


def test_an_unknown_store_is_one_clear_failure_and_the_digest_does_not_start(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, paired: list[Path], capfd: pytest.CaptureFixture[str]
) -> None:
    dag_run = run_dag("omics_upload_group", [str(p) for p in paired], sequence_store_id="1234567890")

    states = task_states(dag_run)
    assert dag_run.state == "failed", states
    failed = sorted(task for task, values in states.items() if "failed" in values)
    # The plan looks at the store before anything exists: nothing after it fails, and abort has nothing to do.
    assert failed == ["plan"], states
    assert states["digest_batches"] == ["upstream_failed"] and states["abort"] == ["skipped"], states
    assert states["digest"] == ["upstream_failed"], states
    out, err = capfd.readouterr()
    assert "Sequence store 1234567890 does not exist in region" in out + err
    assert "GetSequenceStore operation" not in out + err  # no raw botocore error from another task
