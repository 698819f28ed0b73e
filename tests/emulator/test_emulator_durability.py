"""Restarts on the same data directory, and concurrent part uploads into one upload."""

from __future__ import annotations

import concurrent.futures
import hashlib
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from emulator_support import create_upload, fastq, read_back, split, upload_parts, wait_settled

from airflow_provider_omics.testing import OmicsEmulator


def test_restart_continues_an_upload(tmp_path: Path) -> None:
    data = fastq(3000, seed=9)
    chunks = split(data, 4)
    with OmicsEmulator(data_dir=tmp_path, activation_delay=0.01) as first:
        client = first.client()
        store_id = client.create_sequence_store(name="durable", eTagAlgorithmFamily="SHA256up")["id"]
        upload_id = create_upload(client, store_id, clientToken="once")
        parts = upload_parts(client, store_id, upload_id, "SOURCE1", chunks[:2])
        # A part replaced before the restart keeps its latest content.
        parts[1]["checksum"] = client.upload_read_set_part(
            sequenceStoreId=store_id, uploadId=upload_id, partSource="SOURCE1", partNumber=2, payload=chunks[1]
        )["checksum"]
    with OmicsEmulator(data_dir=tmp_path, activation_delay=0.01) as second:
        client = second.client()
        assert client.get_sequence_store(id=store_id)["eTagAlgorithmFamily"] == "SHA256up"
        listed = client.list_read_set_upload_parts(sequenceStoreId=store_id, uploadId=upload_id, partSource="SOURCE1")
        assert [(p["partNumber"], p["checksum"]) for p in listed["parts"]] == [
            (p["partNumber"], p["checksum"]) for p in parts
        ]
        assert create_upload(client, store_id, clientToken="once") == upload_id
        # The token and the parameters it was given with came back from upload.json.
        with pytest.raises(client.exceptions.ValidationException, match="already used with different parameters"):
            create_upload(client, store_id, clientToken="once", generatedFrom="another run")
        for number, chunk in enumerate(chunks[2:], start=3):
            response = client.upload_read_set_part(
                sequenceStoreId=store_id, uploadId=upload_id, partSource="SOURCE1", partNumber=number, payload=chunk
            )
            parts.append({"partNumber": number, "partSource": "SOURCE1", "checksum": response["checksum"]})
        read_set_id = client.complete_multipart_read_set_upload(
            sequenceStoreId=store_id, uploadId=upload_id, parts=parts
        )["readSetId"]
        meta = wait_settled(client, store_id, read_set_id)
        assert meta["status"] == "ACTIVE"
        assert meta["etag"]["source1"] == hashlib.sha256(data).hexdigest()
        assert read_back(client, store_id, read_set_id) == data
    assert not list((tmp_path / "uploads").iterdir())
    assert not list((tmp_path / "tmp").iterdir())


def test_restart_resumes_activation(tmp_path: Path) -> None:
    data = fastq(100)
    with OmicsEmulator(data_dir=tmp_path, activation_delay=0.01) as first:
        # Stopping must not wait for a held activation, and leaves the read set PROCESSING_UPLOAD on disk.
        first.hold_activations()
        client = first.client()
        store_id = client.create_sequence_store(name="durable")["id"]
        upload_id = create_upload(client, store_id)
        parts = upload_parts(client, store_id, upload_id, "SOURCE1", [data])
        read_set_id = client.complete_multipart_read_set_upload(
            sequenceStoreId=store_id, uploadId=upload_id, parts=parts
        )["readSetId"]
        assert client.get_read_set_metadata(sequenceStoreId=store_id, id=read_set_id)["status"] == "PROCESSING_UPLOAD"
    with OmicsEmulator(data_dir=tmp_path, activation_delay=0.01) as second:
        client = second.client()
        meta = wait_settled(client, store_id, read_set_id)
        assert meta["status"] == "ACTIVE"
        assert meta["etag"]["source1"] == hashlib.md5(data).hexdigest()
        assert client.list_read_sets(sequenceStoreId=store_id)["readSets"][0]["id"] == read_set_id


def _sender(client: Any, store_id: str, upload_id: str) -> Any:
    def send(job: tuple[str, int, bytes]) -> dict[str, Any]:
        source, number, chunk = job
        response = client.upload_read_set_part(
            sequenceStoreId=store_id, uploadId=upload_id, partSource=source, partNumber=number, payload=chunk
        )
        return {"partNumber": number, "partSource": source, "checksum": response["checksum"]}

    return send


def test_concurrent_parts_into_one_upload(emulator: OmicsEmulator) -> None:
    client = emulator.client(config=Config(max_pool_connections=16))
    store_id = client.create_sequence_store(name="concurrent")["id"]
    upload_id = create_upload(client, store_id)
    read1, read2 = fastq(4000, seed=1), fastq(4000, seed=2, mate=2)
    jobs = [("SOURCE1", n, c) for n, c in enumerate(split(read1, 12), start=1)]
    jobs += [("SOURCE2", n, c) for n, c in enumerate(split(read2, 12), start=1)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        parts = list(pool.map(_sender(client, store_id, upload_id), reversed(jobs)))
    read_set_id = client.complete_multipart_read_set_upload(sequenceStoreId=store_id, uploadId=upload_id, parts=parts)[
        "readSetId"
    ]
    meta = wait_settled(client, store_id, read_set_id)
    assert meta["status"] == "ACTIVE", meta.get("statusMessage")
    assert meta["sequenceInformation"]["totalReadCount"] == 8000
    assert read_back(client, store_id, read_set_id, "SOURCE1") == read1
    assert read_back(client, store_id, read_set_id, "SOURCE2") == read2


def test_concurrent_uploads_of_the_same_part_number(emulator: OmicsEmulator) -> None:
    client = emulator.client(config=Config(max_pool_connections=16))
    store_id = client.create_sequence_store(name="race")["id"]
    upload_id = create_upload(client, store_id)
    contenders = [fastq(200 * k, seed=k) for k in range(1, 9)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        raced = list(pool.map(_sender(client, store_id, upload_id), [("SOURCE1", 1, c) for c in contenders]))
    checksums = [r["checksum"] for r in raced]
    assert len(set(checksums)) == len(contenders)
    (listed,) = client.list_read_set_upload_parts(sequenceStoreId=store_id, uploadId=upload_id, partSource="SOURCE1")[
        "parts"
    ]
    # One of them won, whole: its size and checksum belong together, and no other part file is left.
    winner = contenders[checksums.index(listed["checksum"])]
    assert listed["partSize"] == len(winner)
    assert len(list((emulator.data_dir / "uploads" / upload_id / "SOURCE1").glob("*.part"))) == 1
    parts = [{"partNumber": 1, "partSource": "SOURCE1", "checksum": listed["checksum"]}]
    read_set_id = client.complete_multipart_read_set_upload(sequenceStoreId=store_id, uploadId=upload_id, parts=parts)[
        "readSetId"
    ]
    assert wait_settled(client, store_id, read_set_id)["status"] == "ACTIVE"
    assert read_back(client, store_id, read_set_id) == winner
