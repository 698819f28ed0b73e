"""A NovaSeq X run without its bytes: 384 samples x 2 sparse files of 30 GB, about 220,000 parts of 100 MiB.

The plan and create steps run for real (``dag.test()``, the emulator over HTTP) and every XCom value they write
is measured in the metadata database; the values of the later steps (part results, complete, wait, verify,
digest, summary) are built from create's real output with the payload types and the functions the operators
use, as they would be after the bytes moved. Every value must stay under 1 MB (Airflow keeps XComs in the
metadata database; MySQL's default max_allowed_packet and most deployments' comfort end about there).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from airflow_provider_omics.operators.sequencing_run import RUN_SAMPLES_KEY
from airflow_provider_omics.testing import OmicsEmulator
from airflow_provider_omics.utils.parts import MAX_PART_SIZE, RUN_CHECKSUMS_LIMIT, compact_parts, fit_part_runs
from airflow_provider_omics.utils.payloads import (
    DigestResult,
    PartResult,
    RunPartResults,
    RunSample,
    SourceDigest,
    run_samples,
    run_states,
)
from tests.helpers import assert_no_upload_left, task_states

SAMPLES = 384
FILE_SIZE = 30 * 10**9
BUDGET = 32
XCOM_LIMIT = 1_000_000
RUN = "20261130_LH00123_0042_A22ABCDEFG"
# The service's checksums are opaque strings of 1 to 100 characters: the worst case.
SERVICE_CHECKSUM = "c" * 100


def _stage(tmp_path: Path) -> Path:
    """The run's FASTQ as sparse files at a NovaSeq X output's paths, and its sample sheet."""
    fastq = tmp_path / RUN / "Analysis" / "1" / "Data" / "BCLConvert" / "fastq"
    fastq.mkdir(parents=True)
    out = io.StringIO()
    columns = ["sample_id", "subject_id", "name", "read1", "read2", "generated_from", "description"]
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for n in range(1, SAMPLES + 1):
        reads = []
        for read in (1, 2):
            path = fastq / f"LIB-{n:04d}-WGS_S{n}_L001_R{read}_001.fastq.gz"
            with open(path, "wb") as f:
                f.truncate(FILE_SIZE)
            reads.append(str(path))
        writer.writerow(
            {
                "sample_id": f"LIB-{n:04d}-WGS",
                "subject_id": f"SUBJ-{n:04d}",
                "name": f"{RUN}-LIB-{n:04d}-WGS",
                "read1": reads[0],
                "read2": reads[1],
                "generated_from": f"NovaSeq X {RUN} lane 1",
                "description": "Whole genome, 2x150, BCL Convert 4.2",
            }
        )
    manifest = tmp_path / RUN / "SampleSheet.omics.csv"
    manifest.write_text(out.getvalue())
    return manifest


def _xcom_sizes(dag_run: Any) -> dict[tuple[str, int, str], int]:
    """Bytes of each XCom value the run wrote, as the metadata database holds it."""
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    from tests.compat import xcom_model

    XComModel = xcom_model()

    with create_session() as session:
        rows = session.execute(
            select(XComModel.task_id, XComModel.map_index, XComModel.key, func.length(XComModel.value)).where(
                XComModel.dag_id == dag_run.dag_id, XComModel.run_id == dag_run.run_id
            )
        ).all()
    return {(task_id, map_index, key): int(size) for task_id, map_index, key, size in rows}


def _size(value: Any) -> int:
    return len(json.dumps(value).encode())


def test_a_novaseq_x_run_plans_within_the_budget_and_every_xcom_stays_under_1_mb(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, store_id: str, tmp_path: Path
) -> None:
    from tests.dags import upload_run

    manifest = _stage(tmp_path)
    conf = {"sequence_store_id": store_id, "manifest": str(manifest), "part_size": MAX_PART_SIZE, "max_tasks": BUDGET}
    dag_run = upload_run.omics_plan_run_only.test(run_conf={**upload_run.PARAMS, **conf})

    states = task_states(dag_run)
    assert dag_run.state == "success", states
    ti = dag_run.get_task_instances()[0]
    batches = ti.xcom_pull(task_ids="plan")
    planned = run_samples(ti.xcom_pull(task_ids="plan", key=RUN_SAMPLES_KEY))
    created = run_samples(ti.xcom_pull(task_ids="create"), ti.xcom_pull(task_ids="plan", key=RUN_SAMPLES_KEY))
    parts_per_source = math.ceil(FILE_SIZE / MAX_PART_SIZE)
    total_parts = SAMPLES * 2 * parts_per_source
    batch_parts = [sum(s["last_part"] - s["first_part"] + 1 for s in batch["segments"]) for batch in batches]
    assert len(planned) == SAMPLES and sum(batch_parts) == total_parts
    assert len(batches) == BUDGET and max(batch_parts) == math.ceil(total_parts / BUDGET)
    assert all(sample.status == "created" and sample.record and sample.record.upload_id for sample in created.values())

    written = _xcom_sizes(dag_run)
    # What the steps after the bytes would write, built from create's real output.
    largest = max(batches, key=lambda batch: len(batch["segments"]))
    part_results = RunPartResults(parts={}, failed={})
    for segment in largest["segments"]:
        results = [
            PartResult(partNumber=n, partSource=segment["part_source"], checksum=SERVICE_CHECKSUM)
            for n in range(segment["first_part"], segment["last_part"] + 1)
        ]
        part_results["parts"].setdefault(segment["sample"], []).extend(compact_parts(results))
    carried = fit_part_runs(part_results["parts"])
    assert carried > RUN_CHECKSUMS_LIMIT  # 100-character checksums of ~6,900 parts stay with the service
    finished: dict[str, RunSample] = {}
    for key, sample in created.items():
        sample.status, sample.read_set_id, sample.verified = "verified", "9" * 10, True
        finished[key] = sample
    digests = {
        key: DigestResult(
            family="MD5up",
            file_type="FASTQ",
            sources={
                source: SourceDigest(hexdigest="d" * 32, compressed=True, uncompressed_bytes=4 * FILE_SIZE)
                for source in sample.sources
            },
            skipped=None,
        )
        for key, sample in created.items()
    }
    summary = [
        {
            "sample": key,
            "read_set_id": sample.read_set_id,
            "status": sample.status,
            "verified": True,
            "bytes": 2 * FILE_SIZE,
            "seconds": 86399.9,
            "reason": "",
        }
        for key, sample in finished.items()
    ]
    later = {
        "upload_parts (largest batch)": _size(part_results),
        "complete / wait_active / verify (each)": _size(run_states(finished)),
        "digest": _size({"digests": digests, "failed": {}}),
        "summary": _size(summary),
    }
    table = [f"{task}[{index}] {key}: {size:,} bytes" for (task, index, key), size in sorted(written.items())]
    table += [f"{what}: {size:,} bytes" for what, size in later.items()]
    print(f"{SAMPLES} samples, {total_parts:,} parts in {len(batches)} upload tasks:\n" + "\n".join(table))
    assert written and max(written.values()) < XCOM_LIMIT, table
    assert max(later.values()) < XCOM_LIMIT, table
    # Every upload the run created was aborted by the abort step.
    assert_no_upload_left(emulator.client(), store_id)
