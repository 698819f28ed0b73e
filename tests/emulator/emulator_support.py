"""Test data and small helpers for the emulator tests: FASTQ, BGZF/BAM and CRAM bytes, part splitting, polling."""

from __future__ import annotations

import gzip
import random
import struct
import time
from typing import Any

from airflow_provider_omics.testing.samples import bgzf, fastq_records

FASTQ_READ_LENGTH = 60


def fastq(count: int, seed: int = 0, read_length: int = FASTQ_READ_LENGTH, mate: int = 1) -> bytes:
    """``count`` well-formed FASTQ records."""
    return fastq_records(count, read_length, seed=seed, prefix="r", mate=mate)


def multi_member_gzip(data: bytes, member_size: int = 64 * 1024) -> bytes:
    """gzip as bgzip writes it: independent members, one per ``member_size`` bytes of input."""
    return b"".join(gzip.compress(data[i : i + member_size], 1) for i in range(0, len(data), member_size))


def bam(seed: int = 0, size: int = 200_000) -> bytes:
    """A BGZF file whose content starts with the BAM magic (the rest is filler: the emulator checks the magic)."""
    rng = random.Random(seed)
    text = b"@HD\tVN:1.6\tSO:unsorted\n"
    body = b"BAM\x01" + struct.pack("<i", len(text)) + text + struct.pack("<i", 0)
    return bgzf(body + bytes(rng.choices(b"ACGTN", k=size)))


def cram(seed: int = 0, size: int = 50_000) -> bytes:
    rng = random.Random(seed)
    return b"CRAM\x03\x00" + bytes(rng.getrandbits(8) for _ in range(size))


def split(data: bytes, parts: int) -> list[bytes]:
    """``data`` cut into ``parts`` byte ranges (not on record boundaries, like a real split)."""
    size = -(-len(data) // parts)
    return [data[i : i + size] for i in range(0, len(data), size)]


def upload_parts(client: Any, store_id: str, upload_id: str, source: str, chunks: list[bytes]) -> list[dict[str, Any]]:
    parts = []
    for number, chunk in enumerate(chunks, start=1):
        response = client.upload_read_set_part(
            sequenceStoreId=store_id, uploadId=upload_id, partSource=source, partNumber=number, payload=chunk
        )
        parts.append({"partNumber": number, "partSource": source, "checksum": response["checksum"]})
    return parts


def create_upload(client: Any, store_id: str, file_type: str = "FASTQ", **extra: Any) -> str:
    response = client.create_multipart_read_set_upload(
        sequenceStoreId=store_id,
        sourceFileType=file_type,
        subjectId="subject",
        sampleId="sample",
        name="reads",
        **extra,
    )
    return str(response["uploadId"])


def upload_read_set(
    client: Any, store_id: str, sources: dict[str, bytes], file_type: str = "FASTQ", **extra: Any
) -> str:
    """Upload ``sources`` (SOURCE1/SOURCE2 to bytes) in three parts each and complete; returns the read set id."""
    upload_id = create_upload(client, store_id, file_type, **extra)
    parts = []
    for source, data in sources.items():
        parts += upload_parts(client, store_id, upload_id, source, split(data, 3))
    return str(
        client.complete_multipart_read_set_upload(sequenceStoreId=store_id, uploadId=upload_id, parts=parts)[
            "readSetId"
        ]
    )


def wait_settled(client: Any, store_id: str, read_set_id: str, timeout: float = 20.0) -> dict[str, Any]:
    """Poll GetReadSetMetadata until the read set leaves PROCESSING_UPLOAD; returns the metadata."""
    deadline = time.monotonic() + timeout
    while True:
        meta: dict[str, Any] = client.get_read_set_metadata(sequenceStoreId=store_id, id=read_set_id)
        if meta["status"] != "PROCESSING_UPLOAD":
            return meta
        if time.monotonic() > deadline:
            raise TimeoutError(f"read set {read_set_id} still PROCESSING_UPLOAD after {timeout} s")
        time.sleep(0.05)


def read_back(client: Any, store_id: str, read_set_id: str, source: str = "SOURCE1") -> bytes:
    """Every stored part of ``source``, concatenated, through GetReadSet."""
    meta = client.get_read_set_metadata(sequenceStoreId=store_id, id=read_set_id)
    total = meta["files"][source.lower()]["totalParts"]
    return b"".join(
        client.get_read_set(sequenceStoreId=store_id, id=read_set_id, file=source, partNumber=n)["payload"].read()
        for n in range(1, total + 1)
    )
