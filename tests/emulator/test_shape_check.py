"""The response checker itself: it must find each kind of deviation, or a clean run of the emulator tests
would prove nothing."""

from __future__ import annotations

import datetime
import io
from typing import Any

import pytest
from botocore.response import StreamingBody
from shape_check import pattern_matches, response_problems, service_model

NOW = datetime.datetime.now(tz=datetime.UTC)
STORE = {"id": "1234567890", "arn": "arn:aws:omics:us-east-1:123456789012:sequenceStore/1234567890"}
PART = {"partNumber": 1, "partSize": 10, "partSource": "SOURCE1", "checksum": "c", "creationTime": NOW}
UPLOAD = {
    "sequenceStoreId": "1234567890",
    "uploadId": "1234567891",
    "sourceFileType": "FASTQ",
    "subjectId": "s",
    "sampleId": "a",
    "creationTime": NOW,
}


def _problems(operation: str, response: dict[str, Any]) -> list[str]:
    return response_problems(
        service_model().operation_model(operation), {**response, "ResponseMetadata": {"HTTPStatusCode": 200}}
    )


@pytest.mark.parametrize(
    ("operation", "response"),
    [
        ("GetSequenceStore", {**STORE, "creationTime": NOW, "status": "ACTIVE", "eTagAlgorithmFamily": "MD5up"}),
        ("ListReadSetUploadParts", {"parts": [PART], "nextToken": "2"}),
        ("ListTagsForResource", {"tags": {"k": "", "ключ": "значение"}}),
        ("GetReadSet", {"payload": StreamingBody(io.BytesIO(b"x"), 1)}),
        ("AbortMultipartReadSetUpload", {}),
        # A FASTQ upload need not name a reference nor its origin.
        ("CreateMultipartReadSetUpload", UPLOAD),
        ("ListMultipartReadSetUploads", {"uploads": [UPLOAD]}),
    ],
)
def test_conforming_responses_pass(operation: str, response: dict[str, Any]) -> None:
    assert _problems(operation, response) == []


@pytest.mark.parametrize(
    ("operation", "response", "problem"),
    [
        ("GetSequenceStore", {"id": STORE["id"], "creationTime": NOW}, "required member 'arn'"),
        ("GetSequenceStore", {**STORE, "creationTime": NOW, "colour": "blue"}, "has no member 'colour'"),
        ("GetSequenceStore", {**STORE, "creationTime": NOW, "status": "READY"}, "'READY' is not one of"),
        ("GetSequenceStore", {**STORE, "creationTime": "2024-01-01T00:00:00Z"}, "expected a timestamp"),
        ("GetSequenceStore", {**STORE, "id": "123", "creationTime": NOW}, "length 3 is below the minimum 10"),
        ("GetSequenceStore", {**STORE, "id": "123456789x", "creationTime": NOW}, "does not match"),
        ("GetSequenceStore", {**STORE, "name": "tab\there", "creationTime": NOW}, "does not match"),
        ("ListReadSetUploadParts", {"parts": [{**PART, "partNumber": 10001}]}, "above the maximum 10000"),
        ("ListReadSetUploadParts", {"parts": [{**PART, "partSize": "10"}]}, "expected an integer"),
        ("ListReadSetUploadParts", {"parts": [{**PART, "partNumber": True}]}, "expected an integer"),
        ("ListReadSetUploadParts", {"parts": PART}, "expected a list"),
        ("ListTagsForResource", {"tags": {"": "v"}}, "below the minimum 1"),
        ("ListTagsForResource", {"tags": ["k"]}, "expected a map"),
        ("GetReadSet", {"payload": b"x"}, "expected StreamingBody"),
        ("AbortMultipartReadSetUpload", {"aborted": True}, "has no member 'aborted'"),
        # Absent only where the request could leave it out: a BAM upload always has its reference.
        ("CreateMultipartReadSetUpload", {**UPLOAD, "sourceFileType": "BAM"}, "required member 'referenceArn'"),
    ],
)
def test_deviations_are_found(operation: str, response: dict[str, Any], problem: str) -> None:
    problems = _problems(operation, response)
    assert len(problems) == 1 and problem in problems[0], problems


def test_patterns() -> None:
    printable = r"[\p{L}||\p{M}||\p{Z}||\p{S}||\p{N}||\p{P}]+"
    assert pattern_matches(printable, "Sample 7 — ünïcode | ok")
    assert not pattern_matches(printable, "")
    assert not pattern_matches(printable, "line\nbreak")
    assert pattern_matches("[0-9]+", "0123")
    assert not pattern_matches("[0-9]+", "12a")  # matched in full, as AWS applies them
    assert pattern_matches("$|^s3://([a-z0-9][a-z0-9-.]{1,61}[a-z0-9])/?((.{1,1024})/)?", "")
    with pytest.raises(NotImplementedError):
        pattern_matches(r"\p{Lu}+\d", "A1")
