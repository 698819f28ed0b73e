"""SigV4: an emulator given keys accepts only requests signed with them, unsigned part bodies included."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from botocore import UNSIGNED
from botocore.config import Config
from emulator_support import fastq, read_back, upload_read_set, wait_settled

from airflow_provider_omics.testing import OmicsEmulator

ACCESS_KEY, SECRET_KEY = "AKIDEMULATOR", "emulator-secret"
NO_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture
def signed_emulator(make_emulator: Callable[..., OmicsEmulator]) -> OmicsEmulator:
    return make_emulator(access_key=ACCESS_KEY, secret_key=SECRET_KEY, activation_delay=0.01)


def test_right_keys_pass(signed_emulator: OmicsEmulator) -> None:
    client = signed_emulator.client()
    store_id = client.create_sequence_store(name="signed", description="a store with spaces & symbols")["id"]
    # UploadReadSetPart is sent with an UNSIGNED-PAYLOAD body; the JSON calls sign theirs.
    data = fastq(300)
    read_set_id = upload_read_set(client, store_id, {"SOURCE1": data})
    assert wait_settled(client, store_id, read_set_id)["status"] == "ACTIVE"
    assert read_back(client, store_id, read_set_id) == data
    assert client.list_read_sets(sequenceStoreId=store_id, maxResults=5, filter={"sampleId": "sample"})["readSets"]


@pytest.mark.parametrize(
    ("access_key", "secret_key"),
    [(ACCESS_KEY, "wrong-secret"), ("AKIDOTHER", SECRET_KEY)],
    ids=["wrong secret", "wrong access key"],
)
def test_wrong_keys_are_denied(signed_emulator: OmicsEmulator, access_key: str, secret_key: str) -> None:
    client = signed_emulator.client(aws_access_key_id=access_key, aws_secret_access_key=secret_key, config=NO_RETRY)
    with pytest.raises(client.exceptions.AccessDeniedException):
        client.list_sequence_stores()
    good = signed_emulator.client()
    store_id = good.create_sequence_store(name="s")["id"]
    upload_id = good.create_multipart_read_set_upload(
        sequenceStoreId=store_id, sourceFileType="FASTQ", subjectId="s", sampleId="a", name="n"
    )["uploadId"]
    with pytest.raises(client.exceptions.AccessDeniedException):
        client.upload_read_set_part(
            sequenceStoreId=store_id, uploadId=upload_id, partSource="SOURCE1", partNumber=1, payload=fastq(10)
        )
    assert (
        good.list_read_set_upload_parts(sequenceStoreId=store_id, uploadId=upload_id, partSource="SOURCE1")["parts"]
        == []
    )


def test_unsigned_requests_are_denied(signed_emulator: OmicsEmulator) -> None:
    client = signed_emulator.client(config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}))
    with pytest.raises(client.exceptions.AccessDeniedException):
        client.list_sequence_stores()
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{signed_emulator.endpoint_url}/sequencestore/1234567890", timeout=5)
    assert caught.value.code == 403
    assert caught.value.headers["x-amzn-ErrorType"] == "AccessDeniedException"


@pytest.mark.parametrize("with_header", [True, False], ids=["hex X-Amz-Content-SHA256", "hash in signature only"])
def test_signed_part_body_must_match_what_was_signed(signed_emulator: OmicsEmulator, with_header: bool) -> None:
    """Clients that sign the part body get it checked against the bytes that arrive."""
    client = signed_emulator.client(config=NO_RETRY)
    store_id = client.create_sequence_store(name="s")["id"]
    upload_id = client.create_multipart_read_set_upload(
        sequenceStoreId=store_id, sourceFileType="FASTQ", subjectId="s", sampleId="a", name="n"
    )["uploadId"]

    def sign_payload(request: Any, **kwargs: Any) -> None:
        request.context["payload_signing_enabled"] = True
        if with_header:
            request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(request.body).hexdigest()

    tampering = False

    def tamper(request: Any, **kwargs: Any) -> None:
        if tampering:  # same length, other bytes, after signing
            request.body = request.body.replace(b"A", b"C")

    client.meta.events.register_first("before-sign.omics.UploadReadSetPart", sign_payload)
    client.meta.events.register("before-send.omics.UploadReadSetPart", tamper)
    data = fastq(2000)

    def send(number: int) -> Any:
        return client.upload_read_set_part(
            sequenceStoreId=store_id, uploadId=upload_id, partSource="SOURCE1", partNumber=number, payload=data
        )

    assert send(1)["checksum"]
    tampering = True
    with pytest.raises(client.exceptions.AccessDeniedException):
        send(2)
    listed = client.list_read_set_upload_parts(sequenceStoreId=store_id, uploadId=upload_id, partSource="SOURCE1")
    assert [p["partNumber"] for p in listed["parts"]] == [1]
