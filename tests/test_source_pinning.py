"""A staged local file is pinned from split to the last part: a swapped link, a rewrite, a truncation, a FIFO
or a removal after split never puts other bytes into a read set, and never hangs a worker slot.

DAG runs (real Airflow ``dag.test()``) change the staged file between create and the part uploads through the
``before_upload`` pause of ``tests/dags/upload_interludes.py``; changes in the middle of a part task use the
part loop's own per-part callback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_omics.hooks.omics import OmicsHook
from airflow_provider_omics.operators.omics import OmicsDigestSourcesOperator, OmicsInputError
from airflow_provider_omics.staging.sources import SourceChangedError
from airflow_provider_omics.testing import OmicsEmulator
from airflow_provider_omics.testing.samples import write_bam, write_fastq
from airflow_provider_omics.utils.parts import PartRange, part_range
from tests.helpers import assert_no_upload_left, only_read_set, stored_bytes, task_states, tries, wait_active

PART = 4096


REFERENCE_ARN = "arn:aws:omics:us-east-1:123456789012:referenceStore/1234567890/reference/1234567890"


def run_interludes(store_id: str, source: str, file_type: str = "FASTQ", **interludes: Any) -> Any:
    from tests.dags import upload_interludes

    upload_interludes.INTERLUDES.clear()
    upload_interludes.INTERLUDES.update(interludes)
    conf = {"sequence_store_id": store_id, "read1": source, "part_size": PART, "source_file_type": file_type}
    conf["reference_arn"] = REFERENCE_ARN if file_type == "BAM" else ""
    try:
        return upload_interludes.omics_upload_interludes.test(run_conf={**upload_interludes.PARAMS, **conf})
    finally:
        upload_interludes.INTERLUDES.clear()


@pytest.fixture
def staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The allowed staging root, set as an administrator sets it."""
    root = tmp_path / "staging"
    root.mkdir()
    monkeypatch.setenv("AIRFLOW__OMICS__ALLOWED_LOCAL_ROOTS", str(root))
    return root


def same_size_other_bytes(path: Path) -> None:
    """Rewrite ``path`` in place with other bytes of the same size and give it back its mtime."""
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[1:5] = b"ZZZZ"
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_link_swapped_to_a_file_outside_the_root_uploads_the_file_that_was_split(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, store_id: str, staging: Path, tmp_path: Path
) -> None:
    """Finding 5: parts are read from the file split opened, never from what the link names later."""
    real = write_fastq(staging / "real.fastq", 200, seed=201)
    secret = tmp_path / "outside" / "secret.fastq"
    secret.parent.mkdir()
    write_fastq(secret, 200, seed=202)
    link = staging / "reads.fastq"
    link.symlink_to(real)

    def swap(context: dict[str, Any]) -> None:
        link.unlink()
        link.symlink_to(secret)

    dag_run = run_interludes(store_id, str(link), before_upload=swap)

    client = emulator.client()
    assert dag_run.state == "success", task_states(dag_run)
    read_set_id = only_read_set(client, store_id)
    assert wait_active(client, store_id, read_set_id)["status"] == "ACTIVE"
    assert stored_bytes(client, store_id, read_set_id, "SOURCE1") == real.read_bytes()


def test_a_file_replaced_after_split_is_refused(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, store_id: str, staging: Path, tmp_path: Path
) -> None:
    """Finding 5 (the file itself renamed over): another inode is another file, whatever its path."""
    real = write_fastq(staging / "reads.fastq", 200, seed=203)
    other = write_fastq(staging / "other.fastq", 200, seed=204)

    dag_run = run_interludes(store_id, str(real), before_upload=lambda context: other.replace(real))

    states = task_states(dag_run)
    assert dag_run.state == "failed", states
    assert set(states["upload_parts"]) == {"failed"} and set(tries(dag_run, "upload_parts")) == {1}
    assert states["abort"] == ["success"]
    assert_no_upload_left(emulator.client(), store_id)
    assert emulator.client().list_read_sets(sequenceStoreId=store_id)["readSets"] == []


@pytest.mark.parametrize("file_type", ["FASTQ", "BAM"])
def test_a_rewrite_with_the_same_size_and_mtime_is_refused(
    airflow_db: Path,
    emulator: OmicsEmulator,
    omics_conn: str,
    store_id: str,
    staging: Path,
    file_type: str,
) -> None:
    """Finding 6, between split and the parts: size and mtime are the same, the file is not."""
    path = (
        write_fastq(staging / "reads.fastq", 200, seed=205)
        if file_type == "FASTQ"
        else write_bam(staging / "reads.bam", 200, seed=205)
    )

    dag_run = run_interludes(store_id, str(path), file_type, before_upload=lambda context: same_size_other_bytes(path))

    states = task_states(dag_run)
    assert dag_run.state == "failed", states
    assert set(states["upload_parts"]) == {"failed"}
    assert_no_upload_left(emulator.client(), store_id)
    assert emulator.client().list_read_sets(sequenceStoreId=store_id)["readSets"] == []


def upload_changing(hook: OmicsHook, store_id: str, path: Path, after_first_part: Any) -> str:
    """Start an upload of ``path`` and run the part loop, calling ``after_first_part`` once part 1 is sent.

    Returns the upload id; the part loop's error is raised to the caller through ``pytest.raises``.
    """
    upload_id = hook.create_multipart_read_set_upload(store_id, "FASTQ", "pinned", "subject", "sample")["uploadId"]
    source = hook.staged_source(str(path))
    fingerprint = source.stat()
    ranges = [part_range("SOURCE1", n, fingerprint.size, PART) for n in range(1, -(-fingerprint.size // PART) + 1)]
    assert len(ranges) >= 3

    def on_part(part: PartRange, seconds: float) -> None:
        if part.part_number == 1:
            after_first_part()

    try:
        hook.upload_parts(store_id, upload_id, source, fingerprint, ranges, max_concurrency=1, on_part=on_part)
    finally:
        hook.abort_multipart_read_set_upload(store_id, upload_id)
    return upload_id


def test_a_rewrite_during_the_part_uploads_fails_the_task(omics_conn: str, store_id: str, staging: Path) -> None:
    """Finding 6, during a part task: the check after the last part sees the rewrite."""
    path = write_fastq(staging / "reads.fastq", 200, seed=206)
    with pytest.raises(SourceChangedError, match=r"changed"):
        upload_changing(OmicsHook(aws_conn_id="omics_test"), store_id, path, lambda: same_size_other_bytes(path))


def test_a_file_truncated_during_a_part_fails_at_once(omics_conn: str, store_id: str, staging: Path) -> None:
    """Finding 7: a short read is an error at once, not a request that waits out its read timeout."""
    path = write_fastq(staging / "reads.fastq", 200, seed=207)
    with pytest.raises(SourceChangedError, match=r"ended early at byte"):
        upload_changing(OmicsHook(aws_conn_id="omics_test"), store_id, path, lambda: os.truncate(path, PART + 10))


def test_a_source_replaced_by_a_fifo_is_refused_without_blocking(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, store_id: str, staging: Path
) -> None:
    """Finding 8: the part tasks do not block in open() and fail naming the source."""
    path = write_fastq(staging / "reads.fastq", 200, seed=208)

    def to_fifo(context: dict[str, Any]) -> None:
        path.unlink()
        os.mkfifo(path)

    dag_run = run_interludes(store_id, str(path), before_upload=to_fifo)

    states = task_states(dag_run)
    assert dag_run.state == "failed", states
    assert set(states["upload_parts"]) == {"failed"} and set(tries(dag_run, "upload_parts")) == {1}
    assert_no_upload_left(emulator.client(), store_id)


def digest(store_id: str, path: Path, fingerprint: dict[str, Any]) -> Any:
    plan = {
        "SOURCE1": {"uri": str(path), "location": str(path), "size": fingerprint["size"], "fingerprint": fingerprint}
    }
    return OmicsDigestSourcesOperator(
        task_id="digest", sequence_store_id=store_id, sources=plan, source_file_type="FASTQ", aws_conn_id="omics_test"
    ).execute({})  # type: ignore[arg-type]


def test_digest_refuses_a_fifo_a_removed_file_and_a_rewrite(
    emulator: OmicsEmulator, omics_conn: str, store_id: str, staging: Path
) -> None:
    """Finding 8, for digest: the same pinning and checks as the part uploads, before reading a byte."""
    path = write_fastq(staging / "reads.fastq", 200, seed=209)
    fingerprint = OmicsHook(aws_conn_id="omics_test").staged_source(str(path)).stat().to_dict()
    assert digest(store_id, path, fingerprint)["sources"]["SOURCE1"]["hexdigest"]

    same_size_other_bytes(path)
    with pytest.raises(OmicsInputError, match=r"changed"):
        digest(store_id, path, fingerprint)
    path.unlink()
    with pytest.raises(OmicsInputError, match=r"no longer exists"):
        digest(store_id, path, fingerprint)
    os.mkfifo(path)
    with pytest.raises(OmicsInputError, match=r"regular file|changed"):
        digest(store_id, path, fingerprint)
