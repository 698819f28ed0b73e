"""The backend and the content checks on their own, without HTTP."""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulator_support import bam, fastq, multi_member_gzip, split
from shape_check import check_all

from airflow_provider_omics.testing import OmicsBackend
from airflow_provider_omics.testing.content import ContentError, FastqChecker, check_source, gunzip
from airflow_provider_omics.testing.exceptions import (
    RequestTimeoutException,
    ResourceNotFoundException,
    ValidationException,
)
from airflow_provider_omics.testing.models import CompletedPart, ReadSetFilter, paginate


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[OmicsBackend]:
    backend = OmicsBackend(tmp_path, activation_delay=0)
    backend.start()
    yield backend
    backend.close()


def _put(backend: OmicsBackend, store: str, upload: str, number: int, data: bytes, source: str = "SOURCE1") -> dict:
    return backend.upload_read_set_part(
        store, upload, part_source=source, part_number=number, body=io.BytesIO(data), content_length=len(data)
    )


def _create_upload(backend: OmicsBackend, store: str) -> dict:
    return backend.create_multipart_read_set_upload(
        store, source_file_type="FASTQ", subject_id="s", sample_id="a", name="n"
    )


def test_backend_upload_complete_activate(backend: OmicsBackend) -> None:
    created_store = backend.create_sequence_store(name="unit", etag_algorithm_family="SHA512up")
    store = created_store["id"]
    created_upload = _create_upload(backend, store)
    upload = created_upload["uploadId"]
    data = fastq(1000)
    parts = []
    for number, chunk in enumerate(split(data, 3), start=1):
        parts.append(CompletedPart("SOURCE1", number, _put(backend, store, upload, number, chunk)["checksum"]))
    completed = backend.complete_multipart_read_set_upload(store, upload, parts=parts)
    read_set = completed["readSetId"]
    backend.wait_for_activations()
    meta = backend.get_read_set_metadata(store, read_set)
    assert meta["status"] == "ACTIVE"
    assert (meta["creationType"], meta["creationJobId"]) == ("UPLOAD", upload)
    listing = backend.list_read_sets(store)
    (listed,) = listing["readSets"]
    assert "creationJobId" not in listed
    assert backend.list_read_sets(store, filters=ReadSetFilter(status="UPLOAD_FAILED"))["readSets"] == []
    assert meta["etag"] == {"algorithm": "FASTQ_SHA512up", "source1": hashlib.sha512(data).hexdigest()}
    path, size = backend.open_read_set_part(store, read_set, file="SOURCE1", part_number=2)
    assert path.read_bytes() == split(data, 3)[1] and size == len(split(data, 3)[1])
    # The backend's answers are what the HTTP layer serializes: they conform to the model without it, too.
    check_all("CreateSequenceStore", [created_store])
    check_all("CreateMultipartReadSetUpload", [created_upload])
    check_all("CompleteMultipartReadSetUpload", [completed])
    check_all("GetReadSetMetadata", [meta])
    check_all("ListReadSets", [listing])


def test_body_shorter_than_its_length_stores_nothing(backend: OmicsBackend, tmp_path: Path) -> None:
    store = backend.create_sequence_store(name="unit")["id"]
    upload = _create_upload(backend, store)["uploadId"]
    with pytest.raises(RequestTimeoutException, match="ended after 3 of 10 bytes"):
        backend.upload_read_set_part(
            store, upload, part_source="SOURCE1", part_number=1, body=io.BytesIO(b"abc"), content_length=10
        )
    assert backend.uploads[upload].parts == {}
    assert not list((tmp_path / "tmp").iterdir())


def test_ids_and_paths(backend: OmicsBackend) -> None:
    with pytest.raises(ValidationException):
        backend.get_sequence_store("../../etc/passwd")
    with pytest.raises(ResourceNotFoundException):
        backend.get_sequence_store("0123456789")
    with pytest.raises(AssertionError, match="outside the data directory"):
        backend._path("..", "elsewhere")


def test_paginate() -> None:
    items = list(range(7))
    page, token = paginate(items, 3, None)
    assert page == [0, 1, 2] and token == "3"
    page, token = paginate(items, 3, token)
    assert page == [3, 4, 5] and token == "6"
    assert paginate(items, 3, token) == ([6], None)
    assert paginate(items, None, None) == (items, None)
    for bad in (0, 101):
        with pytest.raises(ValidationException):
            paginate(items, bad, None)
    with pytest.raises(ValidationException):
        paginate(items, 3, "99")


def test_fastq_checker_is_independent_of_chunk_boundaries() -> None:
    data = fastq(50) + b"@last\nAC\n+\nII"  # no final newline
    for step in (1, 7, 4096):
        checker = FastqChecker("SOURCE1")
        for i in range(0, len(data), step):
            checker.feed(data[i : i + step])
        checker.finish()
        assert (checker.records, checker.bases) == (51, 50 * 60 + 2)


def test_fastq_checker_tolerates_crlf_and_trailing_blank_lines() -> None:
    checker = FastqChecker("SOURCE1")
    checker.feed(b"@r1\r\nACGT\r\n+\r\nIIII\r\n\n\n")
    checker.finish()
    assert (checker.records, checker.bases) == (1, 4)


def test_gunzip_multi_member_and_highly_compressible() -> None:
    data = fastq(3000)
    chunks = split(multi_member_gzip(data, 10_000), 17)
    assert b"".join(gunzip(chunks)) == data
    zeros = bytes(30 * 1024 * 1024)
    pieces = list(gunzip([gzip.compress(zeros)]))
    assert sum(map(len, pieces)) == len(zeros) and max(map(len, pieces)) <= 4 * 1024 * 1024
    with pytest.raises(ContentError, match="after the end of a gzip member"):
        list(gunzip([gzip.compress(b"x") + b"trailing"]))


def test_check_source(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.bam", tmp_path / "bad.fastq"
    good.write_bytes(bam())
    bad.write_bytes(b"@r\nACGT\n+\nIII\n")
    assert check_source("BAM", [good], "MD5up", "SOURCE1").etag == hashlib.md5(good.read_bytes()).hexdigest()
    with pytest.raises(ContentError, match="SOURCE1: malformed FASTQ record 1"):
        check_source("FASTQ", [bad], "MD5up", "SOURCE1")
