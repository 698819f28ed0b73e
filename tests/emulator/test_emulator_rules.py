"""The service's rules: each broken rule answers its modelled exception through boto3; bad content fails."""

from __future__ import annotations

import datetime
import gzip
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from emulator_support import (
    bam,
    bgzf,
    cram,
    create_upload,
    fastq,
    split,
    upload_parts,
    upload_read_set,
    wait_settled,
)

from airflow_provider_omics.testing import OmicsEmulator
from airflow_provider_omics.testing.models import MAX_PART_SIZE

REFERENCE_ARN = "arn:aws:omics:us-east-1:123456789012:referenceStore/1234567890/reference/1234567890"
UNKNOWN_ID = "9999999999"


def _upload(c: Any, store: str, **overrides: Any) -> Any:
    args = {"sequenceStoreId": store, "sourceFileType": "FASTQ", "subjectId": "s", "sampleId": "a", "name": "n"}
    args.update(overrides)
    return c.create_multipart_read_set_upload(**{k: v for k, v in args.items() if v is not None})


def _part(
    c: Any, store: str, upload: str, number: Any = 1, source: Any = "SOURCE1", payload: Any = b"@r\nA\n+\nI\n"
) -> Any:
    return c.upload_read_set_part(
        sequenceStoreId=store, uploadId=upload, partSource=source, partNumber=number, payload=payload
    )


def _complete(c: Any, store: str, upload: str, parts: list[dict[str, Any]]) -> Any:
    return c.complete_multipart_read_set_upload(sequenceStoreId=store, uploadId=upload, parts=parts)


# Each case: (error name, call(client, store_id, fastq_upload_id, bam_upload_id)).
CASES: list[tuple[str, str, Callable[[Any, str, str, str], Any]]] = [
    ("malformed store id", "ValidationException", lambda c, s, u, b: c.get_sequence_store(id="abcdefghijk")),
    ("store id too short", "ValidationException", lambda c, s, u, b: c.get_sequence_store(id="123")),
    ("store id too long", "ValidationException", lambda c, s, u, b: c.get_sequence_store(id="1" * 37)),
    ("unknown store", "ResourceNotFoundException", lambda c, s, u, b: c.get_sequence_store(id=UNKNOWN_ID)),
    ("upload in unknown store", "ResourceNotFoundException", lambda c, s, u, b: _upload(c, UNKNOWN_ID)),
    ("malformed upload id", "ValidationException", lambda c, s, u, b: _part(c, s, "12345abcdef")),
    ("unknown upload", "ResourceNotFoundException", lambda c, s, u, b: _part(c, s, UNKNOWN_ID)),
    (
        "unknown read set",
        "ResourceNotFoundException",
        lambda c, s, u, b: c.get_read_set_metadata(sequenceStoreId=s, id=UNKNOWN_ID),
    ),
    ("missing subjectId", "ValidationException", lambda c, s, u, b: _upload(c, s, subjectId=None)),
    ("missing name", "ValidationException", lambda c, s, u, b: _upload(c, s, name=None)),
    ("missing sourceFileType", "ValidationException", lambda c, s, u, b: _upload(c, s, sourceFileType=None)),
    ("unknown sourceFileType", "ValidationException", lambda c, s, u, b: _upload(c, s, sourceFileType="VCF")),
    ("BAM without reference", "ValidationException", lambda c, s, u, b: _upload(c, s, sourceFileType="BAM")),
    ("CRAM without reference", "ValidationException", lambda c, s, u, b: _upload(c, s, sourceFileType="CRAM")),
    (
        "malformed referenceArn",
        "ValidationException",
        lambda c, s, u, b: _upload(c, s, sourceFileType="BAM", referenceArn="reference-1"),
    ),
    ("empty store name", "ValidationException", lambda c, s, u, b: c.create_sequence_store(name="")),
    (
        "unknown eTagAlgorithmFamily",
        "ValidationException",
        lambda c, s, u, b: c.create_sequence_store(name="x", eTagAlgorithmFamily="CRC32up"),
    ),
    ("SOURCE2 for BAM", "ValidationException", lambda c, s, u, b: _part(c, s, b, source="SOURCE2")),
    ("unknown partSource", "ValidationException", lambda c, s, u, b: _part(c, s, u, source="SOURCE3")),
    ("partNumber 0", "ValidationException", lambda c, s, u, b: _part(c, s, u, number=0)),
    ("partNumber 10001", "ValidationException", lambda c, s, u, b: _part(c, s, u, number=10001)),
    ("empty part", "ValidationException", lambda c, s, u, b: _part(c, s, u, payload=b"")),
    (
        "list parts without partSource",
        "ValidationException",
        lambda c, s, u, b: c.list_read_set_upload_parts(sequenceStoreId=s, uploadId=u),
    ),
    (
        "maxResults 0",
        "ValidationException",
        lambda c, s, u, b: c.list_read_set_upload_parts(
            sequenceStoreId=s, uploadId=u, partSource="SOURCE1", maxResults=0
        ),
    ),
    (
        "maxResults 101",
        "ValidationException",
        lambda c, s, u, b: c.list_multipart_read_set_uploads(sequenceStoreId=s, maxResults=101),
    ),
    (
        "bad nextToken",
        "ValidationException",
        lambda c, s, u, b: c.list_read_sets(sequenceStoreId=s, nextToken="not-a-token"),
    ),
    ("complete with no parts", "ValidationException", lambda c, s, u, b: _complete(c, s, u, [])),
    (
        "complete with a part never uploaded",
        "ValidationException",
        lambda c, s, u, b: _complete(c, s, u, [{"partNumber": 1, "partSource": "SOURCE1", "checksum": "abc"}]),
    ),
    # What cannot be read as the request's members, before any rule of the service applies.
    (
        "maxResults not a number",
        "ValidationException",
        lambda c, s, u, b: c.list_read_sets(sequenceStoreId=s, maxResults="x"),
    ),
    ("partNumber not a number", "ValidationException", lambda c, s, u, b: _part(c, s, u, number="x")),
    ("name not a string", "ValidationException", lambda c, s, u, b: c.create_sequence_store(name=5)),
    ("tag value not a string", "ValidationException", lambda c, s, u, b: _upload(c, s, tags={"k": 1})),
    (
        "partNumber of a part not a number",
        "ValidationException",
        lambda c, s, u, b: _complete(c, s, u, [{"partNumber": "1", "partSource": "SOURCE1", "checksum": "abc"}]),
    ),
    (
        "part without checksum",
        "ValidationException",
        lambda c, s, u, b: _complete(c, s, u, [{"partNumber": 1, "partSource": "SOURCE1"}]),
    ),
    (
        "operation the emulator does not implement",
        "NotSupportedOperationException",
        lambda c, s, u, b: c.delete_sequence_store(id=s),
    ),
]


@pytest.mark.parametrize(("error", "call"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule_answers_modelled_exception(
    raw_client: Any, store_id: str, error: str, call: Callable[[Any, str, str, str], Any]
) -> None:
    fastq_upload = create_upload(raw_client, store_id)
    bam_upload = create_upload(raw_client, store_id, "BAM", referenceArn=REFERENCE_ARN)
    with pytest.raises(getattr(raw_client.exceptions, error)) as caught:
        call(raw_client, store_id, fastq_upload, bam_upload)
    assert caught.value.response["Error"]["Message"]
    assert caught.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == error


def test_reference_rules_for_each_file_type(raw_client: Any, store_id: str) -> None:
    # Any well-formed ARN links BAM and CRAM; FASTQ and uBAM need none.
    for file_type in ("BAM", "CRAM"):
        assert _upload(raw_client, store_id, sourceFileType=file_type, referenceArn="arn:x")["referenceArn"] == "arn:x"
    for file_type in ("FASTQ", "UBAM"):
        assert "referenceArn" not in _upload(raw_client, store_id, sourceFileType=file_type)


def test_part_larger_than_100_mib_is_refused_before_reading(
    raw_client: Any, store_id: str, tmp_path: Path, emulator: OmicsEmulator
) -> None:
    upload_id = create_upload(raw_client, store_id)
    big = tmp_path / "big.bin"
    with open(big, "wb") as handle:  # sparse: no 100 MiB written to disk
        handle.truncate(MAX_PART_SIZE + 1)
    with open(big, "rb") as body, pytest.raises(raw_client.exceptions.ValidationException, match="larger than"):
        _part(raw_client, store_id, upload_id, payload=body)
    assert not any((emulator.data_dir / "tmp").iterdir())
    # The emulator closed that connection; the client's next request simply opens a new one.
    assert (
        raw_client.list_read_set_upload_parts(sequenceStoreId=store_id, uploadId=upload_id, partSource="SOURCE1")[
            "parts"
        ]
        == []
    )


def test_same_part_number_replaces_the_part(raw_client: Any, store_id: str) -> None:
    upload_id = create_upload(raw_client, store_id)
    data = fastq(200)
    first, second = split(data, 2)
    old = _part(raw_client, store_id, upload_id, 1, payload=b"@x\nAAAA\n+\nIIII\n")["checksum"]
    new = _part(raw_client, store_id, upload_id, 1, payload=first)["checksum"]
    assert old != new
    listed = raw_client.list_read_set_upload_parts(sequenceStoreId=store_id, uploadId=upload_id, partSource="SOURCE1")
    assert [(p["partNumber"], p["checksum"], p["partSize"]) for p in listed["parts"]] == [(1, new, len(first))]
    tail = {
        "partNumber": 2,
        "partSource": "SOURCE1",
        "checksum": _part(raw_client, store_id, upload_id, 2, payload=second)["checksum"],
    }
    stale = {"partNumber": 1, "partSource": "SOURCE1", "checksum": old}
    with pytest.raises(raw_client.exceptions.ValidationException, match="checksum"):
        _complete(raw_client, store_id, upload_id, [stale, tail])
    fresh = {"partNumber": 1, "partSource": "SOURCE1", "checksum": new}
    read_set_id = _complete(raw_client, store_id, upload_id, [fresh, tail])["readSetId"]
    assert wait_settled(raw_client, store_id, read_set_id)["status"] == "ACTIVE"


@pytest.mark.parametrize(
    ("problem", "uploaded", "listed", "message"),
    [
        ("a part left out", [("SOURCE1", 1), ("SOURCE1", 2)], [("SOURCE1", 1)], "missing from the list"),
        (
            "a gap in the numbers",
            [("SOURCE1", 1), ("SOURCE1", 3)],
            [("SOURCE1", 1), ("SOURCE1", 3)],
            "part 2 is missing",
        ),
        ("a gap in SOURCE2", [("SOURCE1", 1), ("SOURCE2", 2)], [("SOURCE1", 1), ("SOURCE2", 2)], "part 1 is missing"),
        ("no SOURCE1", [("SOURCE2", 1)], [("SOURCE2", 1)], "SOURCE1"),
        ("a part listed twice", [("SOURCE1", 1)], [("SOURCE1", 1), ("SOURCE1", 1)], "more than once"),
    ],
)
def test_complete_must_list_exactly_the_uploaded_parts(
    raw_client: Any,
    store_id: str,
    problem: str,
    uploaded: list[tuple[str, int]],
    listed: list[tuple[str, int]],
    message: str,
) -> None:
    upload_id = create_upload(raw_client, store_id)
    checksums = {(s, n): _part(raw_client, store_id, upload_id, n, s)["checksum"] for s, n in uploaded}
    parts = [{"partSource": s, "partNumber": n, "checksum": checksums[(s, n)]} for s, n in listed]
    with pytest.raises(raw_client.exceptions.ValidationException, match=message):
        _complete(raw_client, store_id, upload_id, parts)


@pytest.mark.parametrize("ending", ["abort", "complete"])
def test_finished_uploads_are_gone(raw_client: Any, store_id: str, ending: str) -> None:
    upload_id = create_upload(raw_client, store_id)
    parts = upload_parts(raw_client, store_id, upload_id, "SOURCE1", [fastq(10)])
    if ending == "abort":
        raw_client.abort_multipart_read_set_upload(sequenceStoreId=store_id, uploadId=upload_id)
    else:
        _complete(raw_client, store_id, upload_id, parts)
    not_found = raw_client.exceptions.ResourceNotFoundException
    with pytest.raises(not_found):
        _part(raw_client, store_id, upload_id, 2)
    with pytest.raises(not_found):
        _complete(raw_client, store_id, upload_id, parts)
    with pytest.raises(not_found):
        raw_client.abort_multipart_read_set_upload(sequenceStoreId=store_id, uploadId=upload_id)
    with pytest.raises(not_found):
        raw_client.list_read_set_upload_parts(sequenceStoreId=store_id, uploadId=upload_id, partSource="SOURCE1")
    assert raw_client.list_multipart_read_set_uploads(sequenceStoreId=store_id)["uploads"] == []


def test_client_token_makes_create_idempotent(raw_client: Any, store_id: str) -> None:
    first = _upload(raw_client, store_id, clientToken="token-1")["uploadId"]
    assert _upload(raw_client, store_id, clientToken="token-1")["uploadId"] == first
    assert _upload(raw_client, store_id, clientToken="token-2")["uploadId"] != first
    assert _upload(raw_client, store_id)["uploadId"] != first
    raw_client.abort_multipart_read_set_upload(sequenceStoreId=store_id, uploadId=first)
    assert _upload(raw_client, store_id, clientToken="token-1")["uploadId"] != first


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("sourceFileType", "UBAM"),
        ("subjectId", "another subject"),
        ("sampleId", "another sample"),
        ("name", "another name"),
        ("generatedFrom", "another sequencer"),
        ("referenceArn", REFERENCE_ARN),
        ("description", "another description"),
        ("tags", {"run": "2"}),
    ],
)
def test_client_token_reused_with_different_parameters_is_refused(
    raw_client: Any, store_id: str, member: str, value: Any
) -> None:
    original = {"generatedFrom": "sequencer", "description": "reads", "tags": {"run": "1"}}
    first = _upload(raw_client, store_id, clientToken="token-1", **original)["uploadId"]
    with pytest.raises(raw_client.exceptions.ValidationException, match="already used with different parameters"):
        _upload(raw_client, store_id, clientToken="token-1", **(original | {member: value}))
    # The refusal neither changed nor added an upload; the original request is still idempotent.
    (listed,) = raw_client.list_multipart_read_set_uploads(sequenceStoreId=store_id)["uploads"]
    assert (listed["uploadId"], listed["tags"]) == (first, {"run": "1"})
    assert _upload(raw_client, store_id, clientToken="token-1", **original)["uploadId"] == first


def test_client_token_is_scoped_to_the_store(raw_client: Any, store_id: str) -> None:
    other_store = raw_client.create_sequence_store(name="other")["id"]
    first = _upload(raw_client, store_id, clientToken="shared")["uploadId"]
    assert _upload(raw_client, other_store, clientToken="shared", name="different")["uploadId"] != first


def test_client_token_of_a_completed_upload_starts_a_new_upload(client: Any, store_id: str) -> None:
    upload_id = create_upload(client, store_id, clientToken="done")
    parts = upload_parts(client, store_id, upload_id, "SOURCE1", [fastq(10)])
    _complete(client, store_id, upload_id, parts)
    again = create_upload(client, store_id, clientToken="done", description="different parameters")
    assert again != upload_id


def test_get_read_set_before_active_conflicts(emulator: OmicsEmulator, client: Any, store_id: str) -> None:
    emulator.hold_activations()
    data = fastq(20)
    read_set_id = upload_read_set(client, store_id, {"SOURCE1": data})
    with pytest.raises(client.exceptions.ConflictException):
        client.get_read_set(sequenceStoreId=store_id, id=read_set_id, file="SOURCE1", partNumber=1)
    emulator.release_activations()
    assert wait_settled(client, store_id, read_set_id)["status"] == "ACTIVE"
    assert client.get_read_set(sequenceStoreId=store_id, id=read_set_id, file="SOURCE1", partNumber=1)["payload"].read()


def test_get_read_set_part_rules(client: Any, store_id: str) -> None:
    read_set_id = upload_read_set(client, store_id, {"SOURCE1": fastq(30)})
    wait_settled(client, store_id, read_set_id)
    with pytest.raises(client.exceptions.ValidationException):
        client.get_read_set(sequenceStoreId=store_id, id=read_set_id, file="SOURCE1", partNumber=4)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_read_set(sequenceStoreId=store_id, id=read_set_id, file="SOURCE2", partNumber=1)


BAD_CONTENT: list[tuple[str, str, dict[str, bytes], str]] = [
    ("header without @", "FASTQ", {"SOURCE1": b"r1\nACGT\n+\nIIII\n"}, "does not start with '@'"),
    ("no + line", "FASTQ", {"SOURCE1": b"@r1\nACGT\n-\nIIII\n"}, "'+'"),
    ("quality shorter than sequence", "FASTQ", {"SOURCE1": fastq(50) + b"@r\nACGT\n+\nII\n"}, "quality has 2"),
    ("truncated record", "FASTQ", {"SOURCE1": fastq(50) + b"@r\nACGT\n"}, "truncated FASTQ record"),
    ("truncated gzip", "FASTQ", {"SOURCE1": gzip.compress(fastq(500))[:-100]}, "truncated gzip"),
    ("corrupt gzip", "FASTQ", {"SOURCE1": b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"garbage" * 100}, "corrupt gzip"),
    ("not FASTQ at all", "FASTQ", {"SOURCE1": b"hello world, this is not a FASTQ file\n" * 10}, "malformed FASTQ"),
    (
        "paired sources of different lengths",
        "FASTQ",
        {"SOURCE1": fastq(50), "SOURCE2": fastq(49, mate=2)},
        "SOURCE1 has 50 records but SOURCE2 has 49",
    ),
    ("BAM that is plain gzip", "BAM", {"SOURCE1": gzip.compress(b"BAM\x01" + b"x" * 100)}, "not BGZF"),
    ("BAM that is not gzip", "BAM", {"SOURCE1": b"BAM\x01" + b"x" * 100}, "gzip header"),
    ("BGZF without BAM magic", "BAM", {"SOURCE1": bgzf(b"SAM text " * 100)}, "BAM magic"),
    ("uBAM without BAM magic", "UBAM", {"SOURCE1": bgzf(b"nope" * 100)}, "BAM magic"),
    ("CRAM garbage", "CRAM", {"SOURCE1": b"CRAB" + bam()[4:]}, "not CRAM"),
]


@pytest.mark.parametrize(
    ("file_type", "sources", "message"), [c[1:] for c in BAD_CONTENT], ids=[c[0] for c in BAD_CONTENT]
)
def test_invalid_content_ends_upload_failed(
    client: Any, store_id: str, file_type: str, sources: dict[str, bytes], message: str
) -> None:
    extra = {"referenceArn": REFERENCE_ARN} if file_type in ("BAM", "CRAM") else {}
    read_set_id = upload_read_set(client, store_id, sources, file_type, **extra)
    meta = wait_settled(client, store_id, read_set_id)
    assert meta["status"] == "UPLOAD_FAILED"
    assert message in meta["statusMessage"]
    assert "etag" not in meta


def test_valid_content_sanity(client: Any, store_id: str) -> None:
    """The generators used above produce content the emulator accepts when it is not broken on purpose."""
    read_set_id = upload_read_set(client, store_id, {"SOURCE1": cram()}, "CRAM", referenceArn=REFERENCE_ARN)
    assert wait_settled(client, store_id, read_set_id)["status"] == "ACTIVE"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/sequencestore/{store}/readsets", {"filter": "ACTIVE"}),
        ("/sequencestores", {"filter": {"createdAfter": [2024]}}),
        ("/sequencestore/{store}/upload/{upload}/complete", {"parts": ["SOURCE1 1"]}),
        ("/sequencestore/{store}/upload/{upload}/complete", {"parts": {"partNumber": 1}}),
        ("/tags/{arn}", {"tags": "k=v"}),
    ],
)
def test_members_of_the_wrong_json_type(
    emulator: OmicsEmulator, client: Any, store_id: str, path: str, body: dict[str, Any]
) -> None:
    """Bodies boto3 cannot even send: the emulator refuses them as ValidationException, not as its own error."""
    upload_id = create_upload(client, store_id)
    arn = urllib.parse.quote(client.get_sequence_store(id=store_id)["arn"], safe="")
    url = emulator.endpoint_url + path.format(store=store_id, upload=upload_id, arn=arn)
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert (caught.value.code, caught.value.headers["x-amzn-ErrorType"]) == (400, "ValidationException")


def test_time_filters(client: Any, store_id: str) -> None:
    """Timestamps travel in a JSON body as epoch seconds."""
    upload_id = create_upload(client, store_id)
    upload_parts(client, store_id, upload_id, "SOURCE1", [fastq(10)])
    created = client.list_read_set_upload_parts(sequenceStoreId=store_id, uploadId=upload_id, partSource="SOURCE1")
    when = created["parts"][0]["creationTime"]
    earlier, later = when - datetime.timedelta(minutes=1), when + datetime.timedelta(minutes=1)

    def parts(**filt: Any) -> int:
        listed = client.list_read_set_upload_parts(
            sequenceStoreId=store_id, uploadId=upload_id, partSource="SOURCE1", filter=filt
        )
        return len(listed["parts"])

    assert (parts(createdAfter=later), parts(createdBefore=later), parts(createdAfter=earlier)) == (0, 1, 1)
    stores = client.list_sequence_stores(filter={"createdAfter": later, "name": "test store"})["sequenceStores"]
    assert stores == []
    assert (
        len(client.list_sequence_stores(filter={"createdBefore": later, "name": "test store"})["sequenceStores"]) == 1
    )


def test_error_shape_on_the_wire(emulator: OmicsEmulator) -> None:
    request = urllib.request.Request(f"{emulator.endpoint_url}/sequencestore/{UNKNOWN_ID}", method="GET")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 404
    assert caught.value.headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
    assert "not found" in json.loads(caught.value.read())["message"]
