"""Fault injection: seeded throttles and 500s that botocore retries through, dropped connections, lost answers,
one-shots."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ConnectionClosedError
from emulator_support import create_upload, fastq, split, upload_parts, wait_settled

from airflow_provider_omics.testing import FaultConfig, OmicsEmulator
from airflow_provider_omics.testing.exceptions import UPLOAD_PART_ERRORS
from airflow_provider_omics.testing.faults import DROP_RESPONSE

STANDARD = Config(retries={"mode": "standard", "max_attempts": 10})
NO_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 1})


def test_seeded_throttles_and_server_errors_are_retried(emulator: OmicsEmulator, fast_retries: None) -> None:
    client = emulator.client(config=STANDARD)
    store_id = client.create_sequence_store(name="faults")["id"]
    upload_id = create_upload(client, store_id)
    emulator.set_faults(
        FaultConfig(seed=7, throttle_rate=0.25, internal_error_rate=0.25, operations=frozenset({"UploadReadSetPart"}))
    )
    data = fastq(2000)
    chunks = split(data, 30)
    parts = []
    retries = 0
    for number, chunk in enumerate(chunks, start=1):
        response = client.upload_read_set_part(
            sequenceStoreId=store_id, uploadId=upload_id, partSource="SOURCE1", partNumber=number, payload=chunk
        )
        retries += response["ResponseMetadata"]["RetryAttempts"]
        parts.append({"partNumber": number, "partSource": "SOURCE1", "checksum": response["checksum"]})
    counts = emulator.fault_counts
    assert counts.get("ThrottlingException", 0) > 0
    assert counts.get("InternalServerException", 0) > 0
    assert retries == counts["ThrottlingException"] + counts["InternalServerException"]
    # Faults are limited to UploadReadSetPart: the rest of the upload is untouched.
    read_set_id = client.complete_multipart_read_set_upload(sequenceStoreId=store_id, uploadId=upload_id, parts=parts)[
        "readSetId"
    ]
    assert wait_settled(client, store_id, read_set_id)["status"] == "ACTIVE"
    assert emulator.fault_counts == counts


def test_same_seed_same_faults() -> None:
    def run() -> list[str | None]:
        with OmicsEmulator(
            faults=FaultConfig(seed=3, throttle_rate=0.3, error_rates={"ValidationException": 0.2})
        ) as emu:
            client = emu.client(config=NO_RETRY)
            outcomes: list[str | None] = []
            for _ in range(20):
                try:
                    client.list_sequence_stores()
                    outcomes.append(None)
                except client.exceptions.ClientError as exc:
                    outcomes.append(exc.response["Error"]["Code"])
            return outcomes

    first = run()
    assert first == run()
    assert {"ThrottlingException", "ValidationException", None} <= set(first)


def test_dropped_connections_mid_body_are_retried(emulator: OmicsEmulator, fast_retries: None) -> None:
    client = emulator.client(config=STANDARD)
    store_id = client.create_sequence_store(name="drops")["id"]
    upload_id = create_upload(client, store_id)
    data = fastq(40000)  # several MiB: the client is still sending when the connection drops
    emulator.inject("drop", operation="UploadReadSetPart", count=2)
    parts = upload_parts(client, store_id, upload_id, "SOURCE1", [data])
    assert emulator.fault_counts["drop"] == 2
    emulator.set_faults(FaultConfig(seed=1, drop_rate=0.5, operations=frozenset({"GetReadSetMetadata"})))
    read_set_id = client.complete_multipart_read_set_upload(sequenceStoreId=store_id, uploadId=upload_id, parts=parts)[
        "readSetId"
    ]
    meta = wait_settled(client, store_id, read_set_id)
    assert meta["status"] == "ACTIVE"
    assert meta["files"]["source1"]["contentLength"] == len(data)
    assert emulator.fault_counts["drop"] > 2


def test_drop_without_retries_is_a_connection_error(emulator: OmicsEmulator) -> None:
    client = emulator.client(config=NO_RETRY)
    emulator.inject("drop", operation="ListSequenceStores")
    with pytest.raises(ConnectionClosedError):
        client.list_sequence_stores()
    assert client.list_sequence_stores()["sequenceStores"] == []


@pytest.mark.parametrize("error", UPLOAD_PART_ERRORS)
def test_one_shot_injection_raises_the_modelled_exception(emulator: OmicsEmulator, error: str) -> None:
    client = emulator.client(config=NO_RETRY)
    store_id = client.create_sequence_store(name="one shot")["id"]
    upload_id = create_upload(client, store_id)
    emulator.inject(error, operation="UploadReadSetPart")
    with pytest.raises(getattr(client.exceptions, error)):
        upload_parts(client, store_id, upload_id, "SOURCE1", [fastq(100)])
    # One shot only: the next request goes through, on the same keep-alive connection.
    assert upload_parts(client, store_id, upload_id, "SOURCE1", [fastq(100)])
    assert emulator.fault_counts == {error: 1}


def test_error_rates_for_every_upload_part_error(emulator: OmicsEmulator) -> None:
    client = emulator.client(config=NO_RETRY)
    store_id = client.create_sequence_store(name="rates")["id"]
    upload_id = create_upload(client, store_id)
    emulator.set_faults(FaultConfig(seed=5, error_rates=dict.fromkeys(UPLOAD_PART_ERRORS, 0.1)))
    seen = set()
    for number in range(1, 200):
        try:
            client.upload_read_set_part(
                sequenceStoreId=store_id, uploadId=upload_id, partSource="SOURCE1", partNumber=number, payload=b"@r\n"
            )
        except client.exceptions.ClientError as exc:
            seen.add(exc.response["Error"]["Code"])
    assert seen == set(UPLOAD_PART_ERRORS)
    assert set(emulator.fault_counts) == set(UPLOAD_PART_ERRORS)


def test_latency(emulator: OmicsEmulator) -> None:
    client = emulator.client()
    emulator.set_faults(FaultConfig(latency=0.5, operations=frozenset({"ListSequenceStores"})))
    started = time.monotonic()
    client.list_sequence_stores()
    assert time.monotonic() - started >= 0.5
    # Left without latency, as the count says (a wall-clock bound would depend on the machine's load).
    client.create_sequence_store(name="fast")
    assert emulator.fault_counts == {"latency": 1}


def test_fault_config_round_trips_through_json() -> None:
    config = FaultConfig(
        seed=4,
        throttle_rate=0.1,
        internal_error_rate=0.2,
        drop_rate=0.05,
        latency=0.01,
        error_rates={"AccessDeniedException": 0.3},
        operations=frozenset({"UploadReadSetPart", "CompleteMultipartReadSetUpload"}),
        drop_response_rate=0.15,
    )
    assert FaultConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert FaultConfig.from_dict(FaultConfig().to_dict()) == FaultConfig()
    with pytest.raises(ValueError):
        FaultConfig(throttle_rate=1.5)
    with pytest.raises(ValueError):
        FaultConfig(drop_response_rate=-0.1)
    # The message lists what is checked: every modelled error, ConflictException included.
    with pytest.raises(ValueError, match="ConflictException"):
        FaultConfig(error_rates={"NoSuchError": 0.1})
    with pytest.raises(ValueError):
        FaultConfig.from_dict({"throttle": 0.1})
    with pytest.raises(ValueError, match="unknown operations"):
        FaultConfig(operations=frozenset({"UploadPart"}))


def _admin(emulator: OmicsEmulator, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{emulator.endpoint_url}/_emulator/{path}", data=data)
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_admin_endpoints_are_unsigned_and_fault_free() -> None:
    with OmicsEmulator(access_key="AKIDADMIN", secret_key="secret", faults=FaultConfig(throttle_rate=1.0)) as emu:
        assert _admin(emu, "health") == {"status": "ok"}
        config = FaultConfig(
            seed=2, error_rates={"RequestTimeoutException": 1.0}, operations=frozenset({"GetSequenceStore"})
        )
        assert _admin(emu, "faults", config.to_dict())["config"] == config.to_dict()
        assert emu.faults == config
        _admin(emu, "inject", {"error": "ServiceQuotaExceededException", "operation": "CreateSequenceStore"})
        client = emu.client(config=NO_RETRY)
        with pytest.raises(client.exceptions.ServiceQuotaExceededException):
            client.create_sequence_store(name="quota")
        store_id = client.create_sequence_store(name="ok")["id"]
        with pytest.raises(client.exceptions.RequestTimeoutException):
            client.get_sequence_store(id=store_id)
        state = _admin(emu, "faults")
        assert state["counts"] == {"ServiceQuotaExceededException": 1, "RequestTimeoutException": 1}
        with pytest.raises(urllib.error.HTTPError) as caught:
            _admin(emu, "inject", {"error": "NoSuchError"})
        assert caught.value.code == 400


# -- answers lost after the request was served ----------------------------------------------------------------

# The provider's client settings (OmicsHook.DEFAULT_RETRIES): botocore's standard mode retries a connection
# closed without an answer like any transient error.
PROVIDER_RETRIES = Config(retries={"mode": "standard", "max_attempts": 8})


def _count_sends(client: Any, operation: str) -> list[str]:
    sent: list[str] = []
    client.meta.events.register(f"before-send.omics.{operation}", lambda request, **_: sent.append(request.url))
    return sent


def test_lost_complete_answer_is_retried_into_resource_not_found(emulator: OmicsEmulator, fast_retries: None) -> None:
    client = emulator.client(config=PROVIDER_RETRIES)
    store_id = client.create_sequence_store(name="lost answers")["id"]
    upload_id = create_upload(client, store_id)
    parts = upload_parts(client, store_id, upload_id, "SOURCE1", [fastq(50)])
    sent = _count_sends(client, "CompleteMultipartReadSetUpload")
    emulator.inject(DROP_RESPONSE, operation="CompleteMultipartReadSetUpload", count=1)

    with pytest.raises(client.exceptions.ResourceNotFoundException) as caught:
        client.complete_multipart_read_set_upload(sequenceStoreId=store_id, uploadId=upload_id, parts=parts)

    # The first Complete committed; botocore's retry found the upload gone.
    assert len(sent) == 2
    assert caught.value.response["ResponseMetadata"]["RetryAttempts"] == 1
    assert emulator.fault_counts == {DROP_RESPONSE: 1}
    (listed,) = client.list_read_sets(sequenceStoreId=store_id)["readSets"]
    meta = wait_settled(client, store_id, listed["id"])
    assert (meta["status"], meta["creationJobId"]) == ("ACTIVE", upload_id)
    assert client.list_multipart_read_set_uploads(sequenceStoreId=store_id)["uploads"] == []


@pytest.mark.parametrize("client_token", ["create-once", None], ids=["same token", "no token"])
def test_lost_create_answer_is_retried(emulator: OmicsEmulator, fast_retries: None, client_token: str | None) -> None:
    client = emulator.client(config=PROVIDER_RETRIES)
    store_id = client.create_sequence_store(name="lost answers")["id"]
    sent = _count_sends(client, "CreateMultipartReadSetUpload")
    emulator.inject(DROP_RESPONSE, operation="CreateMultipartReadSetUpload", count=1)

    upload_id = create_upload(client, store_id, **({"clientToken": client_token} if client_token else {}))

    assert len(sent) == 2
    uploads = [u["uploadId"] for u in client.list_multipart_read_set_uploads(sequenceStoreId=store_id)["uploads"]]
    if client_token:
        # Both attempts carried the token: the retry answered the upload the lost attempt had created.
        assert uploads == [upload_id]
    else:
        # Without a token the retry starts a second upload, and the first is left behind.
        assert len(uploads) == 2 and upload_id in uploads


def test_lost_answer_without_retries_is_a_connection_error_after_the_change(emulator: OmicsEmulator) -> None:
    client = emulator.client(config=NO_RETRY)
    emulator.inject(DROP_RESPONSE, operation="CreateSequenceStore")
    with pytest.raises(ConnectionClosedError):
        client.create_sequence_store(name="made anyway")
    assert [s["name"] for s in client.list_sequence_stores()["sequenceStores"]] == ["made anyway"]


@pytest.mark.parametrize("operation", ["UploadReadSetPart", "GetReadSet", "ListReadSetUploadParts"])
def test_lost_answers_of_streamed_and_refused_requests(
    emulator: OmicsEmulator, fast_retries: None, operation: str
) -> None:
    client = emulator.client(config=PROVIDER_RETRIES)
    store_id = client.create_sequence_store(name="lost answers")["id"]
    upload_id = create_upload(client, store_id)
    data = fastq(2000)
    emulator.inject(DROP_RESPONSE, operation=operation)
    if operation == "ListReadSetUploadParts":
        # An error answer is lost like any other: the retry gets it.
        with pytest.raises(client.exceptions.ValidationException):
            client.list_read_set_upload_parts(sequenceStoreId=store_id, uploadId=upload_id, partSource="SOURCE3")
        assert emulator.fault_counts == {DROP_RESPONSE: 1}
        return
    parts = upload_parts(client, store_id, upload_id, "SOURCE1", [data])
    read_set_id = client.complete_multipart_read_set_upload(sequenceStoreId=store_id, uploadId=upload_id, parts=parts)[
        "readSetId"
    ]
    assert wait_settled(client, store_id, read_set_id)["status"] == "ACTIVE"
    payload = client.get_read_set(sequenceStoreId=store_id, id=read_set_id, file="SOURCE1", partNumber=1)["payload"]
    assert payload.read() == data
    assert emulator.fault_counts == {DROP_RESPONSE: 1}


def test_drop_response_rate_is_drawn_after_the_other_faults() -> None:
    config = FaultConfig(seed=1, throttle_rate=0.5, drop_rate=0.25, drop_response_rate=0.75)
    assert [name for name, _ in config.rates()] == ["drop", "ThrottlingException", DROP_RESPONSE]
    with OmicsEmulator(faults=FaultConfig(seed=6, drop_response_rate=0.5)) as emu:
        client = emu.client(config=NO_RETRY)
        lost = 0
        for number in range(20):
            try:
                client.create_sequence_store(name=f"store {number}")
            except ConnectionClosedError:
                lost += 1
        assert 0 < lost < 20
        assert emu.fault_counts == {DROP_RESPONSE: lost}
        emu.set_faults(FaultConfig())
        # Every request was served, answered or not.
        assert len(client.list_sequence_stores()["sequenceStores"]) == 20


def test_drop_response_through_the_admin_endpoint(emulator: OmicsEmulator) -> None:
    client = emulator.client(config=NO_RETRY)
    _admin(emulator, "inject", {"error": DROP_RESPONSE, "operation": "CreateSequenceStore", "count": 2})
    for _ in range(2):
        with pytest.raises(ConnectionClosedError):
            client.create_sequence_store(name="unanswered")
    client.create_sequence_store(name="answered")
    assert len(client.list_sequence_stores()["sequenceStores"]) == 3
    assert _admin(emulator, "faults")["counts"] == {DROP_RESPONSE: 2}
    _admin(emulator, "faults", FaultConfig(drop_response_rate=1.0).to_dict())
    assert emulator.faults.drop_response_rate == 1.0
