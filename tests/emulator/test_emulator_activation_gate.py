"""The activation hold: read sets kept in PROCESSING_UPLOAD until released, so tests never race the activation."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from emulator_support import fastq, upload_read_set, wait_settled

from airflow_provider_omics.testing import OmicsBackend, OmicsEmulator
from airflow_provider_omics.testing.models import CompletedPart


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[OmicsBackend]:
    backend = OmicsBackend(tmp_path, activation_delay=0)
    backend.start()
    yield backend
    backend.close()


def _read_set(backend: OmicsBackend, store: str, data: bytes | None = None) -> str:
    data = fastq(20) if data is None else data
    upload = backend.create_multipart_read_set_upload(
        store, source_file_type="FASTQ", subject_id="s", sample_id="a", name="n"
    )["uploadId"]
    checksum = backend.upload_read_set_part(
        store, upload, part_source="SOURCE1", part_number=1, body=io.BytesIO(data), content_length=len(data)
    )["checksum"]
    parts = [CompletedPart(part_source="SOURCE1", part_number=1, checksum=checksum)]
    return str(backend.complete_multipart_read_set_upload(store, upload, parts=parts)["readSetId"])


def _status(backend: OmicsBackend, store: str, read_set_id: str) -> str:
    return str(backend.get_read_set_metadata(store, read_set_id)["status"])


def test_held_until_released(backend: OmicsBackend) -> None:
    store = backend.create_sequence_store(name="gate")["id"]
    backend.hold_activations()
    good, bad = _read_set(backend, store), _read_set(backend, store, b"not a fastq\n")
    for _ in range(3):
        assert [_status(backend, store, rs) for rs in (good, bad)] == ["PROCESSING_UPLOAD"] * 2
    with pytest.raises(TimeoutError):
        backend.wait_for_activations(timeout=0.2)  # held activations are still running
    assert backend.activation_hold == {"hold": True, "release_after_reads": None}

    backend.release_activations()

    backend.wait_for_activations()
    assert [_status(backend, store, rs) for rs in (good, bad)] == ["ACTIVE", "UPLOAD_FAILED"]
    assert backend.activation_hold == {"hold": False, "release_after_reads": None}
    # Released means no hold at all: the next read set goes through on its own.
    after = _read_set(backend, store)
    backend.wait_for_activations()
    assert _status(backend, store, after) == "ACTIVE"


def test_released_after_that_many_processing_reads(backend: OmicsBackend) -> None:
    store = backend.create_sequence_store(name="gate")["id"]
    backend.hold_activations(release_after_reads=2)
    first, second = _read_set(backend, store), _read_set(backend, store)
    # Held: both activation threads are alive until their read set is let go.
    threads = {read_set_id: backend._activations[read_set_id] for read_set_id in (first, second)}
    assert _status(backend, store, first) == "PROCESSING_UPLOAD"
    assert _status(backend, store, first) == "PROCESSING_UPLOAD"  # the second look: released from here
    assert _status(backend, store, second) == "PROCESSING_UPLOAD"  # counted per read set

    threads[first].join(30)
    assert not threads[first].is_alive()
    assert _status(backend, store, first) == "ACTIVE"
    assert _status(backend, store, second) == "PROCESSING_UPLOAD"
    assert _status(backend, store, second) == "PROCESSING_UPLOAD"
    backend.wait_for_activations()
    assert _status(backend, store, second) == "ACTIVE"
    assert backend.activation_hold == {"hold": True, "release_after_reads": 2}


def test_listing_a_processing_read_set_counts_as_a_read(backend: OmicsBackend) -> None:
    store = backend.create_sequence_store(name="gate")["id"]
    backend.hold_activations(release_after_reads=2)
    read_set_id = _read_set(backend, store)
    # Each ListReadSets answer that shows the read set PROCESSING_UPLOAD is one look at it.
    for _ in range(2):
        listed = backend.list_read_sets(store)["readSets"]
        assert [(rs["id"], rs["status"]) for rs in listed] == [(read_set_id, "PROCESSING_UPLOAD")]

    backend.wait_for_activations()  # held activations count as running: this returns once it was let go
    assert _status(backend, store, read_set_id) == "ACTIVE"
    assert backend.activation_hold == {"hold": True, "release_after_reads": 2}


def test_one_listing_counts_once_for_each_read_set_it_shows(backend: OmicsBackend) -> None:
    store = backend.create_sequence_store(name="gate")["id"]
    backend.hold_activations(release_after_reads=2)
    made = {_read_set(backend, store), _read_set(backend, store)}
    threads = {read_set_id: backend._activations[read_set_id] for read_set_id in made}
    # A page that shows only one of them, then one that shows both: the first has had two looks, the second one.
    (first,) = [rs["id"] for rs in backend.list_read_sets(store, max_results=1)["readSets"]]
    (second,) = made - {first}
    listed = backend.list_read_sets(store)["readSets"]
    assert {(rs["id"], rs["status"]) for rs in listed} == {(first, "PROCESSING_UPLOAD"), (second, "PROCESSING_UPLOAD")}

    threads[first].join(30)
    assert not threads[first].is_alive()
    assert _status(backend, store, first) == "ACTIVE"
    assert _status(backend, store, second) == "PROCESSING_UPLOAD"  # the second look: released from here
    backend.wait_for_activations()
    assert _status(backend, store, second) == "ACTIVE"


def test_close_does_not_wait_for_held_activations(tmp_path: Path) -> None:
    backend = OmicsBackend(tmp_path, activation_delay=0)
    backend.start()
    store = backend.create_sequence_store(name="gate")["id"]
    backend.hold_activations()
    read_set_id = _read_set(backend, store)
    thread = backend._activations[read_set_id]

    backend.close(timeout=30)

    assert not thread.is_alive()
    # Left as it was: the next backend on this directory resumes the activation.
    resumed = OmicsBackend(tmp_path, activation_delay=0)
    assert resumed.read_sets[read_set_id].status == "PROCESSING_UPLOAD"
    resumed.start()
    resumed.wait_for_activations()
    assert _status(resumed, store, read_set_id) == "ACTIVE"
    resumed.close()


@pytest.mark.parametrize("bad", [0, -1, 1.5, "1", True])
def test_release_after_reads_must_be_a_positive_int(backend: OmicsBackend, bad: Any) -> None:
    with pytest.raises(ValueError, match="release_after_reads"):
        backend.hold_activations(release_after_reads=bad)
    with pytest.raises(ValueError, match="release_after_reads"):
        OmicsEmulator().hold_activations(release_after_reads=bad)
    assert backend.activation_hold == {"hold": False, "release_after_reads": None}


def test_hold_asked_before_start_holds_pending_activations(tmp_path: Path) -> None:
    with OmicsEmulator(data_dir=tmp_path, activation_delay=0) as first:
        first.hold_activations()
        client = first.client()
        store_id = client.create_sequence_store(name="gate")["id"]
        read_set_id = upload_read_set(client, store_id, {"SOURCE1": fastq(20)})
    second = OmicsEmulator(data_dir=tmp_path, activation_delay=0)
    second.hold_activations(release_after_reads=1)
    with second:
        client = second.client()
        assert client.get_read_set_metadata(sequenceStoreId=store_id, id=read_set_id)["status"] == "PROCESSING_UPLOAD"
        assert wait_settled(client, store_id, read_set_id)["status"] == "ACTIVE"


def _admin(emulator: OmicsEmulator, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{emulator.endpoint_url}/_emulator/activations", data=data)
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_admin_endpoint(emulator: OmicsEmulator, client: Any, store_id: str) -> None:
    assert _admin(emulator) == {"hold": False, "release_after_reads": None}
    assert _admin(emulator, {"hold": True, "release_after_reads": 1}) == {"hold": True, "release_after_reads": 1}
    first = upload_read_set(client, store_id, {"SOURCE1": fastq(20)})
    assert client.get_read_set_metadata(sequenceStoreId=store_id, id=first)["status"] == "PROCESSING_UPLOAD"
    assert wait_settled(client, store_id, first)["status"] == "ACTIVE"

    assert _admin(emulator, {"hold": True}) == {"hold": True, "release_after_reads": None}
    second = upload_read_set(client, store_id, {"SOURCE1": fastq(20)})
    for _ in range(3):
        assert client.get_read_set_metadata(sequenceStoreId=store_id, id=second)["status"] == "PROCESSING_UPLOAD"
    assert _admin(emulator, {"hold": False}) == {"hold": False, "release_after_reads": None}
    assert wait_settled(client, store_id, second)["status"] == "ACTIVE"

    refused: list[Any] = [{}, {"hold": "yes"}, {"hold": True, "until": "later"}]
    refused += [{"hold": True, "release_after_reads": 0}, {"hold": False, "release_after_reads": 1}]
    for bad in refused:
        with pytest.raises(urllib.error.HTTPError) as caught:
            _admin(emulator, bad)
        assert caught.value.code == 400
    assert _admin(emulator) == {"hold": False, "release_after_reads": None}
