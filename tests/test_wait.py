"""Waiting for many read sets at once: the hook's look at many per call, its blocking wait, the trigger over many
read sets and the run's deferrable wait step, against the emulator over real HTTP (boto3 and aiobotocore).

Read sets are held in PROCESSING_UPLOAD with the emulator's activation gate, never raced against its delay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_omics.hooks.omics import CREATED_AFTER_MARGIN, READ_SET_STATES, OmicsHook, ReadSetsWait
from airflow_provider_omics.operators.sequencing_run import OmicsWaitRunReadSetsOperator
from airflow_provider_omics.testing import OmicsEmulator
from airflow_provider_omics.testing.samples import fastq_records
from airflow_provider_omics.triggers.omics import OmicsReadSetActiveTrigger
from airflow_provider_omics.utils.payloads import ManifestRow, RunSample, UploadRecord
from tests.helpers import new_read_set

GOOD = fastq_records(4)
BAD = b"this is not FASTQ\n"


class TaskInstance:
    """What the run's wait step asks of its task instance when called outside a DAG run: a place to push to."""

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


@pytest.fixture
def held(emulator: OmicsEmulator) -> Iterator[OmicsEmulator]:
    emulator.hold_activations()
    try:
        yield emulator
    finally:
        emulator.release_activations()


def calls(hook: OmicsHook) -> dict[str, int]:
    """Count the hook's client calls per operation (botocore's own event), from now on."""
    counted: dict[str, int] = {}

    def count(model: Any, **_: Any) -> None:
        counted[model.name] = counted.get(model.name, 0) + 1

    hook.conn.meta.events.register("before-call.omics", count)
    return counted


def released(emulator: OmicsEmulator) -> None:
    emulator.release_activations()
    emulator.model.wait_for_activations()


# -- the pure wait ------------------------------------------------------------------------------------------------


def test_the_wait_lists_from_the_earliest_known_time_and_learns_the_unknown_ones() -> None:
    early, late = "2026-01-02T03:04:05+00:00", "2026-01-02T04:00:00+00:00"
    wait = ReadSetsWait({"1": late, "2": early, "3": None})
    assert wait.created_after() == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) - CREATED_AFTER_MARGIN
    listed = wait.listed([{"id": "1", "status": "ACTIVE"}, {"id": "9", "status": "ACTIVE"}])
    assert listed == {"1": {"status": "ACTIVE", "statusMessage": None, "creationTime": None}}
    ended = wait.observe(
        {
            **listed,
            "2": {"status": "UPLOAD_FAILED", "statusMessage": "bad"},
            "3": {"status": "PROCESSING_UPLOAD", "creationTime": late},
        }
    )
    assert ended == {"1": listed["1"], "2": {"status": "UPLOAD_FAILED", "statusMessage": "bad"}}
    # Still on its way, and from now on found by the list: its creation time is known.
    assert wait.pending == {"3": late}
    assert wait.created_after() == datetime(2026, 1, 2, 4, tzinfo=UTC) - CREATED_AFTER_MARGIN


def test_a_status_the_waiter_does_not_name_is_waited_through_as_botocore_does() -> None:
    assert [READ_SET_STATES.outcome(s) for s in ("ACTIVE", "UPLOAD_FAILED", "ARCHIVED", "ACTIVATING")] == [
        "success",
        "failure",
        "failure",
        "retry",
    ]
    assert READ_SET_STATES.outcome("SOMETHING_NEW") == READ_SET_STATES.outcome(None) == "retry"
    wait = ReadSetsWait({"1": None})
    assert wait.observe({"1": {"status": "SOMETHING_NEW"}}) == {} and wait.pending == {"1": None}


# -- the hook -------------------------------------------------------------------------------------------------------


def test_one_round_over_many_read_sets_is_one_list_call(held: OmicsEmulator, store_id: str, omics_conn: str) -> None:
    made = dict(new_read_set(held, store_id, GOOD, f"s{i}") for i in range(6))
    hook = OmicsHook(aws_conn_id=omics_conn)
    counted = calls(hook)
    statuses = hook.read_set_statuses(store_id, ReadSetsWait(dict(made)))
    assert {rid: s["status"] for rid, s in statuses.items()} == dict.fromkeys(made, "PROCESSING_UPLOAD")
    assert counted == {"ListReadSets": 1}
    # Without a known creation time: one look by id each, which tells the time for the rounds after.
    counted.clear()
    unknown = ReadSetsWait(dict.fromkeys(made))
    hook.read_set_statuses(store_id, unknown)
    assert counted == {"GetReadSetMetadata": 6}
    assert unknown.observe(hook.read_set_statuses(store_id, unknown)) == {}
    assert all(unknown.pending.values())
    counted.clear()
    hook.read_set_statuses(store_id, unknown)
    assert counted == {"ListReadSets": 1}


def test_a_read_set_that_no_longer_exists_ends_the_wait_as_deleted(store_id: str, omics_conn: str) -> None:
    hook = OmicsHook(aws_conn_id=omics_conn)
    statuses = hook.read_set_statuses(store_id, ReadSetsWait({"9999999999": None}))
    assert statuses["9999999999"]["status"] == "DELETED"


def test_the_blocking_wait_ends_each_read_set_and_returns_those_still_on_their_way(
    held: OmicsEmulator, store_id: str, omics_conn: str
) -> None:
    good, good_time = new_read_set(held, store_id, GOOD, "good")
    bad, bad_time = new_read_set(held, store_id, BAD, "bad")
    hook = OmicsHook(aws_conn_id=omics_conn)
    ended: dict[str, Any] = {}
    pending = hook.wait_for_read_sets(
        store_id, {good: good_time, bad: bad_time}, delay=0, max_attempts=2, on_end=ended.__setitem__
    )
    assert pending == {good: good_time, bad: bad_time} and ended == {}
    released(held)
    pending = hook.wait_for_read_sets(
        store_id, {good: good_time, bad: bad_time}, delay=0, max_attempts=1, on_end=ended.__setitem__
    )
    assert pending == {}
    assert ended[good]["status"] == "ACTIVE"
    assert ended[bad]["status"] == "UPLOAD_FAILED" and ended[bad]["statusMessage"]


# -- the trigger ----------------------------------------------------------------------------------------------------


def first_event(trigger: OmicsReadSetActiveTrigger) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(run())


def test_the_trigger_waits_for_many_read_sets_and_round_trips(
    held: OmicsEmulator, store_id: str, omics_conn: str
) -> None:
    good, good_time = new_read_set(held, store_id, GOOD, "good")
    bad, _ = new_read_set(held, store_id, BAD, "bad")
    read_sets = {good: good_time, bad: None}
    trigger = OmicsReadSetActiveTrigger(
        sequence_store_id=store_id, read_sets=read_sets, waiter_delay=0, waiter_max_attempts=2, aws_conn_id=omics_conn
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_omics.triggers.omics.OmicsReadSetActiveTrigger"
    assert kwargs["read_sets"] == read_sets and "read_set_id" not in kwargs
    # Held: the attempts run out, naming the read sets still on their way.
    event = first_event(OmicsReadSetActiveTrigger(**kwargs))
    assert event["status"] == "error" and event["pending"] == sorted(read_sets)
    assert event["read_sets"] == {}
    released(held)
    event = first_event(OmicsReadSetActiveTrigger(**kwargs))
    assert event["status"] == "success"
    assert {rid: s["status"] for rid, s in event["read_sets"].items()} == {good: "ACTIVE", bad: "UPLOAD_FAILED"}


def test_the_trigger_takes_one_read_set_or_many_never_both() -> None:
    with pytest.raises(ValueError, match="not both"):
        OmicsReadSetActiveTrigger(sequence_store_id="1234567890", read_set_id="1", read_sets={"2": None})
    with pytest.raises(ValueError, match="not both"):
        OmicsReadSetActiveTrigger(sequence_store_id="1234567890")


# -- the run's wait step, deferred --------------------------------------------------------------------------------


def run_sample(key: str, read_set_id: str, upload_created: str | None) -> RunSample:
    row = ManifestRow(
        row=1, sample_id=key, subject_id="subject", name=key, sources=[f"/data/{key}.fq"], file_type="FASTQ"
    )
    record = UploadRecord(
        sequence_store_id="1234567890",
        client_token="t",
        name=key,
        sample_id=key,
        subject_id="subject",
        source_file_type="FASTQ",
        upload_created=upload_created,
    )
    return RunSample(key=key, row=row, sources={}, status="completed", record=record, read_set_id=read_set_id)


def test_the_run_wait_defers_on_the_read_sets_still_on_their_way_and_decides_when_resumed(
    held: OmicsEmulator, store_id: str, omics_conn: str
) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    good, good_time = new_read_set(held, store_id, GOOD, "good")
    bad, bad_time = new_read_set(held, store_id, BAD, "bad")
    samples = {"G": run_sample("G", good, good_time), "B": run_sample("B", bad, bad_time)}
    wait = OmicsWaitRunReadSetsOperator(
        task_id="wait_active",
        sequence_store_id=store_id,
        samples={key: s.to_dict() for key, s in samples.items()},
        waiter_delay=3,
        waiter_max_attempts=7,
        deferrable=True,
        aws_conn_id=omics_conn,
    )
    with pytest.raises(TaskDeferred) as deferred:
        wait.execute({})  # type: ignore[arg-type]
    trigger = deferred.value.trigger
    assert isinstance(trigger, OmicsReadSetActiveTrigger) and deferred.value.method_name == "execute_complete"
    assert trigger.read_sets == {good: good_time, bad: bad_time}
    assert (trigger.waiter_delay, trigger.attempts) == (3, 7)
    # Resumed while still held (the trigger gave up): retryable, naming them.
    with pytest.raises(AirflowException, match="still not ACTIVE"):
        wait.execute_complete({}, {"status": "error", "message": "gave up", "read_sets": {}, "pending": [good, bad]})  # type: ignore[arg-type]
    released(held)
    ti = TaskInstance()
    states = wait.execute_complete({"ti": ti}, {"status": "success", "read_sets": {}})  # type: ignore[arg-type]
    assert states["G"]["status"] == "active"
    assert states["B"]["status"] == "failed" and states["B"]["failed_step"] == "wait_active"
    # The run so far, as the resumed step left it for the user.
    so_far = ti.xcoms["run_so_far"]
    assert (
        so_far["totals"] == "after wait_active: 0 verified, 0 already stored, 1 failed, 1 on their way (of 2 samples)"
    )
    assert so_far["samples"]["G"] == "ACTIVE, to be verified", so_far
    assert so_far["samples"]["B"].startswith(f"failed at wait_active: read set {bad} is UPLOAD_FAILED"), so_far


def test_the_run_wait_does_not_defer_when_every_read_set_has_ended(
    emulator: OmicsEmulator, store_id: str, omics_conn: str
) -> None:
    read_set_id, created = new_read_set(emulator, store_id, GOOD, "done")
    emulator.model.wait_for_activations()
    wait = OmicsWaitRunReadSetsOperator(
        task_id="wait_active",
        sequence_store_id=store_id,
        samples={"D": run_sample("D", read_set_id, created).to_dict()},
        deferrable=True,
        aws_conn_id=omics_conn,
    )
    assert wait.execute({"ti": TaskInstance()})["D"]["status"] == "active"  # type: ignore[arg-type]


def test_the_list_looks_far_enough_back_for_clocks_that_disagree() -> None:
    now = datetime.now(UTC)
    wait = ReadSetsWait({"1": now.isoformat()})
    after = wait.created_after()
    assert after is not None and now - after == CREATED_AFTER_MARGIN >= timedelta(minutes=1)


# -- a run, its wait in the triggerer -------------------------------------------------------------------------------


@pytest.mark.compat
def test_a_deferrable_runs_wait_resumes_from_the_trigger_and_a_run_after_it_completes(
    airflow_db: Any,
    held: OmicsEmulator,
    store_id: str,
    omics_conn: str,
    tmp_path: Any,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from tests.dags import upload_run
    from tests.helpers import console_words

    lines = ["sample_id,subject_id,name,read1"]
    for name in ("W1", "W2"):
        (tmp_path / f"{name}.fq").write_bytes(fastq_records(8, prefix=name))
        lines.append(f"{name},p,{name},{tmp_path / name}.fq")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    conf = {**upload_run.PARAMS, "sequence_store_id": store_id, "manifest": str(manifest)}

    # Held in PROCESSING_UPLOAD: wait_active looks once, defers, the trigger gives up after its two rounds and the
    # resumed task (execute_complete, the only place that says so) fails retryably, naming the read sets.
    first = upload_run.omics_upload_run_deferrable.test(run_conf=conf)
    log = console_words(capfd)
    states = {ti.task_id.rsplit(".", 1)[-1]: ti.state for ti in first.get_task_instances()}
    assert first.state == "failed" and states["wait_active"] == "failed", states
    client = held.client()
    ids = sorted(rs["id"] for rs in client.list_read_sets(sequenceStoreId=store_id)["readSets"])
    assert len(ids) == 2
    assert f"Read sets still not ACTIVE: {', '.join(ids)} (2 read set(s) still not ACTIVE after 2 s" in log, log[-3000:]

    released(held)
    second = upload_run.omics_upload_run_deferrable.test(run_conf=conf)
    assert second.state == "success"
    # The same two read sets, reused and verified: nothing stored twice.
    assert sorted(rs["id"] for rs in client.list_read_sets(sequenceStoreId=store_id)["readSets"]) == ids


def test_the_run_wait_logs_its_progress_in_samples_each_round(
    held: OmicsEmulator, store_id: str, omics_conn: str
) -> None:
    import logging

    from airflow_provider_omics.readsets.run import wait_until_active

    good, good_time = new_read_set(held, store_id, GOOD, "good")
    bad, bad_time = new_read_set(held, store_id, BAD, "bad")
    samples = {"good/good": run_sample("good/good", good, good_time), "bad/bad": run_sample("bad/bad", bad, bad_time)}
    samples["stored/x"] = run_sample("stored/x", "1111111111", None)
    samples["stored/x"].status = "stored"
    lines: list[str] = []

    class Lines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    log = logging.getLogger("test_wait.progress")
    log.addHandler(Lines())
    log.setLevel(logging.INFO)
    hook = OmicsHook(aws_conn_id=omics_conn)
    # Held: each round says where the wait stands (the stored sample is not waited for).
    wait_until_active(hook, store_id, samples, 0, 2, omics_conn, log, fail_pending=False)
    progress = [line for line in lines if line.startswith("wait_active: ")]
    assert progress == ["wait_active: 0 of 2 ACTIVE, 0 failed, 2 processing"] * 3, lines
    released(held)
    lines.clear()
    wait_until_active(hook, store_id, samples, 0, 2, omics_conn, log)
    assert [line for line in lines if line.startswith("wait_active: ")] == [
        "wait_active: 1 of 2 ACTIVE, 1 failed, 0 processing"
    ], lines
