"""The example DAG on Airflow's CeleryExecutor: two workers that share no disk, one of them killed mid-part.

A real deployment in local processes (``airflow_provider_omics.testing.deployment``): a Redis broker, the
HealthOmics emulator, api-server, dag-processor and scheduler on a sqlite metadata database, and two
``airflow celery worker`` processes, each with its own directory, DAG files, task logs and hostname and no
metadata database. The paired FASTQ is staged on S3 (moto's server), so the workers share nothing but the broker, the
Execution API and the connection. While one worker streams a part to UploadReadSetPart, its process group and
its task processes' groups are SIGKILLed; the scheduler notices the missing heartbeats, and the part task's retry
runs on the other worker. The run must still store exactly the staged bytes and leave no upload behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psutil
import pytest

from airflow_provider_omics.testing import FaultConfig, emulator_client
from airflow_provider_omics.testing.deployment import AirflowDeployment
from airflow_provider_omics.testing.samples import write_fastq
from tests.helpers import stored_bytes

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DAG_FILE = REPO / "example_dags" / "omics_upload_from_ui.py"
DAG_ID = "omics_upload_read_set"
RUN_ID = "celery_worker_killed"
PART_TASK = "upload_read_set.upload_parts"
WORKERS = ("worker-a", "worker-b")
CONCURRENCY = 2
# The emulator holds each UploadReadSetPart this long before reading its body, and only a part task that
# started less than PART_LATENCY - MARGIN seconds ago is killed: its part cannot have ended before the kill,
# however loaded the machine (the kill itself takes milliseconds).
PART_LATENCY = 8.0
MARGIN = 2.0
# 30,000 gzipped reads are about 5 MB a file: 1 MiB parts give 5 parts a source, 10 part tasks, more than the
# 4 worker slots, so that a worker finishes a part task and then starts another.
READS = 30_000
PART_TASKS = 10
HEARTBEAT_TIMEOUT = 15
# Bounds that only catch a hang on a loaded 2-core machine; none of them decides the outcome.
START_TIMEOUT = 240
KILL_TIMEOUT = 300
RUN_TIMEOUT = 420
_PART_DONE = re.compile(r"SOURCE\d part \d+ of \d+: \d+ bytes|Uploaded SOURCE\d parts")


def _redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        # This machine could have had it: the project's set-up was skipped, which must not pass as a skip.
        pytest.fail("redis-server is missing: `make services` installs it (Debian's redis-server package)")
    pytest.skip("needs Redis: redis-server is not installed, and without apt-get as root it cannot be installed")


@pytest.fixture
def deployment(tmp_path: Path, s3_server: str) -> Iterator[AirflowDeployment]:
    _redis_server()
    deployment = AirflowDeployment(
        tmp_path,
        [DAG_FILE],
        executor="CeleryExecutor",
        config={
            "CORE__PARALLELISM": "16",
            # Where the DAG sets no retry_delay, a retry would wait the default 300 s.
            "CORE__DEFAULT_TASK_RETRY_DELAY": "5",
            "CELERY__WORKER_CONCURRENCY": str(CONCURRENCY),
            # A dead worker is noticed by its tasks' missing heartbeats.
            "SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
            "SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            "WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
        },
    )
    try:
        broker = deployment.start_redis()
        deployment.env["AIRFLOW__CELERY__BROKER_URL"] = broker
        deployment.env["AIRFLOW__CELERY__RESULT_BACKEND"] = broker.rsplit("/", 1)[0] + "/1"
        endpoint = deployment.start_emulator(tmp_path / "emulator-data", activation_delay=0)
        connection = {
            "conn_type": "aws",
            # 6+ characters: the secret masker skips (and says so) shorter secrets.
            "login": "celery-test-access-key",
            "password": "celery-test-secret-key",
            "extra": {
                "region_name": "us-east-1",
                "service_config": {"omics": {"endpoint_url": endpoint}, "s3": {"endpoint_url": s3_server}},
            },
        }
        deployment.env["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(connection)

        def start_workers() -> None:
            for name in WORKERS:
                deployment.start_celery_worker(name, concurrency=CONCURRENCY)

        deployment.start(dag_id=DAG_ID, api_timeout=START_TIMEOUT, dag_timeout=START_TIMEOUT, then=start_workers)
        for name in WORKERS:
            deployment.wait_celery_worker(name, timeout=START_TIMEOUT)
    except BaseException:
        print(_report(deployment))
        deployment.stop()
        raise
    try:
        yield deployment
    finally:
        deployment.stop()


def _set_faults(endpoint: str, faults: FaultConfig) -> None:
    request = urllib.request.Request(
        f"{endpoint}/_emulator/faults",
        data=json.dumps(faults.to_dict()).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30):
        pass


def _task_instances(deployment: AirflowDeployment) -> list[dict[str, Any]]:
    rows = deployment.query(
        "SELECT task_id, map_index, state, hostname, pid, try_number, "
        "(julianday('now') - julianday(start_date)) * 86400.0 FROM task_instance "
        "WHERE dag_id = ? AND run_id = ? ORDER BY task_id, map_index",
        DAG_ID,
        RUN_ID,
    )
    keys = ("task_id", "map_index", "state", "hostname", "pid", "try_number", "age")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def _attempt_log(deployment: AirflowDeployment, worker: str, ti: dict[str, Any]) -> Path:
    return (
        deployment.worker_homes[worker]
        / "logs"
        / f"dag_id={DAG_ID}"
        / f"run_id={RUN_ID}"
        / f"task_id={ti['task_id']}"
        / f"map_index={ti['map_index']}"
        / f"attempt={ti['try_number']}.log"
    )


def _part_done(deployment: AirflowDeployment, worker: str, ti: dict[str, Any]) -> bool:
    log = _attempt_log(deployment, worker, ti)
    return log.exists() and bool(_PART_DONE.search(log.read_text(errors="replace")))


def _uploading(deployment: AirflowDeployment, worker: str, ti: dict[str, Any], emulator_port: int) -> bool:
    """The part task's own process, under ``worker``, has a connection to the emulator and has logged no finished
    part: a part task calls nothing there but UploadReadSetPart, so that is a part upload in flight."""
    tree = psutil.Process(deployment.procs[worker].pid).children(recursive=True)
    if ti["pid"] not in {p.pid for p in tree}:
        return False
    try:
        connections = psutil.Process(ti["pid"]).net_connections(kind="tcp")
    except psutil.Error:
        return False
    if not any(c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr.port == emulator_port for c in connections):
        return False
    return not _part_done(deployment, worker, ti)


def _kill_point(deployment: AirflowDeployment, emulator_port: int) -> tuple[str, dict[str, Any]] | None:
    """A worker that has finished a part task and now runs nothing but part tasks, all its slots full (so that it
    holds no message it has not started), one of them started less than PART_LATENCY - MARGIN seconds ago and
    streaming its part."""
    tis = _task_instances(deployment)
    for worker in WORKERS:
        mine = [ti for ti in tis if ti["hostname"] == worker]
        running = [ti for ti in mine if ti["state"] == "running"]
        if (
            len(running) < CONCURRENCY
            or any(ti["task_id"] != PART_TASK for ti in running)
            or not any(ti["task_id"] == PART_TASK and ti["state"] == "success" for ti in mine)
        ):
            continue
        for ti in running:
            fresh = ti["age"] is not None and ti["age"] < PART_LATENCY - MARGIN
            if fresh and _uploading(deployment, worker, ti, emulator_port):
                return worker, ti
    return None


def _report(deployment: AirflowDeployment) -> str:
    lines = ["task instances:"]
    try:
        lines += [f"  {ti}" for ti in _task_instances(deployment)]
    except Exception as exc:
        lines.append(f"  (unreadable: {exc!r})")
    for name in ("scheduler", *WORKERS, "dag-processor", "api-server", "emulator", "redis", "db-migrate"):
        lines += [f"----- {deployment.log_path(name)} (tail)", deployment.tail(name)]
    return "\n".join(lines)


def test_celery_workers_survive_a_killed_worker(deployment: AirflowDeployment, s3_server: str, tmp_path: Path) -> None:
    try:
        _run_and_check(deployment, s3_server, tmp_path)
    except BaseException:
        print(_report(deployment))
        raise


def _run_and_check(deployment: AirflowDeployment, s3_server: str, tmp_path: Path) -> None:
    started = time.monotonic()
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    bucket = f"celery-staging-{time.monotonic_ns()}"
    s3.create_bucket(Bucket=bucket)
    staged = {}
    for read in (1, 2):
        path = write_fastq(tmp_path / f"S1_R{read}.fastq.gz", READS, compress=True, seed=read, prefix=f"r{read}")
        key = f"run-1/S1_R{read}.fastq.gz"
        s3.upload_file(str(path), bucket, key)
        path.unlink()  # no worker may read it from this disk
        staged[f"SOURCE{read}"] = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    client = emulator_client(deployment.endpoint_url)
    store_id = client.create_sequence_store(name="celery")["id"]
    parts_only = frozenset({"UploadReadSetPart"})
    _set_faults(deployment.endpoint_url, FaultConfig(latency=PART_LATENCY, operations=parts_only))

    deployment.trigger(
        DAG_ID,
        RUN_ID,
        {
            "sequence_store_id": store_id,
            "source_file_type": "FASTQ",
            "read1": f"s3://{bucket}/run-1/S1_R1.fastq.gz",
            "read2": f"s3://{bucket}/run-1/S1_R2.fastq.gz",
            "sample_id": "S1",
            "subject_id": "subject-1",
            "name": "S1-celery",
            "reference_arn": None,
            "part_size_mib": 1,
            "max_tasks": PART_TASKS,
        },
    )

    emulator_port = int(deployment.endpoint_url.rsplit(":", 1)[1])
    deadline = time.monotonic() + KILL_TIMEOUT
    found = _kill_point(deployment, emulator_port)
    while found is None:
        assert deployment.run_state(DAG_ID, RUN_ID) in ("queued", "running"), "the run ended before a kill"
        deployment.check_alive()
        assert time.monotonic() < deadline, "no worker ever started a part upload with all its slots on part tasks"
        time.sleep(0.2)
        found = _kill_point(deployment, emulator_port)
    victim, killed_ti = found
    survivor = next(w for w in WORKERS if w != victim)
    deployment.kill(victim)
    killed_at = time.monotonic()
    # The attempt never finished its part: the kill landed mid-upload.
    assert not _part_done(deployment, victim, killed_ti)
    print(f"killed {victim} {killed_at - started:.0f} s into the test, while {killed_ti} was uploading")

    state = deployment.wait_run(DAG_ID, RUN_ID, RUN_TIMEOUT, except_for=[victim])
    after, total = time.monotonic() - killed_at, time.monotonic() - started
    print(f"run {state} {after:.0f} s after the kill, {total:.0f} s after the trigger")
    assert state == "success"

    tis = _task_instances(deployment)
    parts = [ti for ti in tis if ti["task_id"] == PART_TASK]
    assert len(parts) == PART_TASKS
    assert all(ti["state"] == "success" for ti in tis), tis
    # Both workers uploaded parts that the read set kept; the killed part's retry ran on the survivor.
    assert {ti["hostname"] for ti in parts} == set(WORKERS)
    retried = next(ti for ti in parts if ti["map_index"] == killed_ti["map_index"])
    assert retried["hostname"] == survivor
    assert retried["try_number"] > killed_ti["try_number"]
    history = deployment.query(
        "SELECT hostname FROM task_instance_history WHERE dag_id = ? AND run_id = ? AND task_id = ? "
        "AND map_index = ? AND try_number = ?",
        DAG_ID,
        RUN_ID,
        PART_TASK,
        killed_ti["map_index"],
        killed_ti["try_number"],
    )
    assert history == [(victim,)]

    read_sets = client.list_read_sets(sequenceStoreId=store_id)["readSets"]
    assert len(read_sets) == 1, read_sets
    read_set_id = read_sets[0]["id"]
    assert read_sets[0]["status"] == "ACTIVE"
    for source, data in staged.items():
        assert stored_bytes(client, store_id, read_set_id, source) == data, source
    assert client.list_multipart_read_set_uploads(sequenceStoreId=store_id)["uploads"] == []
