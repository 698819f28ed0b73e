"""Every bad input of the README's table: a specific exception whose message names the fix, raised by split or
create before CreateMultipartReadSetUpload, with nothing created on the service."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_omics.operators.omics import (
    OmicsCreateReadSetUploadOperator,
    OmicsInputError,
    OmicsSplitReadSetOperator,
)
from airflow_provider_omics.staging.sources import LocalSource, SourceError
from airflow_provider_omics.testing import OmicsEmulator
from airflow_provider_omics.utils.parts import MAX_PART_SIZE
from tests.helpers import RecordingTaskInstance

REFERENCE_ARN = "arn:aws:omics:us-east-1:123456789012:referenceStore/1234567890/reference/1234567890"


@pytest.fixture(autouse=True)
def _connection(omics_conn: str) -> None:
    """Every row runs against the emulator through the ``omics_test`` connection."""


@pytest.fixture
def store_id(emulator: OmicsEmulator) -> Iterator[str]:
    client = emulator.client()
    store = client.create_sequence_store(name=f"inputs-{time.monotonic_ns()}")["id"]
    yield store
    # Whatever the row, nothing may have been created on the service.
    assert client.list_multipart_read_set_uploads(sequenceStoreId=store)["uploads"] == []


@pytest.fixture
def staged(tmp_path: Path) -> dict[str, str]:
    root = tmp_path / "staging"
    root.mkdir()
    (root / "r1.fastq").write_bytes(b"@r\nACGT\n+\nIIII\n" * 100)
    (root / "r2.fastq").write_bytes(b"@r\nTTGA\n+\nIIII\n" * 100)
    (root / "empty.fastq").write_bytes(b"")
    (root / "dir").mkdir()
    outside = tmp_path / "outside.fastq"
    outside.write_bytes(b"@r\nACGT\n+\nIIII\n")
    (root / "link.fastq").symlink_to(outside)
    (root / "hard.fastq").hardlink_to(root / "r1.fastq")
    home = Path(os.environ["AIRFLOW_HOME"])
    (home / "copied.fastq").write_bytes(b"@r\nACGT\n+\nIIII\n")
    return {
        "root": str(root),
        "r1": str(root / "r1.fastq"),
        "r2": str(root / "r2.fastq"),
        "empty": str(root / "empty.fastq"),
        "dir": str(root / "dir"),
        "outside": str(outside),
        "link": str(root / "link.fastq"),
        "dotdot": str(root / ".." / "outside.fastq"),
        "hard": str(root / "hard.fastq"),
        "home": str(home / "copied.fastq"),
    }


def run_split(**kwargs: Any) -> dict[str, Any]:
    ti = RecordingTaskInstance()
    kwargs.setdefault("aws_conn_id", "omics_test")
    operator = OmicsSplitReadSetOperator(task_id="split", **kwargs)
    operator.execute({"ti": ti})  # type: ignore[arg-type]
    return ti.xcoms


def run_create(store_id: str, **kwargs: Any) -> str:
    arguments = {
        "sequence_store_id": store_id,
        "source_file_type": "FASTQ",
        "name": "n",
        "subject_id": "s",
        "sample_id": "x",
        "aws_conn_id": "omics_test",
        **kwargs,
    }
    operator = OmicsCreateReadSetUploadOperator(task_id="create", **arguments)
    return operator.execute({"ti": RecordingTaskInstance()})  # type: ignore[arg-type]


# One row per bad input: the split arguments (paths by name from `staged`) and what the message must say.
SPLIT_ROWS = {
    "nonexistent path": ({"sources": "{root}/missing.fastq"}, r"does not exist\. Check the path"),
    "directory": ({"sources": "{dir}"}, r"is not a regular file"),
    "empty file": ({"sources": "{empty}"}, r"is empty\. Stage the complete file"),
    "relative path": ({"sources": "data/r1.fastq"}, r"relative path\. Give an absolute path"),
    "unsupported scheme": ({"sources": "https://example.org/r1.fastq"}, r"unsupported scheme 'https'"),
    "no source": ({"sources": []}, r"give one staged file, or two"),
    "three sources": ({"sources": ["{r1}", "{r2}", "{r1}"]}, r"at most two sources"),
    "read 2 is read 1": ({"sources": ["{r1}", "{r1}"]}, r"the same file"),
    "read 2 is read 1 written differently": ({"sources": ["{r1}", "{root}/./r1.fastq"]}, r"the same file"),
    "read 2 is a hard link to read 1": ({"sources": ["{r1}", "{hard}"]}, r"the same file"),
    "NUL byte in the path": ({"sources": "{root}/r1\x00.fastq"}, r"contains a NUL byte"),
    "path not UTF-8": ({"sources": "{root}/r1\udcff.fastq"}, r"is not valid UTF-8"),
    "path too long": ({"sources": "/" + "d/" * 2100 + "r1.fastq"}, r"is too long"),
    "a file in the Airflow home": ({"sources": "{home}"}, r"in the Airflow home .* never allowed"),
    "/proc": ({"sources": "/proc/self/environ"}, r"never allowed as a staged source"),
    "/dev": ({"sources": "/dev/zero"}, r"never allowed as a staged source"),
    "two sources for BAM": (
        {"sources": ["{r1}", "{r2}"], "source_file_type": "BAM"},
        r"only paired FASTQ has a read 2",
    ),
    "unknown file type": ({"sources": "{r1}", "source_file_type": "SAM"}, r"not one of FASTQ, BAM, CRAM, UBAM"),
    "part size 0": ({"sources": "{r1}", "part_size": 0}, r"part_size=0 must be at least 1"),
    "part size negative": ({"sources": "{r1}", "part_size": -5}, r"part_size=-5 must be at least 1"),
    "part size above 100 MiB": (
        {"sources": "{r1}", "part_size": MAX_PART_SIZE + 1},
        r"out of range: HealthOmics accepts parts of 1 to 104857600 bytes",
    ),
    "part size not a number": ({"sources": "{r1}", "part_size": "10MB"}, r"must be a whole number"),
    "more than 10,000 parts": ({"sources": "{r1}", "part_size": 1}, r"above the service's limit of 10000 parts"),
    "max_tasks 0": ({"sources": "{r1}", "max_tasks": 0}, r"max_tasks=0 must be at least 1"),
    "outside the allowed roots": (
        {"sources": "{outside}", "allowed_local_roots": "{root}"},
        r"outside the allowed staging roots",
    ),
    "symlink out of the allowed roots": (
        {"sources": "{link}", "allowed_local_roots": "{root}"},
        r"resolves to .*outside\.fastq, outside the allowed staging roots",
    ),
    "'..' out of the allowed roots": (
        {"sources": "{dotdot}", "allowed_local_roots": "{root}"},
        r"outside the allowed staging roots",
    ),
    "malformed S3 URI (no key)": ({"sources": "s3://bucket-only"}, r"not a valid S3 object URI"),
    "malformed S3 URI (a prefix)": ({"sources": "s3://bucket/dir/"}, r"not a valid S3 object URI"),
}


def test_an_operator_may_only_narrow_the_administrators_roots(
    staged: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__OMICS__ALLOWED_LOCAL_ROOTS", staged["root"])
    for wider in ("/", str(Path(staged["root"]).parent)):
        with pytest.raises(OmicsInputError, match=r"may only narrow"):
            run_split(sources=staged["outside"], allowed_local_roots=wider)
    for empty in ("", [], None):  # the administrator's setting
        with pytest.raises(OmicsInputError, match=r"outside the allowed staging roots"):
            run_split(sources=staged["outside"], allowed_local_roots=empty)
    narrower = Path(staged["root"]) / "dir"
    (narrower / "r.fastq").write_bytes(b"@r\nACGT\n+\nIIII\n")
    assert run_split(sources=str(narrower / "r.fastq"), allowed_local_roots=str(narrower))["sources"]
    with pytest.raises(OmicsInputError, match=r"outside the allowed staging roots"):
        run_split(sources=staged["r1"], allowed_local_roots=str(narrower))


@pytest.mark.parametrize("row", list(SPLIT_ROWS))
def test_split_refuses_bad_input(row: str, staged: dict[str, str], store_id: str) -> None:
    arguments, message = SPLIT_ROWS[row]
    # 10,001 parts of one byte: the staged file must be bigger than the limit for that row.
    Path(staged["r1"]).write_bytes(b"@r\nACGT\n+\nIIII\n" * 700)

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.format(**staged)
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    with pytest.raises(OmicsInputError, match=message):
        run_split(**{k: fill(v) for k, v in arguments.items()})


def test_split_accepts_good_input_and_records_fingerprints(staged: dict[str, str]) -> None:
    xcoms = run_split(sources=[staged["r1"], ""], part_size=100, allowed_local_roots=staged["root"])
    # An empty read 2 (an optional form field left blank) is a single-source read set.
    assert list(xcoms["sources"]) == ["SOURCE1"]
    planned = xcoms["sources"]["SOURCE1"]
    assert planned["fingerprint"]["size"] == os.path.getsize(staged["r1"]) == planned["size"]
    assert planned["fingerprint"]["mtime_ns"] == os.stat(staged["r1"]).st_mtime_ns


def test_split_refuses_an_unreadable_file(staged: dict[str, str]) -> None:
    path = Path(staged["r1"])
    path.chmod(0)
    if os.geteuid() != 0:
        with pytest.raises(OmicsInputError, match=r"cannot be read by the worker's user"):
            run_split(sources=str(path))
        return
    # root reads any file: look at it as an unprivileged user would, in a forked child that drops root.
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        os.close(read_end)
        message = b"no error"
        try:
            os.setgid(65534)
            os.setuid(65534)
            LocalSource(str(path)).stat()
        except SourceError as err:
            message = str(err).encode()
        os.write(write_end, message)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode()
    os.waitpid(pid, 0)
    assert "cannot be read by the worker's user" in message


CREATE_ROWS = {
    "malformed store id": ({"sequence_store_id": "my-store"}, r"is not a sequence store id: HealthOmics ids are 10"),
    "store ARN instead of id": (
        {"sequence_store_id": "arn:aws:omics:us-east-1:123456789012:sequenceStore/1234567890"},
        r"not its name or ARN",
    ),
    "unknown store": ({"sequence_store_id": "9999999999"}, r"Sequence store 9999999999 does not exist in region"),
    "unknown file type": ({"source_file_type": "SAM"}, r"not one of FASTQ, BAM, CRAM, UBAM"),
    "BAM without reference": ({"source_file_type": "BAM"}, r"BAM read set must be linked .* set reference_arn"),
    "CRAM without reference": ({"source_file_type": "CRAM"}, r"CRAM read set must be linked"),
    "malformed reference ARN": (
        {"source_file_type": "BAM", "reference_arn": "reference/123"},
        r"is not an ARN",
    ),
    "empty name": ({"name": ""}, r"name='' must be text of 1 to 127 characters"),
    "name too long": ({"name": "n" * 128}, r"must be text of 1 to 127 characters"),
    "missing sample": ({"sample_id": None}, r"sample_id=None must be text"),
    "description too long": ({"description": "d" * 256}, r"description=.* 1 to 255 characters"),
}


@pytest.mark.parametrize("row", list(CREATE_ROWS))
def test_create_refuses_bad_input(row: str, store_id: str) -> None:
    arguments, message = CREATE_ROWS[row]
    with pytest.raises(OmicsInputError, match=message):
        run_create(store_id, **arguments)


def test_create_is_idempotent_for_a_retried_task(emulator: OmicsEmulator) -> None:
    client = emulator.client()
    store = client.create_sequence_store(name="idempotent")["id"]
    first = run_create(store, source_file_type="BAM", reference_arn=REFERENCE_ARN)
    again = run_create(store, source_file_type="BAM", reference_arn=REFERENCE_ARN)
    assert first == again
    assert [u["uploadId"] for u in client.list_multipart_read_set_uploads(sequenceStoreId=store)["uploads"]] == [first]
    client.abort_multipart_read_set_upload(sequenceStoreId=store, uploadId=first)


S3_ROWS = {
    "missing S3 object": ("s3://{bucket}/run1/missing.fastq.gz", {}, r"does not exist \(no such object\)"),
    "missing S3 bucket": ("s3://no-such-bucket-here/r1.fastq.gz", {}, r"does not exist"),
    "outside the allowed S3 prefixes": (
        "s3://{bucket}/run1/r1.fastq",
        {"allowed_s3_prefixes": "s3://{bucket}/approved/"},
        r"outside the allowed S3 staging prefixes",
    ),
    "a look-alike of the allowed bucket": (
        "s3://{bucket}-evil/r1.fastq",
        {"allowed_s3_prefixes": "s3://{bucket}"},
        r"outside the allowed S3 staging prefixes",
    ),
}


@pytest.mark.parametrize("row", list(S3_ROWS))
def test_split_refuses_bad_s3_sources(row: str, s3_staging: Any, store_id: str) -> None:
    uri, arguments, message = S3_ROWS[row]
    s3_staging.client.put_object(Bucket=s3_staging.bucket, Key="run1/r1.fastq", Body=b"@r\nACGT\n+\nIIII\n")
    fill = {k: v.format(bucket=s3_staging.bucket) for k, v in arguments.items()}
    with pytest.raises(OmicsInputError, match=message):
        run_split(sources=uri.format(bucket=s3_staging.bucket), source_aws_conn_id="s3_staging", **fill)
