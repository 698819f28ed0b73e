"""Fault injection: seeded throttles and 500s that botocore retries through, dropped connections, one-shots."""

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
    started = time.monotonic()
    client.create_sequence_store(name="fast")
    assert time.monotonic() - started < 0.5
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
    )
    assert FaultConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert FaultConfig.from_dict(FaultConfig().to_dict()) == FaultConfig()
    with pytest.raises(ValueError):
        FaultConfig(throttle_rate=1.5)
    with pytest.raises(ValueError):
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
