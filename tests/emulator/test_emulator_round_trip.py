"""Full round trips through boto3 over HTTP: paired gzipped FASTQ in parts, pagination, activation, read-back."""

from __future__ import annotations

import gzip
import hashlib
from typing import Any

import pytest
from emulator_support import (
    FASTQ_READ_LENGTH,
    create_upload,
    fastq,
    multi_member_gzip,
    read_back,
    split,
    upload_parts,
    wait_settled,
)

from airflow_provider_omics.testing import OmicsEmulator


@pytest.mark.parametrize(("family", "hash_name"), [("MD5up", "md5"), ("SHA256up", "sha256"), ("SHA512up", "sha512")])
def test_paired_gzip_fastq_round_trip(family: str, hash_name: str) -> None:
    read1, read2 = fastq(3000, seed=1, mate=1), fastq(3000, seed=2, mate=2)
    sources = {"SOURCE1": gzip.compress(read1), "SOURCE2": multi_member_gzip(read2)}
    with OmicsEmulator(activation_delay=0.01) as emu:
        # The first look after complete sees PROCESSING_UPLOAD, however fast the activation would be.
        emu.hold_activations(release_after_reads=1)
        client = emu.client()
        store = client.create_sequence_store(name="round trip", eTagAlgorithmFamily=family)
        assert store["eTagAlgorithmFamily"] == family
        assert store["arn"] == f"arn:aws:omics:us-east-1:123456789012:sequenceStore/{store['id']}"
        store_id = store["id"]
        upload_id = create_upload(client, store_id, generatedFrom="sequencer", description="paired reads")

        parts = []
        for source, data in sources.items():
            parts += upload_parts(client, store_id, upload_id, source, split(data, 5))

        listed: list[dict[str, Any]] = []
        token: str | None = None
        pages = 0
        while True:
            page = client.list_read_set_upload_parts(
                sequenceStoreId=store_id,
                uploadId=upload_id,
                partSource="SOURCE1",
                maxResults=2,
                **({"nextToken": token} if token else {}),
            )
            listed += page["parts"]
            pages += 1
            token = page.get("nextToken")
            if not token:
                break
        assert pages == 3
        assert [p["partNumber"] for p in listed] == [1, 2, 3, 4, 5]
        assert sum(p["partSize"] for p in listed) == len(sources["SOURCE1"])
        assert [p["checksum"] for p in listed] == [p["checksum"] for p in parts if p["partSource"] == "SOURCE1"]
        paginator = client.get_paginator("list_read_set_upload_parts")
        source2 = [
            p
            for page in paginator.paginate(
                sequenceStoreId=store_id, uploadId=upload_id, partSource="SOURCE2", PaginationConfig={"PageSize": 2}
            )
            for p in page["parts"]
        ]
        assert len(source2) == 5
        uploads = client.list_multipart_read_set_uploads(sequenceStoreId=store_id)["uploads"]
        assert [u["uploadId"] for u in uploads] == [upload_id]

        read_set_id = client.complete_multipart_read_set_upload(
            sequenceStoreId=store_id, uploadId=upload_id, parts=parts
        )["readSetId"]
        first = client.get_read_set_metadata(sequenceStoreId=store_id, id=read_set_id)
        assert first["status"] == "PROCESSING_UPLOAD"
        assert client.list_multipart_read_set_uploads(sequenceStoreId=store_id)["uploads"] == []

        meta = wait_settled(client, store_id, read_set_id)
        assert meta["status"] == "ACTIVE", meta.get("statusMessage")
        assert meta["fileType"] == "FASTQ"
        assert meta["creationType"] == "UPLOAD"
        assert meta["creationJobId"] == upload_id
        assert meta["arn"].endswith(f"sequenceStore/{store_id}/readSet/{read_set_id}")
        assert meta["etag"] == {
            "algorithm": f"FASTQ_{family}",
            "source1": hashlib.new(hash_name, read1).hexdigest(),
            "source2": hashlib.new(hash_name, read2).hexdigest(),
        }
        assert meta["sequenceInformation"]["totalReadCount"] == 6000
        assert meta["sequenceInformation"]["totalBaseCount"] == 6000 * FASTQ_READ_LENGTH
        assert meta["sequenceInformation"]["generatedFrom"] == "sequencer"
        for source, data in sources.items():
            info = meta["files"][source.lower()]
            assert info["totalParts"] == 5
            assert info["contentLength"] == len(data)
            assert info["partSize"] == len(split(data, 5)[0])
            assert read_back(client, store_id, read_set_id, source) == data

        listed_sets = client.list_read_sets(sequenceStoreId=store_id, filter={"status": "ACTIVE"})["readSets"]
        assert [rs["id"] for rs in listed_sets] == [read_set_id]
        assert listed_sets[0]["etag"]["source1"] == meta["etag"]["source1"]
        # ReadSetListItem has no creationJobId member: only GetReadSetMetadata says which upload it was.
        assert listed_sets[0]["creationType"] == "UPLOAD"
        assert "creationJobId" not in listed_sets[0]


def test_plain_fastq_single_source_and_store_listing(client: Any) -> None:
    stores = [client.create_sequence_store(name=f"store {i}")["id"] for i in range(3)]
    assert client.get_sequence_store(id=stores[0])["name"] == "store 0"
    assert client.get_sequence_store(id=stores[0])["eTagAlgorithmFamily"] == "MD5up"
    paginator = client.get_paginator("list_sequence_stores")
    listed = [s["id"] for page in paginator.paginate(PaginationConfig={"PageSize": 2}) for s in page["sequenceStores"]]
    assert listed == stores

    data = fastq(500, seed=3)
    upload_id = create_upload(client, stores[1])
    parts = upload_parts(client, stores[1], upload_id, "SOURCE1", split(data, 2))
    read_set_id = client.complete_multipart_read_set_upload(sequenceStoreId=stores[1], uploadId=upload_id, parts=parts)[
        "readSetId"
    ]
    meta = wait_settled(client, stores[1], read_set_id)
    assert meta["status"] == "ACTIVE"
    assert meta["etag"] == {"algorithm": "FASTQ_MD5up", "source1": hashlib.md5(data).hexdigest()}
    assert "source2" not in meta["files"]
    assert meta["sequenceInformation"]["totalReadCount"] == 500
    assert read_back(client, stores[1], read_set_id) == data


@pytest.mark.parametrize("file_type", ["BAM", "UBAM", "CRAM"])
def test_alignment_files_activate_with_emulator_etag(client: Any, store_id: str, file_type: str) -> None:
    from emulator_support import bam, cram, upload_read_set

    data = cram() if file_type == "CRAM" else bam()
    extra = {"referenceArn": "arn:aws:omics:us-east-1:123456789012:referenceStore/1234567890/reference/1234567890"}
    read_set_id = upload_read_set(
        client, store_id, {"SOURCE1": data}, file_type, **(extra if file_type != "UBAM" else {})
    )
    meta = wait_settled(client, store_id, read_set_id)
    assert meta["status"] == "ACTIVE", meta.get("statusMessage")
    assert meta["etag"]["algorithm"] == f"{'CRAM' if file_type == 'CRAM' else 'BAM'}_MD5up"
    # Emulator-specific: the digest of the stored bytes (the service's is computed from the SAM representation).
    assert meta["etag"]["source1"] == hashlib.md5(data).hexdigest()
    assert read_back(client, store_id, read_set_id) == data


def test_upload_and_read_set_listings_paginate(client: Any, store_id: str) -> None:
    from emulator_support import upload_read_set

    uploads = [create_upload(client, store_id) for _ in range(3)]
    paginator = client.get_paginator("list_multipart_read_set_uploads")
    pages = list(paginator.paginate(sequenceStoreId=store_id, PaginationConfig={"PageSize": 2}))
    assert len(pages) == 2
    assert [u["uploadId"] for page in pages for u in page["uploads"]] == uploads

    read_sets = [upload_read_set(client, store_id, {"SOURCE1": fastq(10, seed=i)}) for i in range(3)]
    first = client.list_read_sets(sequenceStoreId=store_id, maxResults=2)
    second = client.list_read_sets(sequenceStoreId=store_id, maxResults=2, nextToken=first["nextToken"])
    assert "nextToken" not in second
    assert [rs["id"] for rs in first["readSets"] + second["readSets"]] == read_sets
    assert client.list_read_sets(sequenceStoreId=store_id, filter={"name": "no such name"})["readSets"] == []
