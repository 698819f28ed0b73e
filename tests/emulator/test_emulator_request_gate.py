"""The request gate: requests of an operation held in flight (headers read, body not) until released, so that a
test acts while a request is known to be in flight instead of betting on latency.

Every wait here is on the emulator's held list or on a thread that the gate let go; the timeouts only catch hangs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from botocore.config import Config
from emulator_support import create_upload, fastq, split, wait_settled

from airflow_provider_omics.testing import OmicsEmulator
from airflow_provider_omics.testing.faults import HeldRequest
from airflow_provider_omics.testing.omics_emulator import emulator_admin

PART = "UploadReadSetPart"
NO_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 1})
HANG = 60.0


class Call(threading.Thread):
    """A client call in a thread of its own, keeping its answer or its error."""

    def __init__(self, call: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self._call = call
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._call()
        except BaseException as exc:
            self.error = exc

    def outcome(self) -> Any:
        self.join(HANG)
        assert not self.is_alive(), "the call never ended"
        if self.error is not None:
            raise self.error
        return self.result


def _put_part(client: Any, store_id: str, upload_id: str, number: int, data: bytes) -> Call:
    call = Call(
        lambda: client.upload_read_set_part(
            sequenceStoreId=store_id, uploadId=upload_id, partSource="SOURCE1", partNumber=number, payload=data
        )
    )
    call.start()
    return call


def _stored_parts(client: Any, store_id: str, upload_id: str) -> list[int]:
    parts = client.list_read_set_upload_parts(sequenceStoreId=store_id, uploadId=upload_id, partSource="SOURCE1")
    return sorted(part["partNumber"] for part in parts["parts"])


def _by_part(held: list[HeldRequest]) -> dict[int, HeldRequest]:
    return {int(h.query["partNumber"]): h for h in held}


def test_parts_held_until_released_one_by_one(emulator: OmicsEmulator) -> None:
    client = emulator.client(config=NO_RETRY)
    store_id = client.create_sequence_store(name="gate")["id"]
    upload_id = create_upload(client, store_id)
    chunks = split(fastq(3000), 3)
    emulator.hold_requests(PART)
    assert emulator.holding_requests == {PART}

    calls = {n: _put_part(client, store_id, upload_id, n, chunks[n - 1]) for n in (1, 2)}
    held = _by_part(emulator.wait_held_requests(2, PART, timeout=HANG))

    assert set(held) == {1, 2}
    for number, request in held.items():
        assert request.operation == PART
        assert request.client_host == "127.0.0.1" and request.client_port > 0
        assert request.query == {"partSource": "SOURCE1", "partNumber": str(number)}
        assert request.path == f"/sequencestore/{store_id}/upload/{upload_id}/part"
    assert held[1].id != held[2].id and held[1].client_port != held[2].client_port
    # Other operations pass: held means unserved, not a stalled emulator.
    assert _stored_parts(client, store_id, upload_id) == []

    assert emulator.release_request(held[1].id) == held[1]
    checksum_1 = calls[1].outcome()["checksum"]
    assert _stored_parts(client, store_id, upload_id) == [1]
    assert [h.id for h in emulator.held_requests()] == [held[2].id]
    assert calls[2].is_alive()
    with pytest.raises(KeyError):
        emulator.release_request(held[1].id)

    # The gate is still closed: a third part is held too, until the gate opens and lets both through.
    calls[3] = _put_part(client, store_id, upload_id, 3, chunks[2])
    assert set(_by_part(emulator.wait_held_requests(2, PART, timeout=HANG))) == {2, 3}
    released = emulator.open_requests(PART)
    assert {int(h.query["partNumber"]) for h in released} == {2, 3}
    checksums = {1: checksum_1, 2: calls[2].outcome()["checksum"], 3: calls[3].outcome()["checksum"]}
    assert emulator.held_requests() == [] and emulator.holding_requests == frozenset()

    parts = [{"partSource": "SOURCE1", "partNumber": n, "checksum": c} for n, c in checksums.items()]
    read_set_id = client.complete_multipart_read_set_upload(sequenceStoreId=store_id, uploadId=upload_id, parts=parts)[
        "readSetId"
    ]
    assert wait_settled(client, store_id, read_set_id)["status"] == "ACTIVE"


def test_release_all_keeps_the_gate_closed(emulator: OmicsEmulator) -> None:
    client = emulator.client(config=NO_RETRY)
    emulator.hold_requests("CreateSequenceStore")
    first = [Call(lambda i=i: client.create_sequence_store(name=f"store-{i}")) for i in range(2)]
    for call in first:
        call.start()
    emulator.wait_held_requests(2, "CreateSequenceStore", timeout=HANG)

    assert len(emulator.release_requests("CreateSequenceStore")) == 2
    assert all(call.outcome()["id"] for call in first)
    later = Call(lambda: client.create_sequence_store(name="later"))
    later.start()
    (held,) = emulator.wait_held_requests(1, timeout=HANG)
    assert held.operation == "CreateSequenceStore"
    emulator.open_requests()
    assert later.outcome()["name"] == "later"


def test_admin_endpoints(emulator: OmicsEmulator) -> None:
    url = emulator.endpoint_url
    client = emulator.client(config=NO_RETRY)
    store_id = client.create_sequence_store(name="admin")["id"]
    upload_id = create_upload(client, store_id)
    assert emulator_admin(url, "requests") == {"holding": [], "held": []}

    answer = emulator_admin(url, "requests", {"action": "hold", "operation": PART})
    assert answer == {"holding": [PART], "held": [], "released": []}
    call = _put_part(client, store_id, upload_id, 1, fastq(100))
    (held,) = emulator.wait_held_requests(1, PART, timeout=HANG)

    state = emulator_admin(url, "requests")
    assert state["holding"] == [PART]
    assert [HeldRequest.from_dict(h) for h in state["held"]] == [held]
    assert state["held"][0]["query"] == {"partSource": "SOURCE1", "partNumber": "1"}

    answer = emulator_admin(url, "requests", {"action": "release", "id": held.id})
    assert answer["held"] == [] and [h["id"] for h in answer["released"]] == [held.id]
    assert call.outcome()["checksum"]

    for bad in (
        {"action": "release", "id": held.id},  # no longer held
        {"action": "hold", "operation": "NoSuchOperation"},
        {"action": "hold"},
        {"action": "shut"},
        {"action": "open", "id": 1},
    ):
        with pytest.raises(Exception, match="400"):
            emulator_admin(url, "requests", bad)

    assert emulator_admin(url, "requests", {"action": "open"}) == {"holding": [], "held": [], "released": []}


def test_unknown_operation_refused(emulator: OmicsEmulator) -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        emulator.hold_requests("UploadPart")
    with pytest.raises(ValueError, match="unknown operation"):
        emulator.open_requests("UploadPart")


def test_stop_drops_held_requests() -> None:
    """A held request does not keep the emulator from stopping, nor its thread alive: it ends unserved."""
    emulator = OmicsEmulator(activation_delay=0)
    emulator.hold_requests(PART)  # before start: held from the first request
    emulator.start()
    try:
        client = emulator.client(config=NO_RETRY)
        store_id = client.create_sequence_store(name="stop")["id"]
        upload_id = create_upload(client, store_id)
        call = _put_part(client, store_id, upload_id, 1, fastq(100))
        emulator.wait_held_requests(1, PART, timeout=HANG)
    finally:
        emulator.stop()
    assert emulator.held_requests() == []
    with pytest.raises(Exception):  # noqa: B017 - the connection is closed unanswered; botocore's error class varies
        call.outcome()
