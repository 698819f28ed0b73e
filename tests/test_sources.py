"""Byte-range windows over staged sources: what botocore needs of a part body (length, reads, rewinds)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import boto3
import pytest

from airflow_provider_omics.utils.sources import (
    FileRangeReader,
    Fingerprint,
    S3Source,
    SourceChangedError,
    parse_source,
)

DATA = bytes(range(256)) * 40


def test_file_window_reads_only_its_range_and_rewinds(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(DATA)
    with FileRangeReader(path, 1000, 3000) as window:
        assert len(window) == 3000
        assert window.read(10) == DATA[1000:1010]
        assert window.read() == DATA[1010:4000]
        assert window.read(5) == b""
        assert window.seek(0) == 0 and window.tell() == 0
        buffer = bytearray(5000)
        assert window.readinto(buffer) == 3000 and bytes(buffer[:3000]) == DATA[1000:4000]
        assert window.seek(-10, io.SEEK_END) == 2990 and window.read() == DATA[3990:4000]
        assert window.seek(10_000) == 3000  # clamped to the window


def s3_source(s3_staging: Any, key: str) -> S3Source:
    def client() -> Any:
        return boto3.client("s3", endpoint_url=s3_staging.endpoint_url, region_name="us-east-1")

    source = parse_source(f"s3://{s3_staging.bucket}/{key}", s3_client_factory=client)
    assert isinstance(source, S3Source)
    return source


def test_s3_window_streams_ranged_gets_and_reopens_after_a_rewind(s3_staging: Any) -> None:
    s3_staging.client.put_object(Bucket=s3_staging.bucket, Key="a/reads.fastq", Body=DATA)
    source = s3_source(s3_staging, "a/reads.fastq")
    fingerprint = source.stat()
    assert fingerprint.size == len(DATA) and fingerprint.etag

    with source.open_range(500, 2000, fingerprint) as window:
        assert len(window) == 2000  # type: ignore[arg-type]
        assert window.read(100) == DATA[500:600]
        window.seek(0)  # botocore rewinding to retry
        assert window.read() == DATA[500:2500]
    with source.open_stream(fingerprint) as whole:
        assert whole.read() == DATA


def test_s3_window_refuses_an_object_rewritten_since_split(s3_staging: Any) -> None:
    s3_staging.client.put_object(Bucket=s3_staging.bucket, Key="b.fastq", Body=DATA)
    source = s3_source(s3_staging, "b.fastq")
    fingerprint = source.stat()
    s3_staging.client.put_object(Bucket=s3_staging.bucket, Key="b.fastq", Body=DATA[::-1])

    with pytest.raises(SourceChangedError, match=r"changed since it was split"):
        source.check_unchanged(fingerprint)
    with pytest.raises(SourceChangedError, match=r"ETag no longer matches"), source.open_range(0, 10, fingerprint) as w:
        w.read()


def test_fingerprint_round_trips_through_xcom_json() -> None:
    fingerprint = Fingerprint(size=10, etag='"abc"', version_id="v1")
    assert Fingerprint.from_dict(fingerprint.to_dict()) == fingerprint
    assert "mtime_ns" not in fingerprint.to_dict()
