"""The example DAG on Airflow's CeleryExecutor: two workers that share no disk, one of them killed mid-part.

A real deployment in local processes (``airflow_provider_omics.testing.deployment``): a Redis broker, the
HealthOmics emulator, api-server, dag-processor and scheduler on a sqlite metadata database, and two
``airflow celery worker`` processes, each with its own directory, DAG files, task logs and hostname and no
metadata database. The paired FASTQ is staged on S3 (moto's server), so the workers share nothing but the broker, the
Execution API and the connection. While one worker streams a part to UploadReadSetPart, its process group and
its task processes' groups are SIGKILLed; the scheduler notices the missing heartbeats, and the part task's retry
runs on the other worker. The run must still store exactly the staged bytes and leave no upload behind.

The emulator's request gate decides when that happens, not timing: every UploadReadSetPart is held once its
headers are read (its sender blocked mid-body, a part in flight) until the test releases it, so the test knows
which task process has a part in flight when it kills the worker, however slowly the machine runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import boto3
import psutil
import pytest

from airflow_provider_omics.testing import emulator_client
from airflow_provider_omics.testing.deployment import AirflowDeployment
from airflow_provider_omics.testing.omics_emulator import emulator_admin
from airflow_provider_omics.testing.samples import write_fastq
from tests.helpers import stored_bytes

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DAG_FILE = REPO / "example_dags" / "omics_upload_from_ui.py"
DAG_ID = "omics_upload_read_set"
RUN_ID = "celery_worker_killed"
PART_TASK = "upload_read_set.upload_parts"
PART_OPERATION = "UploadReadSetPart"
WORKERS = ("worker-a", "worker-b")
CONCURRENCY = 2
# 30,000 gzipped reads are about 5 MB a file: 1 MiB parts give 5 parts a source, 10 part tasks, more than the
# 4 worker slots, so that a worker finishes a part task and then starts another.
READS = 30_000
PART_TASKS = 10
HEARTBEAT_TIMEOUT = 15
# Bounds that only catch a hang on a loaded 2-core machine; none of them decides the outcome.
START_TIMEOUT = 240
STEP_TIMEOUT = 300
RUN_TIMEOUT = 420
# A held part's sender is blocked mid-body, and botocore's 60 s socket timeouts would have it give up and send
# the part again while the test waits for the other worker; far above every wait of the test.
CLIENT_TIMEOUT = 1800
T = TypeVar("T")
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
                "config_kwargs": {"connect_timeout": CLIENT_TIMEOUT, "read_timeout": CLIENT_TIMEOUT},
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


def _task_instances(deployment: AirflowDeployment) -> list[dict[str, Any]]:
    rows = deployment.query(
        "SELECT task_id, map_index, state, hostname, pid, try_number FROM task_instance "
        "WHERE dag_id = ? AND run_id = ? ORDER BY task_id, map_index",
        DAG_ID,
        RUN_ID,
    )
    keys = ("task_id", "map_index", "state", "hostname", "pid", "try_number")
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


def _gate(deployment: AirflowDeployment, body: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = emulator_admin(deployment.endpoint_url, "requests", body)
    return answer


def _in_flight(deployment: AirflowDeployment, tis: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], int]]:
    """``(worker, task instance, held request id)`` for each part held at the gate whose connection is one of a
    running task's own process, under that worker: the held request's client port is the process's end of it."""
    emulator_port = int(deployment.endpoint_url.rsplit(":", 1)[1])
    held = {h["client_port"]: h["id"] for h in _gate(deployment)["held"] if h["operation"] == PART_OPERATION}
    found = []
    for worker in WORKERS:
        try:
            tree = {p.pid for p in psutil.Process(deployment.procs[worker].pid).children(recursive=True)}
        except psutil.Error:
            continue
        for ti in tis:
            if ti["hostname"] != worker or ti["state"] != "running" or ti["pid"] not in tree:
                continue
            try:
                connections = psutil.Process(ti["pid"]).net_connections(kind="tcp")
            except psutil.Error:
                continue
            for c in connections:
                ours = c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr.port == emulator_port
                if ours and c.laddr.port in held:
                    found.append((worker, ti, held[c.laddr.port]))
    return found


def _first_parts(deployment: AirflowDeployment) -> dict[str, tuple[dict[str, Any], int]] | None:
    """A part in flight of each worker, once both have one."""
    first: dict[str, tuple[dict[str, Any], int]] = {}
    for worker, ti, held_id in _in_flight(deployment, _task_instances(deployment)):
        first.setdefault(worker, (ti, held_id))
    return first if len(first) == len(WORKERS) else None


def _finish(deployment: AirflowDeployment, chosen: list[dict[str, Any]]) -> bool:
    """Release whatever the chosen part tasks have held (a part task may upload more than one part); true once
    they all succeeded."""
    tis = _task_instances(deployment)
    state = {(ti["task_id"], ti["map_index"]): ti["state"] for ti in tis}
    keys = {(ti["task_id"], ti["map_index"], ti["try_number"]) for ti in chosen}
    for _, ti, held_id in _in_flight(deployment, tis):
        if (ti["task_id"], ti["map_index"], ti["try_number"]) in keys:
            _gate(deployment, {"action": "release", "id": held_id})
    return all(state[(ti["task_id"], ti["map_index"])] == "success" for ti in chosen)


def _kill_point(deployment: AirflowDeployment) -> tuple[str, dict[str, Any]] | None:
    """A worker that has finished a part task and now runs nothing but part tasks, all its slots full (so that it
    holds no message it has not started), one of them with a part held at the gate: sent in part, never served."""
    tis = _task_instances(deployment)
    in_flight = _in_flight(deployment, tis)
    for worker in WORKERS:
        mine = [ti for ti in tis if ti["hostname"] == worker]
        running = [ti for ti in mine if ti["state"] == "running"]
        if (
            len(running) < CONCURRENCY
            or any(ti["task_id"] != PART_TASK for ti in running)
            or not any(ti["task_id"] == PART_TASK and ti["state"] == "success" for ti in mine)
        ):
            continue
        for owner, ti, _ in in_flight:
            if owner == worker:
                return worker, ti
    return None


def _wait_for(deployment: AirflowDeployment, what: str, probe: Callable[[], T | None]) -> T:
    """Poll ``probe`` until it finds something, while the run goes on; the bound only catches a hang."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while (found := probe()) is None or found is False:
        assert deployment.run_state(DAG_ID, RUN_ID) in ("queued", "running"), f"the run ended before {what}"
        deployment.check_alive()
        assert time.monotonic() < deadline, f"gave up after {STEP_TIMEOUT} s waiting for {what}"
        time.sleep(0.5)
    return found


def _report(deployment: AirflowDeployment) -> str:
    lines = ["task instances:"]
    try:
        lines += [f"  {ti}" for ti in _task_instances(deployment)]
    except Exception as exc:
        lines.append(f"  (unreadable: {exc!r})")
    try:
        lines.append(f"request gate: {_gate(deployment)}")
    except Exception as exc:
        lines.append(f"request gate: (unreadable: {exc!r})")
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
    _gate(deployment, {"action": "hold", "operation": PART_OPERATION})

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

    # Each worker gets a part through (both then own a part the read set keeps); the other parts stay held.
    first = _wait_for(deployment, "a part in flight on each worker", lambda: _first_parts(deployment))
    chosen = [ti for ti, _ in first.values()]
    _wait_for(deployment, f"the first parts {chosen} to succeed", lambda: _finish(deployment, chosen))
    print(f"first parts done {time.monotonic() - started:.0f} s into the test: {chosen}")

    victim, killed_ti = _wait_for(
        deployment, "a worker with all its slots on part tasks and a part in flight", lambda: _kill_point(deployment)
    )
    survivor = next(w for w in WORKERS if w != victim)
    deployment.kill(victim)
    killed_at = time.monotonic()
    _gate(deployment, {"action": "open"})
    # The attempt never finished its part: its request was held at the gate when the worker died.
    assert not _part_done(deployment, victim, killed_ti)
    print(f"killed {victim} {killed_at - started:.0f} s into the test, while {killed_ti} was uploading")

    state = deployment.wait_run(DAG_ID, RUN_ID, RUN_TIMEOUT, except_for=[victim])
    after, total = time.monotonic() - killed_at, time.monotonic() - started
    print(f"run {state} {after:.0f} s after the kill, {total:.0f} s after the trigger")
    assert state == "success"

    tis = _task_instances(deployment)
    parts = [ti for ti in tis if ti["task_id"] == PART_TASK]
    assert len(parts) == PART_TASKS
    # The example chooses its path at run time (method "auto"): local files are uploaded, the import skips.
    assert all(ti["state"] == ("skipped" if ti["task_id"].endswith(".import") else "success") for ti in tis), tis
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
