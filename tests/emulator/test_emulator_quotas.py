"""The service's API quotas: token buckets per operation, ThrottlingException above them, calls counted."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from botocore.config import Config
from emulator_support import create_upload, fastq

from airflow_provider_omics.testing import DEFAULT_QUOTAS, OmicsEmulator, QuotaConfig, emulator_admin
from airflow_provider_omics.testing.cli import spawn
from airflow_provider_omics.testing.quotas import QuotaEnforcer

NO_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 1})
# A quota no test outlives: one call, then the next in 1,000 s.
ONE_CALL = 0.001


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_admits_its_rate_and_a_burst_of_one_second() -> None:
    clock = Clock()
    quotas = QuotaEnforcer(QuotaConfig({"CreateMultipartReadSetUpload": 1, "UploadReadSetPart": 10}), clock=clock)
    assert quotas.admit("a", "CreateMultipartReadSetUpload")
    assert not quotas.admit("a", "CreateMultipartReadSetUpload")
    clock.now += 0.5
    assert not quotas.admit("a", "CreateMultipartReadSetUpload")
    clock.now += 0.5
    assert quotas.admit("a", "CreateMultipartReadSetUpload")
    # Ten parts at once (a second's worth), then one more every 0.1 s.
    assert [quotas.admit("a", "UploadReadSetPart") for _ in range(11)] == [True] * 10 + [False]
    clock.now += 0.1
    assert [quotas.admit("a", "UploadReadSetPart") for _ in range(2)] == [True, False]
    # Another account has buckets of its own; an operation without a quota is never throttled.
    assert quotas.admit("b", "CreateMultipartReadSetUpload")
    assert all(quotas.admit("a", "GetSequenceStore") for _ in range(100))
    assert quotas.counts() == {
        "CreateMultipartReadSetUpload": {"calls": 5, "throttled": 2},
        "GetSequenceStore": {"calls": 100, "throttled": 0},
        "UploadReadSetPart": {"calls": 13, "throttled": 2},
    }


def test_a_time_scale_runs_every_quota_that_many_times_faster() -> None:
    clock = Clock()
    quotas = QuotaEnforcer(QuotaConfig.default(time_scale=10), clock=clock)
    assert quotas.admit("a", "CompleteMultipartReadSetUpload")
    assert not quotas.admit("a", "CompleteMultipartReadSetUpload")
    clock.now += 0.1
    assert quotas.admit("a", "CompleteMultipartReadSetUpload")


def test_the_defaults_are_the_services_and_bad_quotas_are_refused() -> None:
    config = QuotaConfig.of("default")
    assert config is not None
    assert config.rates == DEFAULT_QUOTAS
    assert config.rate("CreateMultipartReadSetUpload") == 1
    assert config.rate("UploadReadSetPart") == 10
    assert config.rate("GetReadSetMetadata") == 5
    assert config.rate("GetSequenceStore") is None
    assert QuotaConfig.of(None) is None and QuotaConfig.of("off") is None
    raised = QuotaConfig.of({"UploadReadSetPart": 25})
    assert raised is not None and raised.rate("UploadReadSetPart") == 25 and raised.rate("ListReadSets") == 5
    with pytest.raises(ValueError, match="no such operation UploadPart: quotas name operations of"):
        QuotaConfig({"UploadPart": 1})
    with pytest.raises(ValueError, match="the quota of ListReadSets must be a positive number"):
        QuotaConfig({"ListReadSets": 0})
    with pytest.raises(ValueError, match="quotas must be 'default', 'off'"):
        QuotaConfig.of("strict")


def test_a_call_above_its_quota_is_answered_throttling_exception_over_http(
    make_emulator: Callable[..., OmicsEmulator],
) -> None:
    emulator = make_emulator(quotas=QuotaConfig.default({"CreateMultipartReadSetUpload": ONE_CALL}))
    client = emulator.client(config=NO_RETRY)
    store_id = client.create_sequence_store(name="quotas")["id"]
    create_upload(client, store_id)
    with pytest.raises(client.exceptions.ThrottlingException) as caught:
        create_upload(client, store_id)
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert error["Error"] == {"Code": "ThrottlingException", "Message": "Rate exceeded"}
    # What was throttled was not done: one upload exists.
    assert len(client.list_multipart_read_set_uploads(sequenceStoreId=store_id)["uploads"]) == 1
    counts = emulator.quota_counts()
    assert counts["CreateMultipartReadSetUpload"] == {"calls": 2, "throttled": 1}
    assert counts["CreateSequenceStore"] == {"calls": 1, "throttled": 0}


def test_a_throttled_part_is_read_to_its_end_and_the_connection_serves_on(
    make_emulator: Callable[..., OmicsEmulator],
) -> None:
    emulator = make_emulator(quotas=QuotaConfig.default({"UploadReadSetPart": ONE_CALL}))
    client = emulator.client(config=NO_RETRY)
    store_id = client.create_sequence_store(name="quotas")["id"]
    upload_id = create_upload(client, store_id)
    part = fastq(20_000)
    arguments = {"sequenceStoreId": store_id, "uploadId": upload_id, "partSource": "SOURCE1", "payload": part}
    client.upload_read_set_part(partNumber=1, **arguments)
    with pytest.raises(client.exceptions.ThrottlingException):
        client.upload_read_set_part(partNumber=2, **arguments)
    parts = client.list_read_set_upload_parts(sequenceStoreId=store_id, uploadId=upload_id, partSource="SOURCE1")
    assert [p["partNumber"] for p in parts["parts"]] == [1]
    # Raising the quota takes effect at once.
    emulator.set_quotas(None)
    client.upload_read_set_part(partNumber=2, **arguments)
    assert emulator.quota_counts()["UploadReadSetPart"] == {"calls": 3, "throttled": 1}


def test_the_admin_endpoint_sets_the_quotas_and_counts_the_calls(make_emulator: Callable[..., OmicsEmulator]) -> None:
    emulator = make_emulator()
    url = emulator.endpoint_url
    assert emulator_admin(url, "quotas")["quotas"] is None
    state = emulator_admin(url, "quotas", {"quotas": {"rates": {"ListReadSets": ONE_CALL}, "time_scale": 1}})
    assert state["quotas"]["rates"] == {"ListReadSets": ONE_CALL}
    client = emulator.client(config=NO_RETRY)
    store_id = client.create_sequence_store(name="quotas")["id"]
    client.list_read_sets(sequenceStoreId=store_id)
    with pytest.raises(client.exceptions.ThrottlingException):
        client.list_read_sets(sequenceStoreId=store_id)
    assert emulator_admin(url, "quotas")["counts"]["ListReadSets"] == {"calls": 2, "throttled": 1}
    state = emulator_admin(url, "quotas", {"quotas": "default", "reset_counts": True})
    assert state == {"quotas": {"rates": dict(DEFAULT_QUOTAS), "time_scale": 1.0, "burst_seconds": 1.0}, "counts": {}}


def test_the_command_line_turns_the_quotas_on_with_overrides_and_a_time_scale(tmp_path: Path) -> None:
    process, url = spawn(
        tmp_path,
        extra_args=["--quotas", "default", "--quota", "UploadReadSetPart=20", "--quota-time-scale", "4"],
    )
    try:
        quotas = emulator_admin(url, "quotas")["quotas"]
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert quotas["rates"] == {**DEFAULT_QUOTAS, "UploadReadSetPart": 20.0}
    assert quotas["time_scale"] == 4.0
    refused = subprocess.run(
        [sys.executable, "-m", "airflow_provider_omics.testing.emulator", "--quota", "UploadReadSetPart=20"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "--quota and --quota-time-scale go with --quotas default" in refused.stderr
