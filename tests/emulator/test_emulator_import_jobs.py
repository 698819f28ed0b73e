"""Read set import jobs: StartReadSetImportJob, GetReadSetImportJob and ListReadSetImportJobs over real boto3
calls, reading their sources from moto's S3 server; statuses observed through the import job hold, never
through sleeps."""

from __future__ import annotations

import gzip
import hashlib
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ConnectionClosedError
from emulator_support import bam, fastq, read_back, upload_read_set, wait_settled

from airflow_provider_omics.testing import FaultConfig, OmicsEmulator, emulator_admin
from airflow_provider_omics.testing import models as emulator_models

ROLE = "arn:aws:iam::123456789012:role/omics-import"
REFERENCE = "arn:aws:omics:us-east-1:123456789012:referenceStore/1234567890/reference/1234567890"
DONE = ("COMPLETED", "COMPLETED_WITH_FAILURES", "FAILED")
S3_KEYS = {"s3_access_key": "testing", "s3_secret_key": "testing"}
NO_RETRY = Config(parameter_validation=False, retries={"total_max_attempts": 1})


@pytest.fixture
def bucket(s3_server: str) -> Any:
    """A fresh bucket on moto's S3 server; ``put(key, data)`` returns the object's s3:// URI."""
    s3 = boto3.client(
        "s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    name = f"sources-{time.monotonic_ns()}"
    s3.create_bucket(Bucket=name)

    class Bucket:
        def put(self, key: str, data: bytes) -> str:
            s3.put_object(Bucket=name, Key=key, Body=data)
            return f"s3://{name}/{key}"

        def uri(self, key: str) -> str:
            return f"s3://{name}/{key}"

    return Bucket()


@pytest.fixture
def importer(make_emulator: Callable[..., OmicsEmulator], s3_server: str) -> OmicsEmulator:
    return make_emulator(activation_delay=0.01, import_job_delay=0.01, s3_endpoint_url=s3_server, **S3_KEYS)


@pytest.fixture
def client(importer: OmicsEmulator) -> Any:
    return importer.client(config=Config(retries={"mode": "standard", "max_attempts": 3}))


@pytest.fixture
def raw_client(importer: OmicsEmulator) -> Any:
    """Neither validates parameters nor retries: requests reach the emulator as given."""
    return importer.client(config=NO_RETRY)


@pytest.fixture
def store_id(client: Any) -> str:
    return str(client.create_sequence_store(name="imports")["id"])


def fastq_source(uri1: str, uri2: str | None = None, **extra: Any) -> dict[str, Any]:
    files = {"source1": uri1, **({"source2": uri2} if uri2 else {})}
    return {"sourceFiles": files, "sourceFileType": "FASTQ", "subjectId": "subject", "sampleId": "sample", **extra}


def bam_source(uri: str, **extra: Any) -> dict[str, Any]:
    return {
        "sourceFiles": {"source1": uri},
        "sourceFileType": "BAM",
        "subjectId": "subject",
        "sampleId": "sample",
        "referenceArn": REFERENCE,
        **extra,
    }


def start(client: Any, store_id: str, sources: list[dict[str, Any]], **extra: Any) -> str:
    response = client.start_read_set_import_job(sequenceStoreId=store_id, roleArn=ROLE, sources=sources, **extra)
    return str(response["id"])


def get_job(client: Any, store_id: str, job_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = client.get_read_set_import_job(sequenceStoreId=store_id, id=job_id)
    return answer


def test_paired_fastq_and_bam_import_like_a_direct_upload(
    importer: OmicsEmulator, client: Any, store_id: str, bucket: Any
) -> None:
    read1, read2, alignments = fastq(500, seed=1, mate=1), fastq(500, seed=2, mate=2), bam(seed=3)
    # The first mate gzipped: the ETag is the digest of the uncompressed FASTQ, as for a direct upload.
    read1_gz = gzip.compress(read1, mtime=0)
    uris = [bucket.put("run/r1.fq.gz", read1_gz), bucket.put("run/r2.fq", read2)]
    bam_uri = bucket.put("run/sample.bam", alignments)
    importer.hold_import_jobs()
    job_id = start(
        client,
        store_id,
        [
            fastq_source(*uris, name="paired", generatedFrom="run 1", tags={"run": "1"}),
            bam_source(bam_uri, name="aligned", description="aligned reads"),
        ],
        clientToken="import-1",
    )

    submitted = get_job(client, store_id, job_id)
    assert submitted["status"] == "SUBMITTED"
    assert [s["status"] for s in submitted["sources"]] == ["NOT_STARTED", "NOT_STARTED"]
    assert submitted["sources"][0]["sourceFiles"] == {"source1": uris[0], "source2": uris[1]}
    assert submitted["sources"][0]["tags"] == {"run": "1"}
    assert "completionTime" not in submitted and "readSetId" not in submitted["sources"][0]

    importer.hold_import_jobs(at="IN_PROGRESS")
    importer.wait_for_import_job(job_id, "IN_PROGRESS")
    assert get_job(client, store_id, job_id)["status"] == "IN_PROGRESS"
    importer.release_import_jobs()
    importer.wait_for_import_job(job_id, DONE)

    job = get_job(client, store_id, job_id)
    assert job["status"] == "COMPLETED" and "statusMessage" not in job
    assert job["completionTime"] >= job["creationTime"]
    assert [s["status"] for s in job["sources"]] == ["FINISHED", "FINISHED"]
    paired_id, aligned_id = (s["readSetId"] for s in job["sources"])

    paired = client.get_read_set_metadata(sequenceStoreId=store_id, id=paired_id)
    assert (paired["status"], paired["creationType"], paired["creationJobId"]) == ("ACTIVE", "IMPORT", job_id)
    assert paired["name"] == "paired" and paired["sequenceInformation"]["generatedFrom"] == "run 1"
    assert read_back(client, store_id, paired_id, "SOURCE1") == read1_gz
    assert read_back(client, store_id, paired_id, "SOURCE2") == read2
    aligned = client.get_read_set_metadata(sequenceStoreId=store_id, id=aligned_id)
    assert (aligned["status"], aligned["referenceArn"], aligned["fileType"]) == ("ACTIVE", REFERENCE, "BAM")
    assert read_back(client, store_id, aligned_id) == alignments
    assert client.list_tags_for_resource(resourceArn=paired["arn"])["tags"] == {"run": "1"}

    # The same bytes uploaded directly: the same ETags, sizes and counts.
    direct_paired = wait_settled(
        client,
        store_id,
        upload_read_set(client, store_id, {"SOURCE1": read1_gz, "SOURCE2": read2}, generatedFrom="run 1"),
    )
    direct_aligned = wait_settled(
        client, store_id, upload_read_set(client, store_id, {"SOURCE1": alignments}, "BAM", referenceArn=REFERENCE)
    )
    for imported, direct in ((paired, direct_paired), (aligned, direct_aligned)):
        assert imported["etag"] == direct["etag"]
        assert imported.get("sequenceInformation") == direct.get("sequenceInformation")
        assert {k: v["contentLength"] for k, v in imported["files"].items()} == {
            k: v["contentLength"] for k, v in direct["files"].items()
        }
    assert paired["etag"]["source1"] == hashlib.md5(read1).hexdigest()

    listed = client.list_read_sets(sequenceStoreId=store_id, filter={"creationType": "IMPORT"})["readSets"]
    assert sorted(rs["id"] for rs in listed) == sorted([paired_id, aligned_id])
    assert all(rs["creationType"] == "IMPORT" for rs in listed)


def test_large_object_is_stored_in_parts(
    importer: OmicsEmulator, client: Any, store_id: str, bucket: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 100 MiB parts in the service; smaller here, so that a small object spans several.
    monkeypatch.setattr(emulator_models, "MAX_PART_SIZE", 64 * 1024)
    data = fastq(3000, seed=5)
    job_id = start(client, store_id, [fastq_source(bucket.put("big.fq", data))])
    read_set_id = importer.wait_for_import_job(job_id, DONE)["sources"][0]["readSetId"]
    meta = client.get_read_set_metadata(sequenceStoreId=store_id, id=read_set_id)
    assert meta["files"]["source1"] == {
        "totalParts": -(-len(data) // (64 * 1024)),
        "partSize": 64 * 1024,
        "contentLength": len(data),
    }
    assert read_back(client, store_id, read_set_id) == data
    assert meta["etag"]["source1"] == hashlib.md5(data).hexdigest()


def test_a_missing_or_malformed_source_fails_alone(
    importer: OmicsEmulator, client: Any, store_id: str, bucket: Any
) -> None:
    good = bucket.put("good.fq", fastq(50))
    bad = bucket.put("bad.fq", b"this is not a FASTQ file\n")
    missing = bucket.uri("no/such/object.fq")
    job_id = start(client, store_id, [fastq_source(good), fastq_source(missing), fastq_source(bad)])
    importer.wait_for_import_job(job_id, DONE)

    job = get_job(client, store_id, job_id)
    assert (job["status"], job["statusMessage"]) == ("COMPLETED_WITH_FAILURES", "2 of 3 sources failed")
    ok, gone, malformed = job["sources"]
    assert ok["status"] == "FINISHED" and "statusMessage" not in ok
    assert gone["status"] == "FAILED" and "readSetId" not in gone
    assert missing in gone["statusMessage"] and "NoSuchKey" in gone["statusMessage"]
    # A source that was read but fails the content check has a read set, UPLOAD_FAILED like a direct upload's.
    assert malformed["status"] == "FAILED" and "FASTQ" in malformed["statusMessage"]
    meta = client.get_read_set_metadata(sequenceStoreId=store_id, id=malformed["readSetId"])
    assert meta["status"] == "UPLOAD_FAILED" and meta["statusMessage"].startswith(malformed["statusMessage"][:60])


def test_all_sources_missing_fail_the_job(importer: OmicsEmulator, client: Any, store_id: str, bucket: Any) -> None:
    uris = [bucket.uri("missing-1.fq"), bucket.uri("missing-2.bam"), "s3://no-such-bucket-here/x.fq"]
    job_id = start(client, store_id, [fastq_source(uris[0]), bam_source(uris[1]), fastq_source(uris[2])])
    importer.wait_for_import_job(job_id, DONE)
    job = get_job(client, store_id, job_id)
    assert (job["status"], job["statusMessage"]) == ("FAILED", "all 3 sources failed")
    for source, uri in zip(job["sources"], uris, strict=True):
        assert source["status"] == "FAILED" and uri in source["statusMessage"]
    assert "NoSuchBucket" in job["sources"][2]["statusMessage"]
    assert client.list_read_sets(sequenceStoreId=store_id)["readSets"] == []


def _too_many() -> list[dict[str, Any]]:
    return [fastq_source(f"s3://bucket/{n}.fq") for n in range(emulator_models.MAX_IMPORT_SOURCES + 1)]


@pytest.mark.parametrize(
    ("role", "sources", "match"),
    [
        (ROLE, [fastq_source("/local/file.fq")], "S3 URI"),
        (ROLE, [fastq_source("https://bucket.s3.amazonaws.com/r.fq")], "S3 URI"),
        (ROLE, [fastq_source("s3://bucket/r1.fq", "file:///r2.fq")], "source2 must be an S3 URI"),
        ("arn:aws:iam::123456789012:user/someone", [fastq_source("s3://bucket/r.fq")], "roleArn"),
        ("arn:aws:iam::1234:role/short-account", [fastq_source("s3://bucket/r.fq")], "roleArn"),
        ("not-an-arn-of-any-kind", [fastq_source("s3://bucket/r.fq")], "roleArn"),
        (ROLE, [], "1 to 100 sources"),
        (ROLE, _too_many(), "1 to 100 sources"),
        (ROLE, [{**bam_source("s3://bucket/a.bam"), "referenceArn": None}], "referenceArn is required"),
        (ROLE, [{**bam_source("s3://bucket/a.bam"), "sourceFileType": "CRAM", "referenceArn": None}], "reference"),
        (
            ROLE,
            [{**bam_source("s3://bucket/a.bam"), "sourceFiles": {"source1": "s3://bkt/1", "source2": "s3://bkt/2"}}],
            "source2 is only for paired FASTQ",
        ),
        (ROLE, [fastq_source("s3://bucket/r.fq", name="n" * 128)], "name must be 1 to 127"),
        (ROLE, [fastq_source("s3://bucket/r.fq", sampleId="")], "sampleId must be 1 to 127"),
        (ROLE, [fastq_source("s3://bucket/r.fq", description="d" * 256)], "description must be 1 to 255"),
        (ROLE, [fastq_source("s3://bucket/r.fq", sourceFileType="SAM")], "sourceFileType must be one of"),
        (ROLE, [{"sourceFileType": "FASTQ", "subjectId": "a", "sampleId": "b"}], "sourceFiles is required"),
    ],
)
def test_invalid_requests_are_refused(
    raw_client: Any, store_id: str, role: str, sources: list[dict[str, Any]], match: str
) -> None:
    sources = [{k: v for k, v in source.items() if v is not None} for source in sources]
    with pytest.raises(raw_client.exceptions.ValidationException, match=match):
        raw_client.start_read_set_import_job(sequenceStoreId=store_id, roleArn=role, sources=sources)
    assert raw_client.list_read_set_import_jobs(sequenceStoreId=store_id)["importJobs"] == []


def test_unknown_store_and_job(raw_client: Any, store_id: str) -> None:
    with pytest.raises(raw_client.exceptions.ResourceNotFoundException):
        start(raw_client, "9999999999", [fastq_source("s3://bucket/r.fq")])
    with pytest.raises(raw_client.exceptions.ResourceNotFoundException):
        get_job(raw_client, store_id, "1234567890")
    with pytest.raises(raw_client.exceptions.ResourceNotFoundException):
        raw_client.list_read_set_import_jobs(sequenceStoreId="9999999999")
    with pytest.raises(raw_client.exceptions.ValidationException):
        get_job(raw_client, store_id, "not-digits")


def test_client_token_is_idempotent(importer: OmicsEmulator, client: Any, store_id: str, bucket: Any) -> None:
    importer.hold_import_jobs()
    sources = [fastq_source(bucket.put("r.fq", fastq(20)), name="reads")]
    job_id = start(client, store_id, sources, clientToken="run-7")
    again = client.start_read_set_import_job(
        sequenceStoreId=store_id, roleArn=ROLE, sources=sources, clientToken="run-7"
    )
    assert (again["id"], again["status"]) == (job_id, "SUBMITTED")
    with pytest.raises(client.exceptions.ValidationException, match=r"different parameters \(sources\)"):
        start(client, store_id, [{**sources[0], "name": "other"}], clientToken="run-7")
    with pytest.raises(client.exceptions.ValidationException, match=r"different parameters \(roleArn\)"):
        client.start_read_set_import_job(
            sequenceStoreId=store_id,
            roleArn="arn:aws:iam::123456789012:role/another",
            sources=sources,
            clientToken="run-7",
        )
    # Without a token, or with another one, or in another store: a new job.
    assert start(client, store_id, sources) != job_id
    assert start(client, store_id, sources, clientToken="run-8") != job_id
    other_store = client.create_sequence_store(name="other")["id"]
    assert start(client, other_store, sources, clientToken="run-7") != job_id
    importer.release_import_jobs()
    importer.wait_for_import_job(job_id, DONE)
    # A finished job still answers its token, with its status now.
    finished = client.start_read_set_import_job(
        sequenceStoreId=store_id, roleArn=ROLE, sources=sources, clientToken="run-7"
    )
    assert (finished["id"], finished["status"]) == (job_id, "COMPLETED")


def test_list_import_jobs_paginates_and_filters(
    importer: OmicsEmulator, client: Any, store_id: str, bucket: Any
) -> None:
    importer.hold_import_jobs()
    good = bucket.put("r.fq", fastq(10))
    job_ids = [start(client, store_id, [fastq_source(good)]) for _ in range(5)]
    client.start_read_set_import_job(
        sequenceStoreId=client.create_sequence_store(name="elsewhere")["id"],
        roleArn=ROLE,
        sources=[fastq_source(good)],
    )
    first = client.list_read_set_import_jobs(sequenceStoreId=store_id, maxResults=2)
    assert [job["id"] for job in first["importJobs"]] == job_ids[:2] and first["nextToken"]
    pages = client.get_paginator("list_read_set_import_jobs").paginate(
        sequenceStoreId=store_id, PaginationConfig={"PageSize": 2}
    )
    listed = [job for page in pages for job in page["importJobs"]]
    assert [job["id"] for job in listed] == job_ids
    assert {(job["status"], job["roleArn"], job["sequenceStoreId"]) for job in listed} == {
        ("SUBMITTED", ROLE, store_id)
    }

    importer.release_import_jobs()
    for job_id in job_ids:
        importer.wait_for_import_job(job_id, DONE)
    done = client.list_read_set_import_jobs(sequenceStoreId=store_id, filter={"status": "COMPLETED"})["importJobs"]
    assert [job["id"] for job in done] == job_ids and all("completionTime" in job for job in done)
    assert client.list_read_set_import_jobs(sequenceStoreId=store_id, filter={"status": "FAILED"})["importJobs"] == []
    created = done[2]["creationTime"]
    after = client.list_read_set_import_jobs(sequenceStoreId=store_id, filter={"createdAfter": created})
    assert [job["id"] for job in after["importJobs"]] == job_ids[2:]
    with pytest.raises(client.exceptions.ValidationException):
        importer.client(config=NO_RETRY).list_read_set_import_jobs(sequenceStoreId=store_id, maxResults=101)
    with pytest.raises(client.exceptions.ValidationException):
        importer.client(config=NO_RETRY).list_read_set_import_jobs(sequenceStoreId=store_id, filter={"status": "DONE"})


def test_release_after_reads_lets_a_held_job_go(
    importer: OmicsEmulator, client: Any, store_id: str, bucket: Any
) -> None:
    importer.hold_import_jobs(at="IN_PROGRESS", release_after_reads=2)
    job_id = start(client, store_id, [fastq_source(bucket.put("r.fq", fastq(10)))])
    importer.wait_for_import_job(job_id, "IN_PROGRESS")
    assert get_job(client, store_id, job_id)["status"] == "IN_PROGRESS"
    assert get_job(client, store_id, job_id)["status"] == "IN_PROGRESS"  # the second look lets it go
    assert importer.wait_for_import_job(job_id, DONE)["status"] == "COMPLETED"


def test_a_job_waits_for_held_activations(importer: OmicsEmulator, client: Any, store_id: str, bucket: Any) -> None:
    importer.hold_activations()
    job_id = start(client, store_id, [fastq_source(bucket.put("r.fq", fastq(10)))])
    # The read set exists, PROCESSING_UPLOAD; its job stays IN_PROGRESS until it settles.
    job = importer.wait_for_import_job_read_sets(job_id)
    (source,) = job["sources"]
    assert (job["status"], source["status"]) == ("IN_PROGRESS", "IN_PROGRESS")
    meta = client.get_read_set_metadata(sequenceStoreId=store_id, id=source["readSetId"])
    assert meta["status"] == "PROCESSING_UPLOAD"
    importer.release_activations()
    job = importer.wait_for_import_job(job_id, DONE)
    assert job["status"] == "COMPLETED"
    meta = client.get_read_set_metadata(sequenceStoreId=store_id, id=job["sources"][0]["readSetId"])
    assert meta["status"] == "ACTIVE"


def test_admin_endpoint_steers_the_hold(importer: OmicsEmulator, client: Any, store_id: str, bucket: Any) -> None:
    url = importer.endpoint_url
    assert emulator_admin(url, "importjobs") == {"hold": False, "at": None, "release_after_reads": None}
    assert emulator_admin(url, "importjobs", {"hold": True}) == {
        "hold": True,
        "at": "SUBMITTED",
        "release_after_reads": None,
    }
    job_id = start(client, store_id, [fastq_source(bucket.put("r.fq", fastq(10)))])
    assert get_job(client, store_id, job_id)["status"] == "SUBMITTED"
    assert emulator_admin(url, "importjobs", {"hold": True, "at": "IN_PROGRESS"})["at"] == "IN_PROGRESS"
    importer.wait_for_import_job(job_id, "IN_PROGRESS")
    assert emulator_admin(url, "importjobs", {"hold": False})["hold"] is False
    importer.wait_for_import_job(job_id, DONE)
    for bad in ({"hold": True, "at": "COMPLETED"}, {"hold": False, "at": "SUBMITTED"}, {"hold": "yes"}, {"x": 1}):
        with pytest.raises(urllib.error.HTTPError) as error:
            emulator_admin(url, "importjobs", bad)
        assert error.value.code == 400


def test_jobs_survive_a_restart(tmp_path: Path, s3_server: str, bucket: Any) -> None:
    data = fastq(200, seed=4)
    uri = bucket.put("durable.fq", data)
    settings: dict[str, Any] = {"activation_delay": 0.01, "import_job_delay": 0.01, "s3_endpoint_url": s3_server}
    with OmicsEmulator(data_dir=tmp_path, **settings, **S3_KEYS) as first:
        client = first.client()
        store_id = client.create_sequence_store(name="durable")["id"]
        done_id = start(client, store_id, [fastq_source(uri)], clientToken="done")
        finished = first.wait_for_import_job(done_id, DONE)
        # Stopping does not wait for held jobs: one stays IN_PROGRESS on disk, the other SUBMITTED.
        first.hold_import_jobs(at="IN_PROGRESS")
        started_id = start(client, store_id, [fastq_source(uri), fastq_source(bucket.uri("gone.fq"))])
        first.wait_for_import_job(started_id, "IN_PROGRESS")
        first.hold_import_jobs()
        submitted_id = start(client, store_id, [fastq_source(uri)])
        assert get_job(client, store_id, submitted_id)["status"] == "SUBMITTED"
    # The S3 keys come from the environment this time (tests/conftest.py sets dummy ones).
    with OmicsEmulator(data_dir=tmp_path, **settings) as second:
        client = second.client()
        again = get_job(client, store_id, done_id)
        assert (again["status"], again["sources"]) == (finished["status"], finished["sources"])
        assert start(client, store_id, [fastq_source(uri)], clientToken="done") == done_id
        started = second.wait_for_import_job(started_id, DONE)
        assert (started["status"], [s["status"] for s in started["sources"]]) == (
            "COMPLETED_WITH_FAILURES",
            ["FINISHED", "FAILED"],
        )
        submitted = second.wait_for_import_job(submitted_id, DONE)
        assert submitted["status"] == "COMPLETED"
        for job in (started, submitted):
            assert read_back(client, store_id, job["sources"][0]["readSetId"]) == data
        listed = client.list_read_set_import_jobs(sequenceStoreId=store_id)["importJobs"]
        assert [j["id"] for j in listed] == [done_id, started_id, submitted_id]
    assert not list((tmp_path / "tmp").iterdir())


def test_faults_apply_to_import_jobs(importer: OmicsEmulator, store_id: str, bucket: Any, fast_retries: None) -> None:
    sources = [fastq_source(bucket.put("r.fq", fastq(10)))]
    retrying = importer.client(config=Config(retries={"mode": "standard", "max_attempts": 5}))
    importer.inject("ThrottlingException", operation="StartReadSetImportJob", count=2)
    response = retrying.start_read_set_import_job(sequenceStoreId=store_id, roleArn=ROLE, sources=sources)
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert importer.fault_counts["ThrottlingException"] == 2

    once = importer.client(config=NO_RETRY)
    importer.set_faults(
        FaultConfig(
            seed=1, error_rates={"ServiceQuotaExceededException": 1.0}, operations=frozenset({"StartReadSetImportJob"})
        )
    )
    with pytest.raises(once.exceptions.ServiceQuotaExceededException):
        once.start_read_set_import_job(sequenceStoreId=store_id, roleArn=ROLE, sources=sources)
    # Only StartReadSetImportJob is faulted: the job that started is readable.
    assert get_job(once, store_id, response["id"])["id"] == response["id"]
    importer.set_faults(FaultConfig())

    # A lost answer: the job exists, and a retry with the same token finds it instead of starting another.
    importer.inject("drop_response", operation="StartReadSetImportJob")
    with pytest.raises(ConnectionClosedError):
        once.start_read_set_import_job(sequenceStoreId=store_id, roleArn=ROLE, sources=sources, clientToken="lost")
    found = once.start_read_set_import_job(sequenceStoreId=store_id, roleArn=ROLE, sources=sources, clientToken="lost")
    listed = once.list_read_set_import_jobs(sequenceStoreId=store_id)["importJobs"]
    assert [job["id"] for job in listed] == [response["id"], found["id"]]
