"""Client-side pacing within the service's API quotas: slots shared by the processes of a host, every attempt
paced, the quotas from the connection's extra."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_omics.hooks.omics import OmicsHook
from airflow_provider_omics.hooks.pacing import MARGIN, SERVICE_QUOTAS, HostPacer, host_pacers, quotas_from_extra
from airflow_provider_omics.testing import DEFAULT_QUOTAS, OmicsEmulator
from tests.helpers import CONN_ID, use_omics_connection


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_calls_at_once_get_consecutive_slots_and_a_late_call_goes_at_once(tmp_path: Path) -> None:
    clock = Clock()
    pacer = HostPacer(tmp_path / "slots", 0.5, clock=clock, sleep=clock.sleep)
    # Three calls at the same moment (three tasks of three processes, say) go 0.5 s apart.
    assert [pacer.reserve() for _ in range(3)] == [1000.0, 1000.5, 1001.0]
    clock.now += 10
    assert pacer.wait() == 0.0
    assert pacer.wait() == 0.5
    assert clock.slept == [0.5]
    # Another pacer on the same file (another process) shares the slots.
    other = HostPacer(tmp_path / "slots", 0.5, clock=clock, sleep=clock.sleep)
    assert other.reserve() == clock.now + 0.5


def test_a_slot_reserved_before_the_host_restarted_does_not_hold_calls(tmp_path: Path) -> None:
    clock = Clock()
    clock.now = 10 * 24 * 3600.0
    HostPacer(tmp_path / "slots", 1.0, clock=clock).reserve()
    clock.now = 5.0  # the monotonic clock started again
    assert HostPacer(tmp_path / "slots", 1.0, clock=clock).reserve() == 5.0


_RESERVE = """
import json, sys
from pathlib import Path
from airflow_provider_omics.hooks.pacing import HostPacer
pacer = HostPacer(Path(sys.argv[1]), float(sys.argv[2]))
print(json.dumps([pacer.reserve() for _ in range(int(sys.argv[3]))]))
"""


def test_processes_of_one_host_share_the_slots(tmp_path: Path) -> None:
    """Two processes reserving at once: every start they were given is at least the interval from every other,
    however the two interleaved."""
    interval = 0.05
    command = [sys.executable, "-c", _RESERVE, str(tmp_path / "slots"), str(interval), "40"]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    starts = sorted(start for p in processes for start in json.loads(p.communicate(timeout=120)[0]))
    assert all(p.returncode == 0 for p in processes)
    assert len(starts) == 80
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= interval - 1e-9


def test_the_provider_assumes_the_quotas_the_emulator_models_for_the_service() -> None:
    """Two tables on purpose (the emulator models the service, the provider states what it assumes, and a
    connection's raised quota changes only the second): their defaults must agree."""
    assert {operation: DEFAULT_QUOTAS[operation] for operation in SERVICE_QUOTAS} == SERVICE_QUOTAS


def test_the_connection_extra_raises_a_quota_or_turns_the_pacing_off() -> None:
    assert quotas_from_extra({}) == dict(SERVICE_QUOTAS)
    assert quotas_from_extra({"omics_quotas": False}) is None
    assert quotas_from_extra({"omics_quotas": "off"}) is None
    raised = quotas_from_extra({"omics_quotas": {"UploadReadSetPart": 50}})
    assert raised is not None and raised["UploadReadSetPart"] == 50 and raised["CreateMultipartReadSetUpload"] == 1
    with pytest.raises(ValueError, match=r"'UploadPart' is not one of AbortMultipartReadSetUpload, "):
        quotas_from_extra({"omics_quotas": {"UploadPart": 50}})
    with pytest.raises(ValueError, match="the quota of ListReadSets must be a positive number, got 0"):
        quotas_from_extra({"omics_quotas": {"ListReadSets": 0}})
    with pytest.raises(ValueError, match="must be false or an object of operation to calls per second"):
        quotas_from_extra({"omics_quotas": "on"})
    # Paced a little under the quota, per endpoint and operation.
    pacers = host_pacers("http://a", {"CreateMultipartReadSetUpload": 1.0, "UploadReadSetPart": 10.0})
    assert pacers["CreateMultipartReadSetUpload"].interval == pytest.approx(1 / MARGIN)
    assert pacers["UploadReadSetPart"].interval == pytest.approx(0.1)
    assert host_pacers("http://b", {"UploadReadSetPart": 10.0})["UploadReadSetPart"].path != (
        pacers["UploadReadSetPart"].path
    )


def test_each_attempt_of_a_call_waits_for_its_slot(
    own_emulator: OmicsEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A throttled create is retried by botocore; its retry waits its turn too. Calls of an operation without a
    quota are not paced."""
    use_omics_connection(monkeypatch, own_emulator.endpoint_url, extra={"omics_quotas": {}})
    monkeypatch.setattr("airflow_provider_omics.hooks.pacing.pacing_dir", lambda: tmp_path)
    waited: list[str] = []

    def wait(self: HostPacer) -> float:
        waited.append(self.path.name.split("-")[0])
        return 0.0

    monkeypatch.setattr(HostPacer, "wait", wait)
    hook = OmicsHook(aws_conn_id=CONN_ID)
    store_id = hook.conn.create_sequence_store(name="paced")["id"]
    own_emulator.inject("ThrottlingException", "CreateMultipartReadSetUpload")
    arguments: dict[str, Any] = {"sample_id": "S1", "subject_id": "P1", "name": "S1", "source_file_type": "FASTQ"}
    hook.create_multipart_read_set_upload(store_id, **arguments)
    hook.conn.get_sequence_store(id=store_id)
    assert waited == ["CreateMultipartReadSetUpload", "CreateMultipartReadSetUpload"]


def test_a_bad_quota_in_the_connection_is_refused_before_any_call(
    own_emulator: OmicsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_omics_connection(monkeypatch, own_emulator.endpoint_url, extra={"omics_quotas": {"UploadReadSetPart": -1}})
    with pytest.raises(ValueError, match="the quota of UploadReadSetPart must be a positive number, got -1"):
        OmicsHook(aws_conn_id=CONN_ID).conn  # noqa: B018
    assert own_emulator.quota_counts() == {}
