"""A sequencing run under the service's API quotas: the emulator throttles above them, the provider paces within
them, and every sample is stored and verified."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_omics.hooks.omics import OmicsHook
from airflow_provider_omics.hooks.pacing import SERVICE_QUOTAS
from airflow_provider_omics.testing import OmicsEmulator, QuotaConfig
from airflow_provider_omics.testing.samples import fastq_records, write_fastq
from tests.helpers import CONN_ID, assert_no_upload_left, new_read_set, task_states, use_omics_connection

# The quotas run this many times faster, in the emulator and in the provider's pacing alike: the run keeps the
# quotas' proportions (creates and completes at a tenth of the parts' rate) in a twentieth of the time.
SCALE = 20.0
SAMPLES = 6


def _manifest(tmp_path: Path) -> Path:
    rows = []
    for n in range(1, SAMPLES + 1):
        reads = [
            write_fastq(tmp_path / f"Q{n}_R{r}.fastq.gz", 30 + n, compress=True, seed=10 * n + r, prefix=f"Q{n}r{r}")
            for r in (1, 2)
        ]
        rows.append(
            {"sample_id": f"Q{n}", "subject_id": f"P{n}", "name": f"Q{n}-reads", "read1": reads[0], "read2": reads[1]}
        )
    path = tmp_path / "manifest.csv"
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["sample_id", "subject_id", "name", "read1", "read2"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_run_under_the_quotas_stores_and_verifies_every_sample(
    airflow_db: Path,
    make_emulator: Callable[..., OmicsEmulator],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    emulator = make_emulator(quotas=QuotaConfig.default(time_scale=SCALE))
    paced = {operation: rate * SCALE for operation, rate in SERVICE_QUOTAS.items()}
    use_omics_connection(monkeypatch, emulator.endpoint_url, extra={"omics_quotas": paced})
    client = emulator.client()
    store_id = client.create_sequence_store(name="quotas")["id"]
    manifest = _manifest(tmp_path)
    from tests.dags import upload_run

    dag_run = upload_run.omics_upload_run.test(
        run_conf={**upload_run.PARAMS, "sequence_store_id": store_id, "manifest": str(manifest), "max_tasks": 4}
    )

    states = task_states(dag_run)
    assert dag_run.state == "success", states
    summary = {row["sample"]: row for row in _summary(dag_run)}
    assert sorted(summary) == [f"Q{n}/Q{n}-reads" for n in range(1, SAMPLES + 1)]
    assert all(row["status"] == "verified" and row["verified"] for row in summary.values()), summary
    read_sets = client.list_read_sets(sequenceStoreId=store_id)["readSets"]
    assert sorted(r["status"] for r in read_sets) == ["ACTIVE"] * SAMPLES
    assert_no_upload_left(client, store_id)
    # The service admitted one create and one complete per sample, whatever it throttled on the way.
    counts = emulator.quota_counts()
    for operation in ("CreateMultipartReadSetUpload", "CompleteMultipartReadSetUpload"):
        assert counts[operation]["calls"] - counts[operation]["throttled"] == SAMPLES, counts

    # Again: every sample is stored already. The plan found them in one listing of the store, not one question
    # per sample (ListReadSets shares 5 TPS with every run of the account), and read each one's tags once.
    emulator.reset_quota_counts()
    again = upload_run.omics_upload_run.test(
        run_conf={**upload_run.PARAMS, "sequence_store_id": store_id, "manifest": str(manifest), "max_tasks": 4}
    )
    assert again.state == "success", task_states(again)
    assert all(row["status"] == "skipped (already stored)" for row in _summary(again)), _summary(again)
    counts = emulator.quota_counts()
    admitted = {operation: c["calls"] - c["throttled"] for operation, c in counts.items()}
    assert admitted["ListReadSets"] == 1, counts
    assert admitted["ListTagsForResource"] == SAMPLES, counts
    assert "CreateMultipartReadSetUpload" not in counts, counts


def _summary(dag_run: Any) -> list[dict[str, Any]]:
    (ti,) = [ti for ti in dag_run.get_task_instances() if ti.task_id.endswith(".summary")]
    return list(ti.xcom_pull(task_ids=ti.task_id))


def test_the_store_is_listed_whole_only_when_that_takes_at_most_the_calls_given(
    own_emulator: OmicsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_id = own_emulator.client().create_sequence_store(name="listing")["id"]
    ids = {new_read_set(own_emulator, store_id, fastq_records(3, seed=n), f"L{n}")[0] for n in range(5)}
    hook = OmicsHook(aws_conn_id=CONN_ID)
    own_emulator.reset_quota_counts()
    # Five read sets, two a page: three calls.
    listed = hook.list_store_read_sets(store_id, max_calls=3, page_size=2)
    assert listed is not None and {r["id"] for r in listed} == ids
    assert own_emulator.quota_counts()["ListReadSets"]["calls"] == 3
    # Allowed two calls, it stops after them: the caller asks per sample instead.
    own_emulator.reset_quota_counts()
    assert hook.list_store_read_sets(store_id, max_calls=2, page_size=2) is None
    assert own_emulator.quota_counts()["ListReadSets"]["calls"] == 2
