"""Exactly one verified read set per sample across runs (real Airflow ``dag.test()``, the emulator over HTTP, moto's
S3): overlapping runs and deployments, re-triggers while read sets are PROCESSING_UPLOAD, restaged files and
``on_existing``, a read set that failed verify, clears after a partial failure (each read set announced once),
refused aborts then a re-plan, and the import path's overlapping runs."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_omics.assets.omics import event_read_sets
from airflow_provider_omics.readsets.announce import claim_announcements
from airflow_provider_omics.readsets.identity import (
    Resolution,
    StoredReadSet,
    check_on_existing,
    request_token,
    resolve_existing,
)
from airflow_provider_omics.testing.samples import write_bam, write_fastq
from airflow_provider_omics.utils.errors import OmicsInputError
from airflow_provider_omics.utils.payloads import RunSample, run_samples
from airflow_provider_omics.utils.tags import VERIFIED_TAG
from tests.helpers import (
    assert_no_upload_left,
    asset_events,
    clear_and_rerun,
    stored_bytes,
    task_xcom,
    use_omics_connection,
)

REPO = Path(__file__).resolve().parents[1]
GROUP = "upload_sequencing_run"
COLUMNS = ["sample_id", "subject_id", "name", "read1", "read2", "file_type", "reference_arn"]
REFERENCE_ARN = "arn:aws:omics:us-east-1:123456789012:referenceStore/1234567890/reference/1234567890"
ROLE_ARN = "arn:aws:iam::123456789012:role/omics-import"


def _run(dag_id: str, **conf: Any) -> Any:
    from tests.dags import upload_integrity

    return getattr(upload_integrity, dag_id).test(run_conf={**upload_integrity.PARAMS, **conf})


def _write_manifest(path: Path, rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({column: row.get(column, "") for column in COLUMNS})
    path.write_text(out.getvalue())
    return str(path)


def _stage(tmp_path: Path, paired: bool = True) -> tuple[str, dict[str, dict[str, Path]]]:
    """Two samples (S1 paired FASTQ, S2 plain FASTQ) and their local manifest; per sample key its source paths."""
    files: dict[str, dict[str, Path]] = {
        "S1/S1-reads": {
            f"SOURCE{read}": write_fastq(tmp_path / f"S1_R{read}.fastq", 30, seed=10 + read, prefix=f"s1r{read}")
            for read in ((1, 2) if paired else (1,))
        },
        "S2/S2-reads": {"SOURCE1": write_fastq(tmp_path / "S2.fastq", 25, seed=20, prefix="s2")},
    }
    rows = [
        {
            "sample_id": key.split("/")[0],
            "subject_id": f"subject-{key[1]}",
            "name": key.split("/")[1],
            "read1": str(sources["SOURCE1"]),
            "read2": str(sources.get("SOURCE2", "")),
        }
        for key, sources in files.items()
    ]
    return _write_manifest(tmp_path / "manifest.csv", rows), files


def _read_sets(client: Any, store_id: str) -> list[dict[str, Any]]:
    return [
        read_set
        for read_set in client.list_read_sets(sequenceStoreId=store_id)["readSets"]
        if read_set["status"] not in ("DELETING", "DELETED")
    ]


def _one_per_sample(client: Any, store_id: str, files: dict[str, dict[str, Path]]) -> dict[str, str]:
    """Exactly one read set per sample, holding the staged bytes; returns sample key -> read set id."""
    read_sets = _read_sets(client, store_id)
    by_sample: dict[str, list[str]] = {}
    for read_set in read_sets:
        by_sample.setdefault(f"{read_set['sampleId']}/{read_set['name']}", []).append(read_set["id"])
    assert sorted(by_sample) == sorted(files), by_sample
    assert all(len(ids) == 1 for ids in by_sample.values()), by_sample
    for key, sources in files.items():
        for source, path in sources.items():
            assert stored_bytes(client, store_id, by_sample[key][0], source) == path.read_bytes()
    return {key: ids[0] for key, ids in by_sample.items()}


def _announced(events: list[Any]) -> list[str]:
    """The read set ids named by the asset events, once per naming."""
    return [entry["read_set_id"] for _, extra in events for entry in event_read_sets(extra)]


def _summary(dag_run: Any) -> dict[str, dict[str, Any]]:
    ti = next(ti for ti in dag_run.get_task_instances() if ti.task_id == f"{GROUP}.summary")
    return {row["sample"]: row for row in ti.xcom_pull(task_ids=ti.task_id) or []}


def _failures(dag_run: Any) -> dict[str, Any]:
    """The samples of the run's last step, from the summary's log-free view: the verify or wait output."""
    for task in ("verify", "wait_active", "complete", "create"):
        ti = next(ti for ti in dag_run.get_task_instances() if ti.task_id == f"{GROUP}.{task}")
        value = ti.xcom_pull(task_ids=ti.task_id)
        if value:
            return {key: state for key, state in value.items() if state.get("status") == "failed"}
    return {}


def _plan_samples(dag_run: Any) -> dict[str, Any]:
    ti = next(ti for ti in dag_run.get_task_instances() if ti.task_id == f"{GROUP}.plan")
    return ti.xcom_pull(key="samples")


@pytest.fixture(scope="module")
def second_deployment(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path) -> dict[str, str]:
    """Another Airflow deployment (its own metadata database) on this machine, sharing the emulator's store."""
    home = tmp_path_factory.mktemp("second-airflow-home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "PYTHONPATH": str(REPO),
    }
    subprocess.run(
        [sys.executable, "-c", "from airflow.utils.db import resetdb; resetdb(skip_init=False)"],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    return env


_ELSEWHERE = """
import json, sys
from tests.dags import upload_integrity
from tests.helpers import asset_events
dag = getattr(upload_integrity, sys.argv[1])
run = dag.test(run_conf={**upload_integrity.PARAMS, **json.loads(sys.argv[2])})
print("RESULT " + json.dumps({"state": str(run.state), "events": asset_events(run)}))
"""


def _run_elsewhere(deployment: dict[str, str], dag_id: str, **conf: Any) -> dict[str, Any]:
    """Run a DAG to its end in the other deployment; returns its state and asset events."""
    connections = {key: value for key, value in os.environ.items() if key.startswith("AIRFLOW_CONN_")}
    done = subprocess.run(
        [sys.executable, "-c", _ELSEWHERE, dag_id, json.dumps(conf)],
        env={**deployment, **connections},
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    line = next((line for line in done.stdout.splitlines() if line.startswith("RESULT ")), None)
    assert line is not None, done.stdout[-3000:] + done.stderr[-3000:]
    return dict(json.loads(line.removeprefix("RESULT ")))


# -- the identity and the decision, without a DAG ----------------------------------------------------------


def _request(**changes: Any) -> dict[str, Any]:
    request = {
        "sequenceStoreId": "1234567890",
        "name": "n",
        "sampleId": "s",
        "subjectId": "p",
        "sourceFileType": "FASTQ",
        "referenceArn": None,
        "description": "a run",
        "tags": None,
    }
    return {**request, **changes}


def _sources(**fingerprint: Any) -> dict[str, Any]:
    return {"SOURCE1": {"uri": "/a", "location": "/a", "fingerprint": {"size": 10, "inode": 7, **fingerprint}}}


def test_the_request_token_is_the_content_never_the_run_nor_the_spelling() -> None:
    token = request_token(_request(), _sources())
    # Another spelling of the same file (the fingerprint is the same), another description: one request.
    assert request_token(_request(description="other"), {"SOURCE1": {**_sources()["SOURCE1"], "uri": "/x/../a"}}) == (
        token
    )
    # Another identity or other content: another request.
    assert request_token(_request(sampleId="t"), _sources()) != token
    assert request_token(_request(referenceArn=REFERENCE_ARN), _sources()) != token
    assert request_token(_request(), _sources(mtime_ns=5)) != token
    assert len(token) <= 127


def _stored(read_set_id: str, token: str | None, verified: str | None = None) -> StoredReadSet:
    return StoredReadSet(read_set_id, f"arn:x/{read_set_id}", "ACTIVE", token, verified)


@pytest.mark.parametrize(
    ("same", "other", "on_existing", "file_type", "expected"),
    [
        ([], [], "fail", "FASTQ", Resolution("upload")),
        ([_stored("1", "t", "yes")], [], "fail", "FASTQ", Resolution("stored", "1", verified=True)),
        ([_stored("1", "t")], [], "fail", "BAM", Resolution("reuse", "1")),
        ([], [_stored("2", "u")], "fail", "FASTQ", Resolution("reuse", "2", adopted=True)),
        ([], [_stored("2", "u")], "fail", "BAM", Resolution("fail")),
        ([], [_stored("2", None)], "skip", "BAM", Resolution("stored", "2", skip_verify=True)),
        ([], [_stored("2", "u")], "new", "BAM", Resolution("upload")),
        ([_stored("1", "t"), _stored("3", "t")], [], "new", "FASTQ", Resolution("fail")),
        ([], [_stored("2", "u"), _stored("4", "v")], "fail", "FASTQ", Resolution("fail")),
    ],
)
def test_what_a_request_does_about_the_read_sets_of_its_sample(
    same: list[StoredReadSet], other: list[StoredReadSet], on_existing: str, file_type: str, expected: Resolution
) -> None:
    got = resolve_existing(same, other, on_existing, file_type, "n (sample s)")
    assert (got.action, got.read_set_id, got.verified, got.adopted, got.skip_verify) == (
        expected.action,
        expected.read_set_id,
        expected.verified,
        expected.adopted,
        expected.skip_verify,
    )
    if got.action == "fail":
        # The message names the read sets and the ways out.
        assert all(read_set.id in got.reason for read_set in [*same, *other])
        assert "on_existing" in got.reason or "Keep one" in got.reason


def test_on_existing_is_checked() -> None:
    assert check_on_existing(" Skip ") == "skip"
    with pytest.raises(OmicsInputError, match="on_existing='merge' is not one of fail, skip, new"):
        check_on_existing("merge")


# -- overlapping runs -------------------------------------------------------------------------------------


def test_two_deployments_running_one_manifest_at_once_store_and_announce_each_sample_once(
    tmp_path: Path, emulator: Any, omics_conn: str, store_id: str, airflow_db: Path, second_deployment: dict[str, str]
) -> None:
    """The first run is held after create (its uploads exist, no part is sent) while another deployment runs the
    same manifest to its end; then the first carries on. One read set per sample, one event naming each."""
    from tests.dags import upload_integrity

    manifest, files = _stage(tmp_path)
    client = emulator.client()
    conf = {"sequence_store_id": store_id, "manifest": manifest}
    elsewhere: dict[str, Any] = {}

    def other_deployment_runs_it(context: dict[str, Any]) -> None:
        assert len(client.list_multipart_read_set_uploads(sequenceStoreId=store_id)["uploads"]) == 2
        elsewhere.update(_run_elsewhere(second_deployment, "omics_integrity_run", **conf))

    upload_integrity.INTERLUDES["after_create"] = other_deployment_runs_it
    try:
        first = _run("omics_integrity_run_interludes", **conf)
    finally:
        upload_integrity.INTERLUDES.clear()
    assert elsewhere["state"] == "success"
    assert first.state == "success", _failures(first)
    ids = _one_per_sample(client, store_id, files)
    # The other deployment completed the shared uploads and announced them; this run reports them, silently.
    assert sorted(_announced(elsewhere["events"])) == sorted(ids.values())
    assert asset_events(first) == []
    assert {row["read_set_id"] for row in _summary(first).values()} == set(ids.values())
    assert_no_upload_left(client, store_id)


def test_a_retrigger_while_the_read_sets_are_processing_upload_reuses_them(
    tmp_path: Path, emulator: Any, omics_conn: str, store_id: str, airflow_db: Path
) -> None:
    manifest, files = _stage(tmp_path)
    client = emulator.client()
    conf = {"sequence_store_id": store_id, "manifest": manifest}
    emulator.hold_activations()
    try:
        # The first run's wait gives up while its read sets are held in PROCESSING_UPLOAD: the store is as it is
        # while that run still waits.
        first = _run("omics_integrity_run", **conf, wait_attempts=1)
        assert first.state == "failed"
        assert {rs["status"] for rs in _read_sets(client, store_id)} == {"PROCESSING_UPLOAD"}
        emulator.hold_activations(release_after_reads=1)
        second = _run("omics_integrity_run", **conf)
    finally:
        emulator.release_activations()
    assert second.state == "success", _failures(second)
    ids = _one_per_sample(client, store_id, files)
    plan = _plan_samples(second)
    assert {key: (s["status"], s["read_set_id"]) for key, s in plan.items()} == {
        key: ("completed", read_set_id) for key, read_set_id in ids.items()
    }
    assert sorted(_announced(asset_events(second))) == sorted(ids.values())
    # The first run, cleared from its wait, verifies the same read sets and announces none again.
    first = clear_and_rerun_integrity(first, ["wait_active"])
    assert first.state == "success"
    assert asset_events(first) == []
    _one_per_sample(client, store_id, files)
    assert_no_upload_left(client, store_id)


def clear_and_rerun_integrity(dag_run: Any, tasks: list[str]) -> Any:
    """tests.helpers.clear_and_rerun for the DAGs of tests/dags/upload_integrity.py."""
    from tests.dags import upload_integrity, upload_omics

    previous = getattr(upload_omics, dag_run.dag_id, None)
    setattr(upload_omics, dag_run.dag_id, getattr(upload_integrity, dag_run.dag_id))
    try:
        return clear_and_rerun(dag_run, tasks, downstream=True)
    finally:
        if previous is None:
            delattr(upload_omics, dag_run.dag_id)
        else:
            setattr(upload_omics, dag_run.dag_id, previous)


# -- resume trusts content --------------------------------------------------------------------------------


def _restage_same_size(path: Path, seed: int) -> None:
    before = path.stat().st_size
    write_fastq(path, 30, seed=seed, prefix="s1r1")
    assert path.stat().st_size == before


def test_a_sample_restaged_with_other_bases_of_the_same_size_is_never_skipped(
    tmp_path: Path, emulator: Any, omics_conn: str, store_id: str, airflow_db: Path
) -> None:
    manifest, files = _stage(tmp_path)
    client = emulator.client()
    conf = {"sequence_store_id": store_id, "manifest": manifest}
    first = _run("omics_integrity_run", **conf)
    assert first.state == "success"
    ids = _one_per_sample(client, store_id, files)
    _restage_same_size(files["S1/S1-reads"]["SOURCE1"], seed=99)

    # on_existing=fail (the default): the stored read set is compared by its ETags and refused, named.
    refused = _run("omics_integrity_run", **conf)
    assert refused.state == "failed"
    failed = _failures(refused)
    assert list(failed) == ["S1/S1-reads"]
    assert failed["S1/S1-reads"]["failed_step"] == "verify"
    assert (
        f"Read set {ids['S1/S1-reads']} was already in the store for this sample with other content"
        in (failed["S1/S1-reads"]["reason"])
    )
    assert "ETag" in failed["S1/S1-reads"]["reason"] and "on_existing='new'" in failed["S1/S1-reads"]["reason"]
    assert _plan_samples(refused)["S2/S2-reads"]["status"] == "stored"
    assert asset_events(refused) == []
    assert len(_read_sets(client, store_id)) == 2

    # skip: kept as it is, reported unverified; nothing uploaded, nothing announced.
    kept = _run("omics_integrity_run", **conf, on_existing="skip")
    assert kept.state == "success"
    summary = _summary(kept)
    assert summary["S1/S1-reads"]["read_set_id"] == ids["S1/S1-reads"]
    assert summary["S1/S1-reads"]["verified"] is False and "on_existing=skip" in summary["S1/S1-reads"]["reason"]
    assert asset_events(kept) == [] and len(_read_sets(client, store_id)) == 2

    # new: the staged files become another read set, verified and announced.
    renewed = _run("omics_integrity_run", **conf, on_existing="new")
    assert renewed.state == "success", _failures(renewed)
    s1 = [rs for rs in _read_sets(client, store_id) if rs["sampleId"] == "S1"]
    assert len(s1) == 2
    new_id = next(rs["id"] for rs in s1 if rs["id"] != ids["S1/S1-reads"])
    assert stored_bytes(client, store_id, new_id, "SOURCE1") == files["S1/S1-reads"]["SOURCE1"].read_bytes()
    assert _announced(asset_events(renewed)) == [new_id]
    assert_no_upload_left(client, store_id)


def test_a_sample_staged_again_with_the_same_bytes_is_proven_by_its_etags_and_not_announced_again(
    tmp_path: Path, emulator: Any, omics_conn: str, store_id: str, airflow_db: Path
) -> None:
    manifest, files = _stage(tmp_path, paired=False)
    client = emulator.client()
    conf = {"sequence_store_id": store_id, "manifest": manifest}
    assert _run("omics_integrity_run", **conf).state == "success"
    ids = _one_per_sample(client, store_id, files)
    path = files["S1/S1-reads"]["SOURCE1"]
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data)  # a copy: another inode and times, so another fingerprint, the same content
    again = _run("omics_integrity_run", **conf)
    assert again.state == "success", _failures(again)
    assert _plan_samples(again)["S1/S1-reads"]["adopted"] is True
    assert _summary(again)["S1/S1-reads"]["verified"] is True
    assert _one_per_sample(client, store_id, files) == ids
    assert asset_events(again) == []


def test_a_bam_restaged_is_refused_at_plan_naming_the_stored_read_set(
    tmp_path: Path, emulator: Any, omics_conn: str, store_id: str, airflow_db: Path
) -> None:
    bam = write_bam(tmp_path / "S9.bam", 80, seed=9)
    row = {"sample_id": "S9", "subject_id": "p9", "name": "S9-aligned", "read1": str(bam), "file_type": "BAM"}
    manifest = _write_manifest(tmp_path / "bam.csv", [{**row, "reference_arn": REFERENCE_ARN}])
    client = emulator.client()
    conf = {"sequence_store_id": store_id, "manifest": manifest}
    assert _run("omics_integrity_run", **conf).state == "success"
    [stored] = _read_sets(client, store_id)
    write_bam(bam, 80, seed=10)  # other alignments
    refused = _run("omics_integrity_run", **conf)
    assert refused.state == "failed"
    plan = _plan_samples(refused)["S9/S9-aligned"]
    assert plan["status"] == "failed" and plan["failed_step"] == "plan"
    assert f"read set {stored['id']}" in plan["reason"] and "BAM ETags cannot be reproduced" in plan["reason"]
    assert "on_existing='skip'" in plan["reason"] and "on_existing='new'" in plan["reason"]
    assert client.list_multipart_read_set_uploads(sequenceStoreId=store_id)["uploads"] == []
    assert len(_read_sets(client, store_id)) == 1


def test_a_read_set_that_failed_verify_is_verified_again_never_skipped_as_stored(
    tmp_path: Path, emulator: Any, omics_conn: str, store_id: str, airflow_db: Path
) -> None:
    manifest, files = _stage(tmp_path, paired=False)
    client = emulator.client()
    conf = {"sequence_store_id": store_id, "manifest": manifest}
    assert _run("omics_integrity_run", **conf).state == "success"
    ids = _one_per_sample(client, store_id, files)
    # The store as a verify that failed leaves it: this request's read set (same token), never marked verified,
    # whose stored data is not the staged data (here: its ETag).
    read_set = emulator.model.read_sets[ids["S1/S1-reads"]]
    read_set.tags = {key: value for key, value in read_set.tags.items() if key != VERIFIED_TAG}
    read_set.etags = {**read_set.etags, "source1": "0" * 32}
    again = _run("omics_integrity_run", **conf)
    assert again.state == "failed"
    plan = _plan_samples(again)
    assert plan["S1/S1-reads"]["status"] == "completed" and plan["S2/S2-reads"]["status"] == "stored"
    failed = _failures(again)
    assert list(failed) == ["S1/S1-reads"] and failed["S1/S1-reads"]["failed_step"] == "verify"
    assert "does not match the staged data" in failed["S1/S1-reads"]["reason"]
    assert asset_events(again) == []
    assert VERIFIED_TAG not in client.list_tags_for_resource(resourceArn=read_set.arn(emulator.model.region))["tags"]


# -- each read set announced once -------------------------------------------------------------------------


def test_clearing_create_or_complete_after_a_partial_failure_announces_no_read_set_twice(
    tmp_path: Path, emulator: Any, omics_conn: str, store_id: str, airflow_db: Path
) -> None:
    manifest, files = _stage(tmp_path, paired=False)
    client = emulator.client()
    conf = {"sequence_store_id": store_id, "manifest": manifest}
    # One sample's part are refused for good by the service: S2 fails alone, S1 is verified and announced.
    emulator.inject("ValidationException", "UploadReadSetPart", count=1)
    run = _run("omics_integrity_run", **conf, max_tasks=1)
    assert run.state == "failed"
    verify = task_xcom(run, f"{GROUP}.verify")
    verified = [key for key, state in verify.items() if state["status"] == "verified"]
    failed = list(_failures(run))
    assert len(verified) == 1 and len(failed) == 1
    announced = _announced(asset_events(run))
    assert len(announced) == 1
    for task in ("create", "complete"):
        run = clear_and_rerun_integrity(run, [task])
        assert run.state == "success", (task, _failures(run))
        # Every read set of the run named once over all its tries, the one verified first among them.
        assert sorted(_announced(asset_events(run))) == sorted(set(_announced(asset_events(run))))
        assert announced[0] in _announced(asset_events(run))
    _one_per_sample(client, store_id, files)
    assert len(_announced(asset_events(run))) == 2
    assert_no_upload_left(client, store_id)


def test_a_verified_mark_whose_answer_was_lost_still_announces_once(
    emulator: Any, omics_conn: str, store_id: str, tmp_path: Path, airflow_db: Path
) -> None:
    """TagResource commits and its answer is lost: what the tags say afterwards decides; a read set marked before
    is left out."""
    from airflow_provider_omics.hooks.omics import OmicsHook

    manifest, _ = _stage(tmp_path, paired=False)
    assert _run("omics_integrity_run", sequence_store_id=store_id, manifest=manifest).state == "success"
    client = emulator.client()
    read_sets = _read_sets(client, store_id)
    for read_set in read_sets:
        emulator.model.read_sets[read_set["id"]].tags.pop(VERIFIED_TAG)
    hook = OmicsHook(aws_conn_id=omics_conn)
    results = [{"read_set_id": rs["id"], "metadata": {"arn": rs["arn"]}} for rs in read_sets]
    emulator.inject("drop_response", "TagResource", count=1)

    class Log:
        def info(self, *args: Any) -> None: ...

        def warning(self, *args: Any) -> None: ...

    claimed = claim_announcements(hook, results, Log())
    assert [r["read_set_id"] for r in claimed] == [rs["id"] for rs in read_sets]
    assert claim_announcements(hook, results, Log()) == []


# -- no upload left in progress ---------------------------------------------------------------------------


def test_refused_aborts_then_a_replan_after_a_restage_leave_no_upload_in_progress(
    tmp_path: Path, emulator: Any, omics_conn: str, store_id: str, airflow_db: Path
) -> None:
    manifest, files = _stage(tmp_path, paired=False)
    client = emulator.client()
    conf = {"sequence_store_id": store_id, "manifest": manifest}
    # The first try: one sample's part refused for good, and every abort refused (complete's and abort's).
    emulator.inject("ValidationException", "UploadReadSetPart", count=1)
    emulator.inject("AccessDeniedException", "AbortMultipartReadSetUpload", count=2)
    run = _run("omics_integrity_run", **conf, max_tasks=1)
    assert run.state == "failed"
    assert client.list_multipart_read_set_uploads(sequenceStoreId=store_id)["uploads"]
    # Staged again (the same bytes under new fingerprints: new tokens), then the run re-planned.
    for sources in files.values():
        for path in sources.values():
            data = path.read_bytes()
            path.unlink()
            path.write_bytes(data)
    run = clear_and_rerun_integrity(run, ["plan"])
    assert run.state == "success", _failures(run)
    _one_per_sample(client, store_id, files)
    assert_no_upload_left(client, store_id)


# -- the import path --------------------------------------------------------------------------------------


def _stage_s3(tmp_path: Path, s3_staging: Any) -> tuple[str, dict[str, dict[str, Path]]]:
    manifest, files = _stage(tmp_path)
    rows = list(csv.DictReader(io.StringIO(Path(manifest).read_text())))
    for row in rows:
        for column in ("read1", "read2"):
            if row[column]:
                key = f"runs/{Path(row[column]).name}"
                s3_staging.client.upload_file(row[column], s3_staging.bucket, key)
                row[column] = f"s3://{s3_staging.bucket}/{key}"
    body = io.StringIO()
    writer = csv.DictWriter(body, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows({column: row.get(column, "") for column in COLUMNS} for row in rows)
    s3_staging.client.put_object(Bucket=s3_staging.bucket, Key="runs/manifest.csv", Body=body.getvalue().encode())
    return f"s3://{s3_staging.bucket}/runs/manifest.csv", files


@pytest.fixture
def import_emulator(make_emulator: Callable[..., Any], s3_staging: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An emulator whose import jobs read moto's S3, the ``omics_test`` connection to it, and a store of it."""
    from types import SimpleNamespace

    emu = make_emulator(reads_s3=True)
    use_omics_connection(monkeypatch, emu.endpoint_url)
    client = emu.client()
    return SimpleNamespace(emulator=emu, client=client, store_id=client.create_sequence_store(name="imports")["id"])


def test_an_import_run_retriggered_while_the_first_runs_job_is_running_waits_for_that_job(
    tmp_path: Path, import_emulator: Any, s3_staging: Any, airflow_db: Path
) -> None:
    emulator, client, store_id = import_emulator.emulator, import_emulator.client, import_emulator.store_id
    manifest, files = _stage_s3(tmp_path, s3_staging)
    conf = {
        "sequence_store_id": store_id,
        "manifest": manifest,
        "role_arn": ROLE_ARN,
        "source_aws_conn_id": "s3_staging",
    }
    emulator.hold_import_jobs("SUBMITTED")
    try:
        # The first run's import gives up waiting while its job is held SUBMITTED: the job runs on.
        first = _run("omics_integrity_import", **conf, wait_attempts=1)
        assert first.state == "failed"
        [job] = client.list_read_set_import_jobs(sequenceStoreId=store_id)["importJobs"]
        assert job["status"] == "SUBMITTED"
        emulator.hold_import_jobs("SUBMITTED", release_after_reads=1)
        second = _run("omics_integrity_import", **conf)
    finally:
        emulator.release_import_jobs()
    assert second.state == "success", _failures(second)
    assert [j["id"] for j in client.list_read_set_import_jobs(sequenceStoreId=store_id)["importJobs"]] == [job["id"]]
    ids = _one_per_sample(client, store_id, files)
    assert sorted(_announced(asset_events(second))) == sorted(ids.values())
    first = clear_and_rerun_integrity(first, ["import"])
    assert first.state == "success", _failures(first)
    assert len(client.list_read_set_import_jobs(sequenceStoreId=store_id)["importJobs"]) == 1
    assert asset_events(first) == []
    _one_per_sample(client, store_id, files)


# -- one read set (upload_read_set): the same identity and on_existing ------------------------------------


def _single(store_id: str, sources: list[Path], **conf: Any) -> Any:
    return _run(
        "omics_integrity_single",
        sequence_store_id=store_id,
        read1=str(sources[0]),
        read2=str(sources[1]) if len(sources) > 1 else "",
        **conf,
    )


def _single_sample(dag_run: Any) -> RunSample:
    """The one sample as verify, the last per-sample step, left it (a failed summary returns no table)."""
    xcoms = {ti.task_id.rsplit(".", 1)[-1]: ti for ti in dag_run.get_task_instances()}
    plan = xcoms["plan"].xcom_pull(task_ids=xcoms["plan"].task_id, key="samples")
    [sample] = run_samples(xcoms["verify"].xcom_pull(task_ids=xcoms["verify"].task_id), plan).values()
    return sample


def _single_events(dag_run: Any) -> list[str]:
    return _announced(asset_events(dag_run))


def test_one_read_set_restaged_follows_on_existing_and_is_announced_once(
    tmp_path: Path, emulator: Any, omics_conn: str, store_id: str, airflow_db: Path
) -> None:
    client = emulator.client()
    reads = [write_fastq(tmp_path / f"one_R{n}.fastq", 20, seed=n, prefix=f"r{n}") for n in (1, 2)]
    first = _single(store_id, reads)
    assert first.state == "success"
    [stored] = _read_sets(client, store_id)
    assert _single_events(first) == [stored["id"]]
    # A run of another DAG run id with the same files: the same request, nothing uploaded, not announced again.
    again = _single(store_id, reads)
    assert again.state == "success"
    assert [rs["id"] for rs in _read_sets(client, store_id)] == [stored["id"]] and _single_events(again) == []

    before = reads[0].stat().st_size
    write_fastq(reads[0], 20, seed=77, prefix="r1")
    assert reads[0].stat().st_size == before
    refused = _single(store_id, reads)
    assert refused.state == "failed"
    states = {ti.task_id.rsplit(".", 1)[-1]: ti.state for ti in refused.get_task_instances()}
    # The sample fails in verify (as data: a run's other samples go on) and the summary fails the run naming it.
    assert states["summary"] == "failed" and states["create"] == "success", states
    sample = _single_sample(refused)
    assert (sample.status, sample.failed_step, sample.read_set_id) == ("failed", "verify", stored["id"])
    assert not sample.verified and "does not match the staged file's" in (sample.reason or "")
    assert len(_read_sets(client, store_id)) == 1 and _single_events(refused) == []

    kept = _single(store_id, reads, on_existing="skip")
    assert kept.state == "success"
    sample = _single_sample(kept)
    assert (sample.status, sample.read_set_id, sample.verified) == ("stored", stored["id"], False), sample
    assert "on_existing=skip: kept read set" in (sample.reason or ""), sample
    assert len(_read_sets(client, store_id)) == 1 and _single_events(kept) == []

    renewed = _single(store_id, reads, on_existing="new")
    assert renewed.state == "success"
    [new] = [rs for rs in _read_sets(client, store_id) if rs["id"] != stored["id"]]
    assert stored_bytes(client, store_id, new["id"], "SOURCE1") == reads[0].read_bytes()
    assert _single_events(renewed) == [new["id"]]
    assert_no_upload_left(client, store_id)


@pytest.mark.parametrize("spelling", ["//runs/{name}", "/runs/%53{rest}", "/runs/../runs/{name}", "/runs/./{name}"])
@pytest.mark.parametrize("dag_id", ["omics_integrity_import", "omics_integrity_run"])
def test_an_s3_key_spelled_so_that_s3_reads_another_object_is_refused_before_any_job_or_upload(
    tmp_path: Path,
    import_emulator: Any,
    s3_staging: Any,
    airflow_db: Path,
    spelling: str,
    dag_id: str,
) -> None:
    client, store_id = import_emulator.client, import_emulator.store_id
    manifest, _ = _stage_s3(tmp_path, s3_staging)
    body = s3_staging.client.get_object(Bucket=s3_staging.bucket, Key="runs/manifest.csv")["Body"].read().decode()
    plain = f"s3://{s3_staging.bucket}/runs/S2.fastq"
    respelled = f"s3://{s3_staging.bucket}" + spelling.format(name="S2.fastq", rest="2.fastq")
    s3_staging.client.put_object(
        Bucket=s3_staging.bucket, Key="runs/manifest.csv", Body=body.replace(plain, respelled).encode()
    )
    run = _run(
        dag_id,
        sequence_store_id=store_id,
        manifest=manifest,
        role_arn=ROLE_ARN,
        source_aws_conn_id="s3_staging",
    )
    assert run.state == "failed"
    plan = next(ti for ti in run.get_task_instances() if ti.task_id == f"{GROUP}.plan")
    assert plan.state == "failed"
    assert client.list_read_set_import_jobs(sequenceStoreId=store_id)["importJobs"] == []
    assert client.list_multipart_read_set_uploads(sequenceStoreId=store_id)["uploads"] == []
    assert _read_sets(client, store_id) == []


def test_the_same_files_spelled_another_way_are_the_same_requests(
    tmp_path: Path, emulator: Any, omics_conn: str, store_id: str, airflow_db: Path
) -> None:
    manifest, files = _stage(tmp_path)
    client = emulator.client()
    assert _run("omics_integrity_run", sequence_store_id=store_id, manifest=manifest).state == "success"
    ids = _one_per_sample(client, store_id, files)
    (tmp_path / "link").symlink_to(tmp_path, target_is_directory=True)
    rows = list(csv.DictReader(io.StringIO(Path(manifest).read_text())))
    spellings = [lambda p: f"file://{p}", lambda p: str(Path(p).parent / "link" / "." / Path(p).name)]
    for index, row in enumerate(rows):
        spell = spellings[index % 2]
        row.update({column: spell(row[column]) for column in ("read1", "read2") if row[column]})
    respelled = _write_manifest(tmp_path / "respelled.csv", rows)
    again = _run("omics_integrity_run", sequence_store_id=store_id, manifest=respelled)
    assert again.state == "success"
    assert {key: (s["status"], s["read_set_id"]) for key, s in _plan_samples(again).items()} == {
        key: ("stored", read_set_id) for key, read_set_id in ids.items()
    }
    assert asset_events(again) == []
    assert _one_per_sample(client, store_id, files) == ids


def test_an_import_run_retriggered_while_its_read_sets_are_processing_upload_starts_no_second_job(
    tmp_path: Path, import_emulator: Any, s3_staging: Any, airflow_db: Path
) -> None:
    emulator, client, store_id = import_emulator.emulator, import_emulator.client, import_emulator.store_id
    manifest, files = _stage_s3(tmp_path, s3_staging)
    conf = {
        "sequence_store_id": store_id,
        "manifest": manifest,
        "role_arn": ROLE_ARN,
        "source_aws_conn_id": "s3_staging",
    }
    emulator.hold_activations()
    try:
        first = _run("omics_integrity_import", **conf, wait_attempts=1)
        assert first.state == "failed"
        # The first run gave up on its job; the job goes on reading its sources meanwhile.
        (job,) = client.list_read_set_import_jobs(sequenceStoreId=store_id)["importJobs"]
        emulator.wait_for_import_job_read_sets(job["id"])
        assert {rs["status"] for rs in _read_sets(client, store_id)} == {"PROCESSING_UPLOAD"}
        emulator.hold_activations(release_after_reads=1)
        second = _run("omics_integrity_import", **conf)
    finally:
        emulator.release_activations()
    assert second.state == "success", _failures(second)
    assert len(client.list_read_set_import_jobs(sequenceStoreId=store_id)["importJobs"]) == 1
    ids = _one_per_sample(client, store_id, files)
    assert {key: s["status"] for key, s in _plan_samples(second).items()} == dict.fromkeys(ids, "completed")
    assert sorted(_announced(asset_events(second))) == sorted(ids.values())
