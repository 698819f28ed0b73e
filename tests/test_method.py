"""``method="auto" | "upload" | "import"`` of ``upload_read_set`` and ``upload_sequencing_run`` in real Airflow
(``dag.test()``), the boto3 client over HTTP against the emulator, which reads import jobs' objects from moto's S3
server: the choice and its reason, both paths verified the same way, and one read set whatever path ran first."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_omics.testing import OmicsEmulator
from airflow_provider_omics.testing.samples import write_bam, write_fastq
from tests.helpers import (
    UNPACED,
    assert_no_upload_left,
    clear_and_rerun,
    run_dag,
    stored_bytes,
    summary_row,
    task_states,
)

ROLE_ARN = "arn:aws:iam::123456789012:role/omics-import"
REFERENCE_ARN = "arn:aws:omics:us-east-1:123456789012:referenceStore/1234567890/reference/1234567890"
COLUMNS = ["sample_id", "subject_id", "name", "read1", "read2", "file_type", "reference_arn"]


# The module's ``emulator`` reads import jobs' objects from moto's S3 server.
pytestmark = pytest.mark.emulator_reads_s3


def _stage(s3_staging: Any, path: Path, key: str) -> str:
    s3_staging.client.upload_file(str(path), s3_staging.bucket, key)
    return f"s3://{s3_staging.bucket}/{key}"


def _xcom(dag_run: Any, task: str, key: str = "return_value") -> Any:
    ti = next(ti for ti in dag_run.get_task_instances() if ti.task_id.rsplit(".", 1)[-1] == task)
    return ti.xcom_pull(task_ids=ti.task_id, key=key)


def _states(dag_run: Any) -> dict[str, str]:
    return {task: states[0] for task, states in task_states(dag_run).items()}


def _read_sets(client: Any, store_id: str) -> list[dict[str, Any]]:
    return client.list_read_sets(sequenceStoreId=store_id)["readSets"]


def _jobs(client: Any, store_id: str) -> list[dict[str, Any]]:
    return client.list_read_set_import_jobs(sequenceStoreId=store_id)["importJobs"]


def _paired(tmp_path: Path, s3_staging: Any, prefix: str = "run") -> tuple[list[str], list[bytes]]:
    reads = [write_fastq(tmp_path / f"R{r}.fastq.gz", 300, compress=True, seed=r) for r in (1, 2)]
    return [_stage(s3_staging, p, f"{prefix}/{p.name}") for p in reads], [p.read_bytes() for p in reads]


def _check_imported(client: Any, store_id: str, read_set_id: str, originals: list[bytes]) -> None:
    metadata = client.get_read_set_metadata(sequenceStoreId=store_id, id=read_set_id)
    assert metadata["status"] == "ACTIVE" and metadata["creationType"] == "IMPORT", metadata
    for i, data in enumerate(originals, start=1):
        assert stored_bytes(client, store_id, read_set_id, f"SOURCE{i}") == data
        assert metadata["etag"][f"source{i}"] == hashlib.md5(gzip.decompress(data)).hexdigest()


def test_auto_imports_s3_sources_when_a_role_is_given_and_verifies_the_read_set(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, store_id: str, s3_staging: Any, tmp_path: Path
) -> None:
    uris, originals = _paired(tmp_path, s3_staging)

    dag_run = run_dag(
        "omics_upload_auto", uris, sequence_store_id=store_id, source_aws_conn_id="s3_staging", role_arn=ROLE_ARN
    )

    states = _states(dag_run)
    assert dag_run.state == "success", states
    # The import waits for its read sets itself: the upload path's wait skips with the rest of that path.
    assert {t: states[t] for t in ("plan", "import", "digest", "verify", "summary")} == dict.fromkeys(
        ("plan", "import", "digest", "verify", "summary"), "success"
    ), states
    assert {t: states[t] for t in ("create", "upload_parts", "complete", "wait_active")} == dict.fromkeys(
        ("create", "upload_parts", "complete", "wait_active"), "skipped"
    ), states
    choice = _xcom(dag_run, "plan", "method")
    assert choice["method"] == "import" and choice["role_arn"] == ROLE_ARN, choice
    assert "every source is on S3" in choice["reason"], choice
    client = emulator.client()
    [read_set] = _read_sets(client, store_id)
    assert summary_row(dag_run)["read_set_id"] == read_set["id"]
    _check_imported(client, store_id, read_set["id"], originals)
    verified = summary_row(dag_run)
    assert verified["read_set_id"] == read_set["id"] and verified["verified"] is True, verified
    [job] = _jobs(client, store_id)
    assert job["status"] == "COMPLETED" and job["roleArn"] == ROLE_ARN
    assert_no_upload_left(client, store_id)


@pytest.mark.parametrize("where", ["local", "s3 without a role"])
def test_auto_uploads_directly_and_says_why(
    airflow_db: Path,
    emulator: OmicsEmulator,
    omics_conn: str,
    store_id: str,
    s3_staging: Any,
    tmp_path: Path,
    where: str,
) -> None:
    read = write_fastq(tmp_path / "R1.fastq.gz", 200, compress=True, seed=3)
    conf: dict[str, Any] = {"role_arn": ROLE_ARN}
    sources = [str(read)]
    if where != "local":
        sources = [_stage(s3_staging, read, "up/R1.fastq.gz")]
        conf = {"source_aws_conn_id": "s3_staging"}

    dag_run = run_dag("omics_upload_auto", sources, sequence_store_id=store_id, **conf)

    states = _states(dag_run)
    assert dag_run.state == "success", states
    assert states["import"] == "skipped" and states["create"] == "success" and states["verify"] == "success", states
    choice = _xcom(dag_run, "plan", "method")
    assert choice["method"] == "upload", choice
    expected = "are not on S3" if where == "local" else "no import role is configured"
    assert expected in choice["reason"], choice
    client = emulator.client()
    [read_set] = _read_sets(client, store_id)
    assert summary_row(dag_run)["read_set_id"] == read_set["id"]
    metadata = client.get_read_set_metadata(sequenceStoreId=store_id, id=read_set["id"])
    assert metadata["creationType"] == "UPLOAD" and metadata["status"] == "ACTIVE"
    assert stored_bytes(client, store_id, read_set["id"], "SOURCE1") == read.read_bytes()
    assert _jobs(client, store_id) == []
    assert_no_upload_left(client, store_id)


@pytest.mark.parametrize("method", ["upload", "import"])
def test_a_method_rendered_from_the_form_takes_the_path_it_names(
    airflow_db: Path,
    emulator: OmicsEmulator,
    omics_conn: str,
    store_id: str,
    s3_staging: Any,
    tmp_path: Path,
    method: str,
) -> None:
    """S3 files and a role: auto would import, but the run's conf says which path to take."""
    uris, originals = _paired(tmp_path, s3_staging, f"chosen-{method}")

    dag_run = run_dag(
        "omics_upload_chosen",
        uris,
        sequence_store_id=store_id,
        source_aws_conn_id="s3_staging",
        role_arn=ROLE_ARN,
        method=method,
    )

    states = _states(dag_run)
    assert dag_run.state == "success", states
    assert _xcom(dag_run, "plan", "method") == {
        "method": method,
        "role_arn": ROLE_ARN if method == "import" else None,
        "reason": f"method={method}",
    }
    skipped = "create" if method == "import" else "import"
    assert states[skipped] == "skipped" and states["verify"] == "success", states
    client = emulator.client()
    [read_set] = _read_sets(client, store_id)
    metadata = client.get_read_set_metadata(sequenceStoreId=store_id, id=read_set["id"])
    assert metadata["creationType"] == method.upper()
    assert [stored_bytes(client, store_id, read_set["id"], f"SOURCE{i}") for i in (1, 2)] == originals
    assert len(_jobs(client, store_id)) == (1 if method == "import" else 0)
    assert_no_upload_left(client, store_id)


def test_a_path_switch_between_tries_reuses_the_read_set_the_other_path_stored(
    airflow_db: Path,
    emulator: OmicsEmulator,
    store_id: str,
    s3_staging: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The role comes from the connection's extra; it is removed and the whole group cleared: the plan now chooses
    a direct upload, whose create finds the read set the import stored (the same request token) and reuses it."""
    extra = {"endpoint_url": emulator.endpoint_url, "region_name": "us-east-1", **UNPACED}
    monkeypatch.setenv(
        "AIRFLOW_CONN_OMICS_TEST",
        json.dumps({"conn_type": "aws", "extra": {**extra, "omics_import_role_arn": ROLE_ARN}}),
    )
    uris, originals = _paired(tmp_path, s3_staging, "switch")
    when = datetime(2026, 3, 1, tzinfo=UTC)

    first = run_dag("omics_upload_auto", uris, when, sequence_store_id=store_id, source_aws_conn_id="s3_staging")
    assert first.state == "success", _states(first)
    assert _xcom(first, "plan", "method")["method"] == "import"
    client = emulator.client()
    [read_set] = _read_sets(client, store_id)

    monkeypatch.setenv("AIRFLOW_CONN_OMICS_TEST", json.dumps({"conn_type": "aws", "extra": extra}))
    again = clear_and_rerun(first, ["plan"], downstream=True)

    states = _states(again)
    assert again.state == "success", states
    assert _xcom(again, "plan", "method")["method"] == "upload"
    assert states["import"] == "skipped" and states["create"] == "success", states
    assert [rs["id"] for rs in _read_sets(client, store_id)] == [read_set["id"]]
    assert summary_row(again)["read_set_id"] == read_set["id"]
    assert summary_row(again)["verified"] is True
    assert len(_jobs(client, store_id)) == 1
    _check_imported(client, store_id, read_set["id"], originals)
    assert_no_upload_left(client, store_id)


def test_a_cleared_import_waits_for_or_reuses_its_job_and_starts_no_second_one(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, store_id: str, s3_staging: Any, tmp_path: Path
) -> None:
    uris, originals = _paired(tmp_path, s3_staging, "again")
    when = datetime(2026, 3, 2, tzinfo=UTC)
    first = run_dag(
        "omics_upload_import",
        uris,
        when,
        sequence_store_id=store_id,
        source_aws_conn_id="s3_staging",
        role_arn=ROLE_ARN,
    )
    assert first.state == "success", _states(first)
    client = emulator.client()
    [read_set] = _read_sets(client, store_id)

    again = clear_and_rerun(first, ["import"], downstream=True)

    assert again.state == "success", _states(again)
    assert summary_row(again)["read_set_id"] == read_set["id"]
    assert [rs["id"] for rs in _read_sets(client, store_id)] == [read_set["id"]]
    assert len(_jobs(client, store_id)) == 1
    _check_imported(client, store_id, read_set["id"], originals)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("local file", "method=import reads only S3 objects"),
        ("no role", "No import role"),
        ("malformed role", "is not an IAM role ARN"),
    ],
)
def test_method_import_refuses_what_it_cannot_import_before_anything_exists(
    airflow_db: Path,
    emulator: OmicsEmulator,
    omics_conn: str,
    store_id: str,
    s3_staging: Any,
    tmp_path: Path,
    case: str,
    message: str,
) -> None:
    read = write_fastq(tmp_path / "R1.fastq.gz", 100, compress=True, seed=4)
    sources = [str(read)] if case == "local file" else [_stage(s3_staging, read, "bad/R1.fastq.gz")]
    role = {"no role": "", "malformed role": "omics-import"}.get(case, ROLE_ARN)

    dag_run = run_dag(
        "omics_upload_import", sources, sequence_store_id=store_id, source_aws_conn_id="s3_staging", role_arn=role
    )

    states = _states(dag_run)
    assert dag_run.state == "failed" and states["plan"] == "failed", states
    assert states["import"] == "upstream_failed", states
    client = emulator.client()
    assert _read_sets(client, store_id) == [] and _jobs(client, store_id) == []
    assert_no_upload_left(client, store_id)
    from airflow_provider_omics.readsets.imports import choose_method
    from airflow_provider_omics.utils.errors import OmicsInputError

    class _Hook:
        def import_role_arn(self) -> None:
            return None

    with pytest.raises(OmicsInputError, match=message):
        choose_method("import", sources, role, _Hook(), "omics_test", _Log())  # type: ignore[arg-type]


class _Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str, /, *args: Any) -> None:
        self.lines.append(msg % args)

    def warning(self, msg: str, /, *args: Any) -> None:
        self.lines.append(msg % args)


def test_the_choice_is_logged_with_its_reason_and_a_malformed_role_is_never_ignored() -> None:
    from airflow_provider_omics.readsets.imports import choose_method
    from airflow_provider_omics.utils.errors import OmicsInputError

    class _Hook:
        def __init__(self, role: str | None) -> None:
            self.role = role

        def import_role_arn(self) -> str | None:
            return self.role

    log = _Log()
    s3 = ["s3://b/R1.fastq.gz", "s3://b/R2.fastq.gz"]
    assert choose_method("auto", s3, None, _Hook(ROLE_ARN), "c", log)["method"] == "import"
    assert log.lines[-1] == (
        f"method=auto: import the read set(s): every source is on S3 and import role {ROLE_ARN} is configured."
    )
    assert choose_method("auto", ["s3://b/x.bam", "/data/y.bam"], ROLE_ARN, _Hook(None), "c", log)["method"] == "upload"
    assert "1 of 2 source(s) are not on S3 (/data/y.bam)" in log.lines[-1]
    assert choose_method("auto", s3, "", _Hook(None), "c", log)["method"] == "upload"
    assert "no import role is configured" in log.lines[-1] and "'c'" in log.lines[-1]
    assert choose_method("upload", s3, ROLE_ARN, _Hook(None), "c", log)["method"] == "upload"
    with pytest.raises(OmicsInputError, match="is not an IAM role ARN"):
        choose_method("auto", s3, "arn:aws:iam::1:role/x", _Hook(None), "c", log)
    with pytest.raises(OmicsInputError, match="is not one of auto, upload, import"):
        choose_method("fast", s3, None, _Hook(None), "c", log)


def _manifest(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({column: row.get(column, "") for column in COLUMNS})
    return out.getvalue().encode()


def _run(dag_id: str, **conf: Any) -> Any:
    from tests.dags import upload_run

    return getattr(upload_run, dag_id).test(run_conf={**upload_run.PARAMS, **conf})


def test_a_run_on_s3_is_imported_with_auto_and_one_bad_sample_fails_alone(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, store_id: str, s3_staging: Any, tmp_path: Path
) -> None:
    pair, pair_bytes = _paired(tmp_path, s3_staging, "runs/pair")
    single = write_fastq(tmp_path / "S2.fastq.gz", 150, compress=True, seed=7)
    bam = write_bam(tmp_path / "S3.bam", 120)
    broken = tmp_path / "S4.fastq"
    broken.write_bytes(b"this is not a FASTQ record\n")
    rows = [
        {"sample_id": "S1", "subject_id": "p1", "name": "S1", "read1": pair[0], "read2": pair[1]},
        {"sample_id": "S2", "subject_id": "p2", "name": "S2", "read1": _stage(s3_staging, single, "runs/S2.fq.gz")},
        {
            "sample_id": "S3",
            "subject_id": "p3",
            "name": "S3",
            "read1": _stage(s3_staging, bam, "runs/S3.bam"),
            "file_type": "BAM",
            "reference_arn": REFERENCE_ARN,
        },
        {"sample_id": "S4", "subject_id": "p4", "name": "S4", "read1": _stage(s3_staging, broken, "runs/S4.fastq")},
    ]
    manifest = _stage_bytes(s3_staging, _manifest(rows), "runs/manifest.csv")

    dag_run = _run(
        "omics_upload_run_auto",
        sequence_store_id=store_id,
        manifest=manifest,
        source_aws_conn_id="s3_staging",
        role_arn=ROLE_ARN,
    )

    states = _states(dag_run)
    assert dag_run.state == "failed" and states["summary"] == "failed", states
    assert {t: states[t] for t in ("plan", "import", "digest", "verify")} == dict.fromkeys(
        ("plan", "import", "digest", "verify"), "success"
    ), states
    for task in ("create", "upload_parts", "complete", "wait_active"):
        assert states[task] == "skipped", states
    # It still looks for uploads an earlier try of the run may have left (none here).
    assert states["abort"] == "success" and _xcom(dag_run, "abort") == [], states
    assert _xcom(dag_run, "plan", "method")["method"] == "import"
    assert _xcom(dag_run, "plan") == []
    summary = {row["sample"]: row for row in _summary_rows(dag_run)}
    assert {key: row["status"] for key, row in summary.items()} == {
        "S1/S1": "verified",
        "S2/S2": "verified",
        "S3/S3": "verified",
        "S4/S4": "failed",
    }
    assert "import" in summary["S4/S4"]["reason"], summary["S4/S4"]
    client = emulator.client()
    [job] = _jobs(client, store_id)
    assert job["status"] == "COMPLETED_WITH_FAILURES", job
    by_name = {rs["name"]: rs for rs in _read_sets(client, store_id) if rs["status"] == "ACTIVE"}
    assert set(by_name) == {"S1", "S2", "S3"}
    _check_imported(client, store_id, by_name["S1"]["id"], pair_bytes)
    assert stored_bytes(client, store_id, by_name["S2"]["id"], "SOURCE1") == single.read_bytes()
    assert stored_bytes(client, store_id, by_name["S3"]["id"], "SOURCE1") == bam.read_bytes()
    assert_no_upload_left(client, store_id)

    # Fixed and triggered again: only the failed sample is imported, in a second job.
    s3_staging.client.upload_file(
        str(write_fastq(tmp_path / "S4-fixed.fastq", 40, seed=9)), s3_staging.bucket, "runs/S4.fastq"
    )
    again = _run(
        "omics_upload_run_auto",
        sequence_store_id=store_id,
        manifest=manifest,
        source_aws_conn_id="s3_staging",
        role_arn=ROLE_ARN,
    )
    assert again.state == "success", _states(again)
    statuses = {row["sample"]: row["status"] for row in _xcom(again, "summary")}
    assert statuses == {
        "S1/S1": "skipped (already stored)",
        "S2/S2": "skipped (already stored)",
        "S3/S3": "skipped (already stored)",
        "S4/S4": "verified",
    }
    assert len(_jobs(client, store_id)) == 2
    assert len([rs for rs in _read_sets(client, store_id) if rs["status"] == "ACTIVE"]) == 4


def test_a_local_run_with_auto_uploads_directly(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, store_id: str, tmp_path: Path
) -> None:
    rows = []
    for n in (1, 2):
        read = write_fastq(tmp_path / f"S{n}.fastq", 30, seed=n)
        rows.append({"sample_id": f"S{n}", "subject_id": "p", "name": f"S{n}", "read1": str(read)})
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes(_manifest(rows))

    dag_run = _run("omics_upload_run_auto", sequence_store_id=store_id, manifest=str(manifest), role_arn=ROLE_ARN)

    states = _states(dag_run)
    assert dag_run.state == "success", states
    assert states["import"] == "skipped" and states["create"] == "success" and states["verify"] == "success"
    choice = _xcom(dag_run, "plan", "method")
    assert choice["method"] == "upload" and "are not on S3" in choice["reason"], choice
    assert {row["status"] for row in _xcom(dag_run, "summary")} == {"verified"}
    client = emulator.client()
    assert _jobs(client, store_id) == []
    assert {rs["creationType"] for rs in _read_sets(client, store_id)} == {"UPLOAD"}


def _stage_bytes(s3_staging: Any, data: bytes, key: str) -> str:
    s3_staging.client.put_object(Bucket=s3_staging.bucket, Key=key, Body=data)
    return f"s3://{s3_staging.bucket}/{key}"


def _summary_rows(dag_run: Any) -> list[dict[str, Any]]:
    """The failed summary's table, as it logged it: rebuilt from the verify step's samples and the plan."""
    from airflow_provider_omics.utils.payloads import run_samples

    plan = _xcom(dag_run, "plan", "samples")
    samples = run_samples(_xcom(dag_run, "verify"), plan)
    return [
        {"sample": key, "status": sample.status, "reason": sample.reason or "", "read_set_id": sample.read_set_id}
        for key, sample in samples.items()
    ]


def _count_triggers(monkeypatch: pytest.MonkeyPatch, first: Any = None) -> list[str]:
    """The ids of the jobs the import trigger waited for; ``first()`` runs before the trigger's first look."""
    from airflow_provider_omics.triggers.omics import OmicsReadSetImportJobCompleteTrigger

    triggered: list[str] = []
    original_run = OmicsReadSetImportJobCompleteTrigger.run

    async def counting_run(self: OmicsReadSetImportJobCompleteTrigger) -> Any:
        triggered.append(self.job_id)
        if first is not None:
            first()
        async for event in original_run(self):
            yield event

    monkeypatch.setattr(OmicsReadSetImportJobCompleteTrigger, "run", counting_run)
    return triggered


@pytest.mark.compat
def test_a_deferrable_import_waits_in_the_triggerer_and_resumes_with_its_job(
    airflow_db: Path,
    emulator: OmicsEmulator,
    omics_conn: str,
    store_id: str,
    s3_staging: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uris, originals = _paired(tmp_path, s3_staging, "deferred")
    triggered = _count_triggers(monkeypatch)
    # Held SUBMITTED until the trigger has looked: the task must defer, whatever the machine's speed.
    emulator.hold_import_jobs(at="SUBMITTED", release_after_reads=2)
    try:
        dag_run = run_dag(
            "omics_upload_import_deferrable",
            uris,
            sequence_store_id=store_id,
            source_aws_conn_id="s3_staging",
            role_arn=ROLE_ARN,
        )
    finally:
        emulator.release_import_jobs()

    assert dag_run.state == "success", _states(dag_run)
    client = emulator.client()
    [job] = _jobs(client, store_id)
    assert triggered == [job["id"]]
    assert _xcom(dag_run, "import", "import_jobs") == [job["id"]]
    [read_set] = _read_sets(client, store_id)
    assert summary_row(dag_run)["read_set_id"] == read_set["id"]
    assert summary_row(dag_run)["verified"] is True
    _check_imported(client, store_id, read_set["id"], originals)


def test_a_deferrable_run_import_does_not_import_a_failed_source_again_when_it_resumes(
    airflow_db: Path,
    emulator: OmicsEmulator,
    omics_conn: str,
    store_id: str,
    s3_staging: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The job is held SUBMITTED while the task defers; the trigger removes one sample's object before its first
    look, so the job fails that source without a read set. The resumed task takes the outcome from the job it
    waited for: it does not see "no read set, no job running" and start a second job."""
    good = write_fastq(tmp_path / "G.fastq.gz", 100, compress=True, seed=11)
    gone = write_fastq(tmp_path / "B.fastq.gz", 100, compress=True, seed=12)
    rows = [
        {"sample_id": "G", "subject_id": "p", "name": "G", "read1": _stage(s3_staging, good, "deferred-run/G.fq.gz")},
        {"sample_id": "B", "subject_id": "p", "name": "B", "read1": _stage(s3_staging, gone, "deferred-run/B.fq.gz")},
    ]
    manifest = _stage_bytes(s3_staging, _manifest(rows), "deferred-run/manifest.csv")
    triggered = _count_triggers(
        monkeypatch, lambda: s3_staging.client.delete_object(Bucket=s3_staging.bucket, Key="deferred-run/B.fq.gz")
    )
    emulator.hold_import_jobs(at="SUBMITTED", release_after_reads=2)
    try:
        dag_run = _run(
            "omics_upload_run_auto_deferrable",
            sequence_store_id=store_id,
            manifest=manifest,
            source_aws_conn_id="s3_staging",
            role_arn=ROLE_ARN,
        )
    finally:
        emulator.release_import_jobs()

    states = _states(dag_run)
    assert dag_run.state == "failed" and states["summary"] == "failed", states
    assert states["import"] == "success" and states["verify"] == "success", states
    client = emulator.client()
    [job] = _jobs(client, store_id)
    assert job["status"] == "COMPLETED_WITH_FAILURES" and triggered == [job["id"]], (job, triggered)
    [failed_source] = [
        source
        for source in client.get_read_set_import_job(sequenceStoreId=store_id, id=job["id"])["sources"]
        if source["status"] == "FAILED"
    ]
    assert failed_source["sampleId"] == "B" and "readSetId" not in failed_source, failed_source
    summary = {row["sample"]: row for row in _summary_rows(dag_run)}
    assert summary["G/G"]["status"] == "verified" and summary["B/B"]["status"] == "failed", summary
    assert "B.fq.gz" in summary["B/B"]["reason"], summary["B/B"]
    [read_set] = _read_sets(client, store_id)
    assert read_set["status"] == "ACTIVE" and read_set["name"] == "G"
    assert stored_bytes(client, store_id, read_set["id"], "SOURCE1") == good.read_bytes()
