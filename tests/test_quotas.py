"""A sequencing run under the service's API quotas: the emulator throttles above them, the provider paces within
them, and every sample is stored and verified."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_omics.hooks.pacing import SERVICE_QUOTAS
from airflow_provider_omics.testing import OmicsEmulator, QuotaConfig
from airflow_provider_omics.testing.samples import write_fastq
from tests.helpers import assert_no_upload_left, task_states, use_omics_connection

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


def _summary(dag_run: Any) -> list[dict[str, Any]]:
    (ti,) = [ti for ti in dag_run.get_task_instances() if ti.task_id.endswith(".summary")]
    return list(ti.xcom_pull(task_ids=ti.task_id))
