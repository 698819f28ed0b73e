"""Reliability: faults survived, permanent failures fail fast, nothing orphaned, no secret leaked.

Every test is an end-to-end DAG run (real Airflow ``dag.test()`` on sqlite) against the emulator over HTTP.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_omics.testing import FaultConfig, OmicsEmulator
from airflow_provider_omics.testing.samples import write_fastq
from tests.helpers import assert_no_upload_left, assert_uploaded, run_dag, task_states, tries, use_omics_connection

# The eight errors the API lists for UploadReadSetPart, and who deals with each (README "Errors and retries").
RETRIED_BY_BOTOCORE = ["ThrottlingException", "InternalServerException", "RequestTimeoutException"]
FAIL_AT_ONCE = [
    "ValidationException",
    "ResourceNotFoundException",
    "AccessDeniedException",
    "NotSupportedOperationException",
    "ServiceQuotaExceededException",
]


def run_interludes(store_id: str, source: str, **interludes: Any) -> Any:
    from tests.dags import upload_interludes

    upload_interludes.INTERLUDES.clear()
    upload_interludes.INTERLUDES.update(interludes)
    try:
        return upload_interludes.omics_upload_interludes.test(
            run_conf={**upload_interludes.PARAMS, "sequence_store_id": store_id, "read1": source, "part_size": 4096}
        )
    finally:
        upload_interludes.INTERLUDES.clear()


# -- transient faults ----------------------------------------------------------------------------------------


def test_transient_faults_are_survived_and_the_read_set_verified(
    airflow_db: Path, own_emulator: OmicsEmulator, tmp_path: Path
) -> None:
    emu = own_emulator
    store_id = emu.client().create_sequence_store(name="faults")["id"]
    fastq = write_fastq(tmp_path / "reads.fastq.gz", 3000, compress=True, seed=11)
    emu.set_faults(FaultConfig(seed=7, throttle_rate=0.20, internal_error_rate=0.05, drop_rate=0.05, latency=0.005))

    started = time.monotonic()
    dag_run = run_dag("omics_upload_group", [str(fastq)], sequence_store_id=store_id, part_size=4096, max_tasks=8)
    elapsed = time.monotonic() - started

    counts = emu.fault_counts
    emu.set_faults(FaultConfig())
    states = task_states(dag_run)
    assert dag_run.state == "success", states
    assert states["verify"] == ["success"]
    assert_uploaded(emu.client(), store_id, {"SOURCE1": fastq.read_bytes()})
    injected = sum(v for k, v in counts.items() if k != "latency")
    task_retries = sum(t - 1 for t in tries(dag_run, "upload_parts"))
    print(f"\nfaults injected: {counts}; Airflow task retries: {task_retries}; run took {elapsed:.1f} s")
    assert counts.get("ThrottlingException", 0) > 0 and counts.get("InternalServerException", 0) > 0
    assert counts.get("drop", 0) > 0 and injected > 20


@pytest.mark.parametrize("error", RETRIED_BY_BOTOCORE)
def test_transient_part_error_recovers_within_the_task(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, store_id: str, tmp_path: Path, error: str
) -> None:
    fastq = write_fastq(tmp_path / "reads.fastq", 200, seed=12)
    emulator.inject(error=error, operation="UploadReadSetPart", count=2)

    dag_run = run_dag("omics_upload_operators", [str(fastq)], sequence_store_id=store_id, part_size=8192)

    assert dag_run.state == "success", task_states(dag_run)
    assert set(tries(dag_run, "upload_parts")) == {1}  # botocore's retries absorbed it
    assert_uploaded(emulator.client(), store_id, {"SOURCE1": fastq.read_bytes()})


@pytest.mark.parametrize("error", FAIL_AT_ONCE)
def test_permanent_part_error_fails_fast_and_leaves_nothing(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, store_id: str, tmp_path: Path, error: str
) -> None:
    fastq = write_fastq(tmp_path / "reads.fastq", 200, seed=13)
    before = sum(emulator.fault_counts.values())
    emulator.inject(error=error, operation="UploadReadSetPart", count=1)

    dag_run = run_dag("omics_upload_operators", [str(fastq)], sequence_store_id=store_id, part_size=8192)

    states = task_states(dag_run)
    assert dag_run.state == "failed", states
    # One injected error, one failed try: no botocore retry, no part-loop retry, no Airflow retry.
    assert sum(emulator.fault_counts.values()) - before == 1
    assert "failed" in states["upload_parts"] and set(tries(dag_run, "upload_parts")) == {1}
    assert states["abort"] == ["success"]
    assert_no_upload_left(emulator.client(), store_id)


# -- the staged source changes between split and upload -------------------------------------------------------


@pytest.mark.parametrize("change", ["size", "mtime"])
def test_local_source_changed_after_split_is_refused_and_the_upload_aborted(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, store_id: str, tmp_path: Path, change: str
) -> None:
    fastq = write_fastq(tmp_path / "reads.fastq", 200, seed=14)

    def modify(context: dict[str, Any]) -> None:
        if change == "size":
            with open(fastq, "ab") as out:
                out.write(b"@extra\nACGT\n+\nIIII\n")
        else:
            stat = fastq.stat()
            os.utime(fastq, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    dag_run = run_interludes(store_id, str(fastq), before_upload=modify)

    states = task_states(dag_run)
    assert dag_run.state == "failed", states
    assert set(states["upload_parts"]) == {"failed"} and set(tries(dag_run, "upload_parts")) == {1}
    assert states["abort"] == ["success"]
    assert_no_upload_left(emulator.client(), store_id)


def test_s3_source_rewritten_after_split_is_refused(
    airflow_db: Path,
    emulator: OmicsEmulator,
    omics_conn: str,
    store_id: str,
    s3_staging: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_provider_omics.operators.omics import OmicsUploadReadSetPartOperator

    fastq = write_fastq(tmp_path / "reads.fastq", 200, seed=15)
    s3, bucket = s3_staging.client, s3_staging.bucket
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.upload_file(str(fastq), bucket, "reads.fastq")
    failures: list[str] = []
    original = OmicsUploadReadSetPartOperator.execute

    def record_failure(self: Any, context: Any) -> Any:
        try:
            return original(self, context)
        except Exception as err:
            failures.append(str(err))
            raise

    monkeypatch.setattr(OmicsUploadReadSetPartOperator, "execute", record_failure)

    def rewrite(context: dict[str, Any]) -> None:
        # Same size, other bytes: only the ETag and the version tell.
        data = bytearray(fastq.read_bytes())
        data[1:5] = b"XXXX"
        s3.put_object(Bucket=bucket, Key="reads.fastq", Body=bytes(data))

    from tests.dags import upload_interludes

    upload_interludes.INTERLUDES["before_upload"] = rewrite
    try:
        dag_run = upload_interludes.omics_upload_interludes.test(
            run_conf={
                **upload_interludes.PARAMS,
                "sequence_store_id": store_id,
                "read1": f"s3://{bucket}/reads.fastq",
                "part_size": 4096,
                "source_aws_conn_id": "s3_staging",
            }
        )
    finally:
        upload_interludes.INTERLUDES.clear()

    assert dag_run.state == "failed", task_states(dag_run)
    assert failures and all(f"s3://{bucket}/reads.fastq changed since it was split" in f for f in failures)
    assert_no_upload_left(emulator.client(), store_id)


# -- permanent failures ---------------------------------------------------------------------------------------


def test_upload_aborted_from_outside_fails_fast_without_orphans(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, store_id: str, tmp_path: Path
) -> None:
    fastq = write_fastq(tmp_path / "reads.fastq", 200, seed=16)
    client = emulator.client()

    def abort_from_outside(context: dict[str, Any]) -> None:
        (upload,) = client.list_multipart_read_set_uploads(sequenceStoreId=store_id)["uploads"]
        client.abort_multipart_read_set_upload(sequenceStoreId=store_id, uploadId=upload["uploadId"])

    dag_run = run_interludes(store_id, str(fastq), before_upload=abort_from_outside)

    states = task_states(dag_run)
    assert dag_run.state == "failed", states
    assert set(tries(dag_run, "upload_parts")) == {1}  # ResourceNotFound is not retried
    assert states["abort"] == ["success"]
    assert_no_upload_left(client, store_id)


def test_wrong_credentials_fail_fast_with_the_connection_id(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    fastq = write_fastq(tmp_path / "reads.fastq", 50, seed=17)
    with OmicsEmulator(access_key="AKIDRIGHT", secret_key="right-secret") as emu:
        store_id = emu.client().create_sequence_store(name="auth")["id"]
        use_omics_connection(monkeypatch, emu.endpoint_url, login="AKIDRIGHT", password="wrong-secret")

        started = time.monotonic()
        dag_run = run_dag("omics_upload_operators", [str(fastq)], sequence_store_id=store_id, part_size=8192)

        states = task_states(dag_run)
        assert dag_run.state == "failed" and states["create"] == ["failed"], states
        assert time.monotonic() - started < 60
        out, err = capfd.readouterr()
        assert "GetSequenceStore: access denied" in out + err and "AWS connection 'omics_test'" in out + err
        assert_no_upload_left(emu.client(), store_id)


# -- the service restarts mid-run ----------------------------------------------------------------------------


def test_emulator_restarted_mid_run_with_the_same_data_dir(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fastq = write_fastq(tmp_path / "reads.fastq.gz", 800, compress=True, seed=18)
    data_dir = tmp_path / "omics-data"
    emulators = [OmicsEmulator(data_dir=data_dir, activation_delay=0.05).start()]
    port = emulators[0].port
    use_omics_connection(monkeypatch, emulators[0].endpoint_url)
    store_id = emulators[0].client().create_sequence_store(name="restart")["id"]

    def restart(context: dict[str, Any]) -> None:
        emulators[-1].stop()
        emulators.append(OmicsEmulator(data_dir=data_dir, port=port, activation_delay=0.05).start())

    try:
        dag_run = run_interludes(store_id, str(fastq), before_upload=restart, before_complete=restart)
        assert len(emulators) == 3
        assert dag_run.state == "success", task_states(dag_run)
        metadata = assert_uploaded(emulators[-1].client(), store_id, {"SOURCE1": fastq.read_bytes()})
        assert metadata["etag"]["source1"] == hashlib.md5(gzip.decompress(fastq.read_bytes())).hexdigest()
    finally:
        emulators[-1].stop()


# -- secrets ---------------------------------------------------------------------------------------------------


def test_no_secret_reaches_logs_xcoms_or_rendered_fields(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from tests.compat import xcom_model

    XComModel = xcom_model()

    marker = "s3cr3t-MARKER-6f1c2b"
    fastq = write_fastq(tmp_path / "reads.fastq", 300, seed=19)
    with OmicsEmulator(access_key="AKIDMARKER", secret_key=marker, activation_delay=0.05) as emu:
        store_id = emu.client().create_sequence_store(name="secrets")["id"]
        use_omics_connection(monkeypatch, emu.endpoint_url, login="AKIDMARKER", password=marker)
        dag_run = run_dag("omics_upload_group", [str(fastq)], sequence_store_id=store_id, part_size=4096)
        assert dag_run.state == "success", task_states(dag_run)

    out, err = capfd.readouterr()
    assert marker not in out + err
    home = Path(os.environ["AIRFLOW_HOME"])
    for path in home.rglob("*"):
        if path.is_file() and path.suffix != ".db":
            assert marker.encode() not in path.read_bytes(), path
    with create_session() as session:
        xcoms = session.execute(select(XComModel.value).where(XComModel.run_id == dag_run.run_id)).all()
        rendered = session.execute(
            select(RenderedTaskInstanceFields.rendered_fields).where(
                RenderedTaskInstanceFields.run_id == dag_run.run_id
            )
        ).all()
    assert xcoms and rendered
    assert marker not in json.dumps([list(row) for row in xcoms], default=str)
    assert marker not in json.dumps([list(row) for row in rendered], default=str)


# -- load ------------------------------------------------------------------------------------------------------


def test_thousands_of_parts_in_one_run(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, store_id: str, tmp_path: Path
) -> None:
    import resource

    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    from tests.compat import xcom_model

    XComModel = xcom_model()

    fastq = write_fastq(tmp_path / "reads.fastq", 12000, read_length=100, seed=20)
    part_size = 1024
    parts = -(-fastq.stat().st_size // part_size)
    assert parts > 2000
    # A small run first, so that what Airflow itself loads once is not counted against the part count.
    warm_up = write_fastq(tmp_path / "warm-up.fastq", 150, read_length=100, seed=20)
    warm_store = emulator.client().create_sequence_store(name="warm-up")["id"]
    small = run_dag("omics_upload_operators", [str(warm_up)], sequence_store_id=warm_store, part_size=part_size)
    assert small.state == "success"
    small_parts = -(-warm_up.stat().st_size // part_size)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    started = time.monotonic()
    dag_run = run_dag(
        "omics_upload_operators", [str(fastq)], sequence_store_id=store_id, part_size=part_size, max_tasks=16
    )
    elapsed = time.monotonic() - started

    assert dag_run.state == "success", task_states(dag_run)
    metadata = assert_uploaded(emulator.client(), store_id, {"SOURCE1": fastq.read_bytes()})
    assert metadata["files"]["source1"]["totalParts"] == parts
    with create_session() as session:
        xcom_bytes = session.execute(
            select(func.sum(func.length(XComModel.value))).where(
                XComModel.run_id == dag_run.run_id, XComModel.task_id == "upload_parts"
            )
        ).scalar()
    rss_growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    print(
        f"\n{parts} parts in {elapsed:.1f} s ({elapsed / parts * 1000:.1f} ms per part); "
        f"part XComs {xcom_bytes / 1024:.0f} KiB ({xcom_bytes / parts:.0f} B per part); "
        f"peak RSS of the test process grew {rss_growth_mib:.0f} MiB over a {small_parts}-part run's"
    )
    assert xcom_bytes / parts < 200


# -- a part-upload worker killed mid-upload ---------------------------------------------------------------------

_WORKER = """
import json, sys
from airflow_provider_omics.operators.omics import OmicsUploadReadSetPartOperator
batch = json.loads(sys.argv[1])
OmicsUploadReadSetPartOperator(task_id="upload_parts", aws_conn_id="omics_test", max_concurrency=4, **batch).execute({})
"""


def test_part_worker_killed_mid_upload_then_the_retry_makes_a_correct_read_set(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, store_id: str, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys

    fastq = write_fastq(tmp_path / "reads.fastq.gz", 2000, compress=True, seed=21)
    client = emulator.client()
    killed: dict[str, Any] = {}

    def kill_a_worker_mid_upload(context: dict[str, Any]) -> None:
        # A worker process runs the first upload task's batch, as an executor would, and dies (SIGKILL) while
        # parts are in flight; the DAG's own upload tasks are then its retry.
        ti = context["ti"]
        batch = {**ti.xcom_pull(task_ids="split")[0], "upload_id": ti.xcom_pull(task_ids="create")}
        batch["sequence_store_id"] = store_id
        emulator.set_faults(FaultConfig(latency=0.2, operations=frozenset({"UploadReadSetPart"})))
        worker = subprocess.Popen([sys.executable, "-c", _WORKER, json.dumps(batch)], env=os.environ.copy())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            held = client.list_read_set_upload_parts(
                sequenceStoreId=store_id, uploadId=batch["upload_id"], partSource="SOURCE1"
            )["parts"]
            if len(held) >= 2:
                break
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        emulator.set_faults(FaultConfig())
        killed.update(returncode=worker.returncode, parts=len(held), batch=batch["last_part"])

    dag_run = run_interludes(store_id, str(fastq), before_upload=kill_a_worker_mid_upload)

    assert killed["returncode"] == -signal.SIGKILL
    assert 2 <= killed["parts"] < killed["batch"]  # it died with its batch unfinished
    assert dag_run.state == "success", task_states(dag_run)
    metadata = assert_uploaded(client, store_id, {"SOURCE1": fastq.read_bytes()})
    assert metadata["etag"]["source1"] == hashlib.md5(gzip.decompress(fastq.read_bytes())).hexdigest()


def test_missing_credentials_fail_fast_with_the_connection_id(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    fastq = write_fastq(tmp_path / "reads.fastq", 50, seed=22)
    with OmicsEmulator(access_key="AKIDRIGHT", secret_key="right-secret") as emu:
        store_id = emu.client().create_sequence_store(name="no-credentials")["id"]
        use_omics_connection(monkeypatch, emu.endpoint_url)
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

        started = time.monotonic()
        dag_run = run_dag("omics_upload_operators", [str(fastq)], sequence_store_id=store_id, part_size=8192)

        assert dag_run.state == "failed" and task_states(dag_run)["create"] == ["failed"]
        assert time.monotonic() - started < 60
        out, err = capfd.readouterr()
        assert "No AWS credentials were found for connection 'omics_test'" in out + err
        assert_no_upload_left(emu.client(), store_id)
