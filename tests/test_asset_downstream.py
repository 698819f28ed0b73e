"""A DAG scheduled on a sequence store's asset, on a real scheduler: every read set a run verified arrives once.

A real deployment in local processes (``airflow_provider_omics.testing.deployment``): the HealthOmics emulator,
api-server, dag-processor and scheduler with the LocalExecutor on a sqlite metadata database, running the example
DAGs ``omics_upload_sequencing_run`` and ``omics_analyze_arriving_read_sets`` (scheduled on the store's asset
``omics://<region>/<account>/sequence-store/<store id>``, the store's ARN given in ``OMICS_SEQUENCE_STORE_ARN``).

A run of three samples (two paired FASTQ, one single) verifies three read sets and emits one asset event listing
them through the alias ``omics-read-sets``; the scheduler runs the downstream DAG, whose mapped ``analyze`` tasks
must return exactly the store's three ACTIVE read sets, each once. Triggering the same manifest again skips every
sample, emits no event and runs nothing downstream. A third run, of one good sample and one the service fails at
activation, fails; its grid names the failed sample and step ("S5 failed at wait_active"), and only the good
sample is announced and analyzed downstream.

Every wait is bounded only to catch a hang: what is asserted is decided by the metadata database's state once the
scheduler has acted on it, never by how long something took.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from airflow_provider_omics.assets.omics import event_read_sets
from airflow_provider_omics.testing import emulator_client
from airflow_provider_omics.testing.deployment import REGION, AirflowDeployment
from airflow_provider_omics.testing.samples import write_fastq

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DAG_FILES = [
    REPO / "example_dags" / "omics_upload_sequencing_run.py",
    REPO / "example_dags" / "omics_analyze_arriving_read_sets.py",
]
UPSTREAM = "omics_upload_sequencing_run"
DOWNSTREAM = "omics_analyze_arriving_read_sets"
GROUP = "upload_sequencing_run"
VERIFY_TASK = f"{GROUP}.verify"
SUMMARY_TASK = f"{GROUP}.summary"
ANALYZE_TASK = "analyze"
FIRST_RUN = "sequencing_run_1"
SECOND_RUN = "sequencing_run_1_again"
FAILING_RUN = "sequencing_run_2_one_bad_sample"
FAILED_SAMPLE_TASK = f"{GROUP}.failed_sample"
# (sample id, subject id, paired, reads): one paired FASTQ, one single, one more paired.
SAMPLES = (("S1", "P1", True, 400), ("S2", "P2", False, 300), ("S3", "P3", True, 500))
# Bounds that only catch a hang on a loaded 2-core machine; none of them decides the outcome.
START_TIMEOUT = 240
RUN_TIMEOUT = 420
FINISHED = ("success", "failed")


@dataclass
class Stack:
    deployment: AirflowDeployment
    store_id: str
    store_arn: str
    asset_uri: str


def _report(deployment: AirflowDeployment) -> str:
    lines = []
    for what, sql in (
        ("dag runs", "SELECT dag_id, run_id, run_type, state FROM dag_run ORDER BY id"),
        (
            "task instances",
            "SELECT dag_id, run_id, task_id, map_index, state, try_number FROM task_instance ORDER BY dag_id, run_id",
        ),
        ("asset events", "SELECT id, asset_id, source_dag_id, source_run_id, source_task_id FROM asset_event"),
        ("asset_dag_run_queue", "SELECT asset_id, target_dag_id FROM asset_dag_run_queue"),
    ):
        lines.append(f"{what}:")
        try:
            lines += [f"  {row}" for row in deployment.query(sql)]
        except Exception as exc:
            lines.append(f"  (unreadable: {exc!r})")
    for name in ("scheduler", "dag-processor", "api-server", "emulator", "db-migrate"):
        lines += [f"----- {deployment.log_path(name)} (tail)", deployment.tail(name)]
    logs = deployment.home / "logs"
    for log in sorted(logs.glob("dag_id=*/run_id=*/task_id=*/**/attempt=*.log")) if logs.exists() else []:
        text = log.read_text(errors="replace")
        if "ERROR" in text or "Traceback" in text:
            lines += [f"----- {log} (tail)", "\n".join(text.splitlines()[-40:])]
    return "\n".join(lines)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    deployment = AirflowDeployment(
        tmp_path,
        DAG_FILES,
        executor="LocalExecutor",
        config={"CORE__PARALLELISM": "4", "CORE__DEFAULT_TASK_RETRY_DELAY": "5"},
    )
    try:
        endpoint = deployment.start_emulator(tmp_path / "emulator-data", activation_delay=0)
        store = emulator_client(endpoint).create_sequence_store(name="asset-downstream")
        store_id, store_arn = str(store["id"]), str(store["arn"])
        region, account = store_arn.split(":")[3:5]
        asset_uri = f"omics://{region}/{account}/sequence-store/{store_id}"
        # The downstream DAG reads the store's ARN when it is parsed: the dag-processor needs it.
        deployment.env["OMICS_SEQUENCE_STORE_ARN"] = store_arn
        connection = {
            "conn_type": "aws",
            # 6+ characters: the secret masker skips (and says so) shorter secrets.
            "login": "asset-test-access-key",
            "password": "asset-test-secret-key",
            "extra": {"region_name": REGION, "endpoint_url": endpoint},
        }
        deployment.env["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(connection)
        deployment.start(dag_id=UPSTREAM, api_timeout=START_TIMEOUT, dag_timeout=START_TIMEOUT)
        # An event queues only the DAGs that, when it is registered, are unpaused and scheduled on its asset.
        deployment.wait(
            lambda: _downstream_scheduled(deployment, asset_uri),
            START_TIMEOUT,
            f"the dag-processor to serialize {DOWNSTREAM} scheduled on {asset_uri}",
        )
    except BaseException:
        print(_report(deployment))
        deployment.stop()
        raise
    try:
        yield Stack(deployment, store_id, store_arn, asset_uri)
    finally:
        deployment.stop()


def _downstream_scheduled(deployment: AirflowDeployment, asset_uri: str) -> bool:
    if not (deployment.dag_ready(UPSTREAM) and deployment.dag_ready(DOWNSTREAM)):
        return False
    rows = deployment.query(
        "SELECT d.is_paused FROM dag_schedule_asset_reference r JOIN asset a ON a.id = r.asset_id "
        "JOIN dag d ON d.dag_id = r.dag_id WHERE r.dag_id = ? AND a.uri = ?",
        DOWNSTREAM,
        asset_uri,
    )
    return len(rows) == 1 and not rows[0][0]


def _stage_run(root: Path) -> tuple[Path, dict[str, str]]:
    """Three samples' FASTQ files and their CSV manifest; returns the manifest and sample id -> read set name."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["sample_id,subject_id,name,read1,read2"]
    names = {}
    for number, (sample_id, subject_id, paired, reads) in enumerate(SAMPLES, start=1):
        name = f"{sample_id}-reads"
        names[sample_id] = name
        reads_of = [1, 2] if paired else [1]
        files = [
            write_fastq(
                root / f"{sample_id}_R{read}.fastq.gz",
                reads,
                compress=True,
                seed=number * 10 + read,
                prefix=f"{sample_id}r{read}",
            )
            for read in reads_of
        ]
        read1, read2 = str(files[0]), str(files[1]) if paired else ""
        lines.append(f"{sample_id},{subject_id},{name},{read1},{read2}")
    manifest = root / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest, names


def _xcom(deployment: AirflowDeployment, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
    path = (
        f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}/taskInstances/{quote(task_id)}"
        f"/xcomEntries/return_value?map_index={map_index}"
    )
    value = deployment.api("GET", path)["value"]
    # The API returns the stored value; a JSON text if the database kept it as one.
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _wait_for(deployment: AirflowDeployment, what: str, probe: Callable[[], bool]) -> None:
    """Poll ``probe`` while the components run; the bound only catches a hang."""
    deployment.wait(probe, RUN_TIMEOUT, what)


def _asset_events(stack: Stack) -> list[dict[str, Any]]:
    rows = stack.deployment.query(
        "SELECT e.id, e.extra, e.source_dag_id, e.source_run_id, e.source_task_id FROM asset_event e "
        "JOIN asset a ON a.id = e.asset_id WHERE a.uri = ? ORDER BY e.id",
        stack.asset_uri,
    )
    keys = ("id", "extra", "source_dag_id", "source_run_id", "source_task_id")
    events = [dict(zip(keys, row, strict=True)) for row in rows]
    for event in events:
        if isinstance(event["extra"], str):
            event["extra"] = json.loads(event["extra"])
    return events


def _downstream_runs(deployment: AirflowDeployment) -> list[tuple[int, str, str, str | None]]:
    rows = deployment.query("SELECT id, run_id, run_type, state FROM dag_run WHERE dag_id = ? ORDER BY id", DOWNSTREAM)
    return [(int(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]


def _queued_downstream(deployment: AirflowDeployment) -> int:
    rows = deployment.query("SELECT COUNT(*) FROM asset_dag_run_queue WHERE target_dag_id = ?", DOWNSTREAM)
    return int(rows[0][0])


def _downstream_settled(stack: Stack) -> bool:
    """Nothing queued for the downstream DAG any more, and every run of it created so far has finished (and one
    was created, if any event was registered)."""
    deployment = stack.deployment
    runs = _downstream_runs(deployment)
    if _queued_downstream(deployment) or not all(state in FINISHED for *_, state in runs):
        return False
    return bool(runs) or not _asset_events(stack)


def _read_sets(stack: Stack) -> list[dict[str, Any]]:
    client = emulator_client(stack.deployment.endpoint_url)
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"sequenceStoreId": stack.store_id}
    while True:
        page = client.list_read_sets(**kwargs)
        found += page["readSets"]
        if not page.get("nextToken"):
            return found
        kwargs["nextToken"] = page["nextToken"]


def test_downstream_dag_gets_every_active_read_set_once(stack: Stack, tmp_path: Path) -> None:
    try:
        _run_and_check(stack, tmp_path)
    except BaseException:
        print(_report(stack.deployment))
        raise


def _run_and_check(stack: Stack, tmp_path: Path) -> None:
    deployment = stack.deployment
    started = time.monotonic()
    manifest, names = _stage_run(tmp_path / "run-1")
    conf = {"sequence_store_id": stack.store_id, "manifest": str(manifest), "part_size_mib": 1, "max_tasks": 4}

    deployment.trigger(UPSTREAM, FIRST_RUN, conf)
    assert deployment.wait_run(UPSTREAM, FIRST_RUN, RUN_TIMEOUT) == "success"
    print(f"first upload run succeeded {time.monotonic() - started:.0f} s into the test")

    read_sets = _read_sets(stack)
    active = {rs["id"]: rs for rs in read_sets if rs["status"] == "ACTIVE"}
    assert len(read_sets) == len(SAMPLES) and len(active) == len(SAMPLES), read_sets
    assert {rs["sampleId"]: rs["name"] for rs in active.values()} == names, read_sets
    active_ids = set(active)

    # The verify task's events were registered, and the downstream DAG queued, when verify succeeded: before
    # the upstream run could succeed. Wait until the scheduler has turned the queue into runs and they finished.
    _wait_for(deployment, f"the runs of {DOWNSTREAM} to be created and finish", lambda: _downstream_settled(stack))
    runs = _downstream_runs(deployment)
    print(f"{DOWNSTREAM} ran {len(runs)} time(s), done {time.monotonic() - started:.0f} s into the test: {runs}")
    assert all(run_type == "asset_triggered" and state == "success" for _, _, run_type, state in runs), runs

    # One event on the store's asset, from the first run's verify task, listing every verified read set.
    events = _asset_events(stack)
    assert len(events) == 1, events
    assert all(
        (e["source_dag_id"], e["source_run_id"], e["source_task_id"]) == (UPSTREAM, FIRST_RUN, VERIFY_TASK)
        for e in events
    ), events
    assert events[0]["extra"]["sequence_store_id"] == stack.store_id, events
    extras = {extra["read_set_id"]: extra for extra in event_read_sets(events[0]["extra"])}
    assert set(extras) == active_ids and len(event_read_sets(events[0]["extra"])) == len(SAMPLES), events
    for read_set_id, extra in extras.items():
        read_set = active[read_set_id]
        assert extra["read_set_arn"] == read_set["arn"], extra
        assert extra["sample_id"] == read_set["sampleId"], extra
        assert extra["subject_id"] == read_set["subjectId"], extra
        assert extra["name"] == read_set["name"], extra
        assert extra["file_type"] == "FASTQ" and extra["etag_verified"] is True, extra
    assert {extra["sample_id"] for extra in extras.values()} == set(names)

    # The downstream runs' analyze tasks returned each ACTIVE read set exactly once, across all runs, and every
    # event was consumed by exactly one downstream run.
    consumed: dict[str, list[int]] = {}
    analyzed: list[str] = []
    for _, run_id, _, _ in runs:
        consumed[run_id] = [
            int(row[0])
            for row in deployment.query(
                "SELECT a.event_id FROM dagrun_asset_event a JOIN dag_run dr ON dr.id = a.dag_run_id "
                "WHERE dr.dag_id = ? AND dr.run_id = ? ORDER BY a.event_id",
                DOWNSTREAM,
                run_id,
            )
        ]
        arrived = _xcom(deployment, DOWNSTREAM, run_id, "arrived_read_sets")
        map_indexes = [
            int(row[0])
            for row in deployment.query(
                "SELECT map_index, state FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = ? "
                "ORDER BY map_index",
                DOWNSTREAM,
                run_id,
                ANALYZE_TASK,
            )
            if row[1] == "success"
        ]
        assert len(map_indexes) == len(arrived), (run_id, arrived, map_indexes, consumed)
        returned = [str(_xcom(deployment, DOWNSTREAM, run_id, ANALYZE_TASK, i)) for i in map_indexes]
        assert sorted(returned) == sorted(str(item["read_set_id"]) for item in arrived), (run_id, arrived, returned)
        analyzed += returned
    never_consumed = sorted({e["id"] for e in events} - {i for ids in consumed.values() for i in ids})
    assert sorted(analyzed) == sorted(active_ids), (
        f"the downstream runs analyzed {sorted(analyzed)}, not the store's ACTIVE read sets {sorted(active_ids)}; "
        f"events consumed per run: {consumed}; events on the asset never consumed: {never_consumed}; events: {events}"
    )
    assert sorted(i for ids in consumed.values() for i in ids) == sorted(e["id"] for e in events), consumed

    # The same manifest again, under another run id: every sample is already in the store.
    deployment.trigger(UPSTREAM, SECOND_RUN, conf)
    assert deployment.wait_run(UPSTREAM, SECOND_RUN, RUN_TIMEOUT) == "success"
    print(f"second upload run succeeded {time.monotonic() - started:.0f} s into the test")
    summary = _xcom(deployment, UPSTREAM, SECOND_RUN, SUMMARY_TASK)
    assert len(summary) == len(SAMPLES), summary
    assert all(row["status"] == "skipped (already stored)" for row in summary), summary
    assert {row["read_set_id"] for row in summary} == active_ids, summary
    assert sorted(rs["id"] for rs in _read_sets(stack)) == sorted(active_ids)
    uploads = deployment.query(
        "SELECT COUNT(*) FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = ? AND state = 'success'",
        UPSTREAM,
        SECOND_RUN,
        f"{GROUP}.upload_parts",
    )
    assert uploads[0][0] == 0, uploads
    # An event of the second run would have been registered, and the downstream DAG queued, before that run
    # succeeded: no new event, nothing queued, no new downstream run.
    assert [e["id"] for e in _asset_events(stack)] == [e["id"] for e in events]
    assert _queued_downstream(deployment) == 0
    assert [run[:3] for run in _downstream_runs(deployment)] == [run[:3] for run in runs]
    assert _failed_sample_tasks(deployment, SECOND_RUN) == [(0, "success", "no sample failed")]

    # One good sample and one the service fails at activation: the run fails, the grid names the sample that
    # failed and where, and only the good one is announced.
    manifest = _stage_failing_run(tmp_path / "run-2")
    deployment.trigger(UPSTREAM, FAILING_RUN, {**conf, "manifest": str(manifest)})
    assert deployment.wait_run(UPSTREAM, FAILING_RUN, RUN_TIMEOUT) == "failed"
    print(f"the run with a failing sample failed {time.monotonic() - started:.0f} s into the test")
    assert _failed_sample_tasks(deployment, FAILING_RUN) == [(0, "failed", "S5 failed at wait_active")]
    new_events = [e for e in _asset_events(stack) if e["source_run_id"] == FAILING_RUN]
    assert len(new_events) == 1, new_events
    announced = event_read_sets(new_events[0]["extra"])
    assert [entry["sample_id"] for entry in announced] == ["S4"], announced
    _wait_for(deployment, f"the run of {DOWNSTREAM} on the third run's event", lambda: _downstream_settled(stack))
    (last_run, *_) = [run for run in _downstream_runs(deployment) if run[:3] not in [r[:3] for r in runs]]
    arrived = _xcom(deployment, DOWNSTREAM, last_run[1], "arrived_read_sets")
    assert [item["read_set_id"] for item in arrived] == [announced[0]["read_set_id"]], arrived
    print(f"done {time.monotonic() - started:.0f} s into the test")


def _failed_sample_tasks(deployment: AirflowDeployment, run_id: str) -> list[tuple[int, str, str]]:
    """The run's failed_sample tasks as the grid shows them: map index, state and name."""
    rows = deployment.query(
        "SELECT map_index, state, rendered_map_index FROM task_instance WHERE dag_id = ? AND run_id = ? "
        "AND task_id = ? ORDER BY map_index",
        UPSTREAM,
        run_id,
        FAILED_SAMPLE_TASK,
    )
    return [(int(row[0]), str(row[1]), str(row[2])) for row in rows]


def _stage_failing_run(root: Path) -> Path:
    """A manifest of a good FASTQ (S4) and a file named FASTQ that is not one (S5: the service fails its read set
    at activation)."""
    root.mkdir(parents=True, exist_ok=True)
    good = write_fastq(root / "S4_R1.fastq.gz", 200, compress=True, seed=41, prefix="S4r1")
    bad = root / "S5_R1.fastq"
    bad.write_bytes(b"this is not a FASTQ record\n" * 200)
    manifest = root / "manifest.csv"
    manifest.write_text(f"sample_id,subject_id,name,read1,read2\nS4,P4,S4-reads,{good},\nS5,P5,S5-reads,{bad},\n")
    return manifest
