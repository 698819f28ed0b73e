"""Sequencing runs end to end: one manifest, many read sets, one task budget (real Airflow ``dag.test()``, the
emulator over HTTP, moto's S3 server for the staged files and the manifest)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from airflow_provider_omics.assets.omics import event_read_sets
from airflow_provider_omics.readsets.run import (
    FIRST_LINE_CHARS,
    MAX_FAILURE_TASKS,
    failure_message,
    merge_digests,
    pack_run_digests,
    pack_run_parts,
    run_failures,
    summary_location,
    summary_table,
    summary_text,
    verify_samples,
)
from airflow_provider_omics.task_groups import (
    DEFAULT_DIGEST_TASKS,
    DIGEST_MAP_INDEX_TEMPLATE,
    FAILURE_MAP_INDEX_TEMPLATE,
    RUN_MAP_INDEX_TEMPLATE,
)
from airflow_provider_omics.testing import OmicsEmulator
from airflow_provider_omics.testing.samples import write_bam, write_fastq
from airflow_provider_omics.utils.parts import PartPlanError
from airflow_provider_omics.utils.payloads import ManifestRow, PlannedSource, RunSample
from tests.helpers import assert_no_upload_left, asset_events, console_words, stored_bytes, task_states, task_xcom

REFERENCE_ARN = "arn:aws:omics:us-east-1:123456789012:referenceStore/1234567890/reference/1234567890"
GROUP = "upload_sequencing_run"
BUDGET = 6
# plan, create, digest_batches, complete, wait_active, verify, summary, abort, failures, failed_sample (one when
# no sample fails), and the test DAG's pause.
FIXED_TASKS = 11
# How Airflow renders a map_index_template: a name that is not there is an error, not an empty string.
_LABELS = SandboxedEnvironment(undefined=StrictUndefined)
COLUMNS = ["sample_id", "subject_id", "name", "read1", "read2", "file_type", "reference_arn"]


def _run(dag_id: str, **conf: Any) -> Any:
    from tests.dags import upload_run

    return getattr(upload_run, dag_id).test(run_conf={**upload_run.PARAMS, **conf})


def _manifest_csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({column: row.get(column, "") for column in COLUMNS})
    return out.getvalue().encode()


def _stage_run(tmp_path: Path, s3_staging: Any) -> tuple[str, dict[str, dict[str, bytes]], dict[str, Path]]:
    """Twelve samples: single and paired FASTQ (gzipped and plain, local and on S3) and a BAM; the manifest on S3.

    Returns the manifest's URI, per sample the staged bytes of each source, and the local path of each sample's
    read 1 (when local).
    """
    rows: list[dict[str, str]] = []
    originals: dict[str, dict[str, bytes]] = {}
    local_read1: dict[str, Path] = {}
    for n in range(1, 13):
        sample = f"S{n}"
        on_s3 = n % 3 == 0
        paired = n % 2 == 0 and n != 12
        if n == 12:
            paths = [write_bam(tmp_path / f"{sample}.bam", 150, seed=n)]
        else:
            paths = [
                write_fastq(
                    tmp_path / f"{sample}_R{read}.fastq{'.gz' if n % 4 else ''}",
                    40 + 5 * n,
                    compress=bool(n % 4),
                    seed=100 * n + read,
                    prefix=f"{sample}r{read}",
                )
                for read in ((1, 2) if paired else (1,))
            ]
        uris = []
        for path in paths:
            if on_s3:
                key = f"run-7/{path.name}"
                s3_staging.client.upload_file(str(path), s3_staging.bucket, key)
                uris.append(f"s3://{s3_staging.bucket}/{key}")
            else:
                uris.append(str(path))
        if not on_s3:
            local_read1[sample] = Path(paths[0])
        originals[f"{sample}/{sample}-reads"] = {
            f"SOURCE{i}": Path(path).read_bytes() for i, path in enumerate(paths, start=1)
        }
        rows.append(
            {
                "sample_id": sample,
                "subject_id": f"subject-{n}",
                "name": f"{sample}-reads",
                "read1": uris[0],
                "read2": uris[1] if len(uris) > 1 else "",
                "file_type": "BAM" if n == 12 else "",
            }
        )
    s3_staging.client.put_object(Bucket=s3_staging.bucket, Key="run-7/manifest.csv", Body=_manifest_csv(rows))
    return f"s3://{s3_staging.bucket}/run-7/manifest.csv", originals, local_read1


def _read_sets(client: Any, store_id: str) -> list[dict[str, Any]]:
    return client.list_read_sets(sequenceStoreId=store_id)["readSets"]


def _summary(dag_run: Any) -> dict[str, dict[str, Any]]:
    rows = task_xcom(dag_run, f"{GROUP}.summary")
    return {row["sample"]: row for row in rows}


def _check_events(client: Any, store_id: str, dag_run: Any, read_set_ids: set[str]) -> None:
    """One event for the read sets the run verified, on the store's asset, naming each and its ETags."""
    events = asset_events(dag_run)
    if not read_set_ids:
        assert events == []
        return
    arn = client.get_sequence_store(id=store_id)["arn"]
    region, account = arn.split(":")[3:5]
    [(uri, extra)] = events
    assert uri == f"omics://{region}/{account}/sequence-store/{store_id}"
    assert extra["sequence_store_id"] == store_id
    assert sorted(entry["read_set_id"] for entry in event_read_sets(extra)) == sorted(read_set_ids)
    for entry in event_read_sets(extra):
        metadata = client.get_read_set_metadata(sequenceStoreId=store_id, id=entry["read_set_id"])
        assert metadata["status"] == "ACTIVE" and entry["read_set_arn"] == metadata["arn"]
        assert (entry["sample_id"], entry["name"], entry["file_type"]) == (
            metadata["sampleId"],
            metadata["name"],
            metadata["fileType"],
        )
        assert entry["etags"] == {k: v for k, v in metadata["etag"].items() if k.startswith("source")}
        assert entry["etag_verified"] is (metadata["fileType"] == "FASTQ")


def _check_stored(client: Any, store_id: str, read_set_id: str, sources: dict[str, bytes]) -> None:
    metadata = client.get_read_set_metadata(sequenceStoreId=store_id, id=read_set_id)
    assert metadata["status"] == "ACTIVE"
    for source, data in sources.items():
        assert metadata["files"][source.lower()]["contentLength"] == len(data)
        assert stored_bytes(client, store_id, read_set_id, source) == data
        if metadata["fileType"] == "FASTQ":
            plain = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
            assert metadata["etag"][source.lower()] == hashlib.md5(plain).hexdigest()


@pytest.mark.parametrize(
    ("manifest", "run_id", "expected"),
    [
        (
            "/data/run-7/SampleSheet.csv",
            "manual__2026-11-30T01:12:23+00:00",
            "/data/run-7/SampleSheet.summary.runs.manual__2026-11-30T01_12_23_00_00.csv",
        ),
        ("s3://bucket/runs/run-7/import.json", "r1", "s3://bucket/runs/run-7/import.summary.runs.r1.csv"),
        ("/data/.hidden", "r/../x", "/data/.hidden.summary.runs.r_.._x.csv"),
    ],
)
def test_the_summary_goes_next_to_the_manifest_named_after_the_run(manifest: str, run_id: str, expected: str) -> None:
    assert summary_location(manifest, run_id, dag_id="runs") == expected
    assert "/" not in summary_location(manifest, run_id, dag_id="a/../b").rpartition("/")[2]


def test_runs_of_parts_are_packed_into_the_budget_across_samples() -> None:
    def sample(key: str, *parts: int) -> RunSample:
        sources = {
            f"SOURCE{i}": PlannedSource(uri=key, location=key, size=n, parts=n, part_size=1, fingerprint={})
            for i, n in enumerate(parts, start=1)
        }
        row = ManifestRow(row=1, sample_id=key, subject_id=key, name=key, sources=[key], file_type="FASTQ")
        return RunSample(key=key, row=row, sources=sources)

    samples = [sample(f"S{n}", 3, 2) for n in range(96)] + [sample("big", 50)]
    batches = pack_run_parts(samples, 8)
    assert len(batches) <= 8
    covered = sorted(
        (seg["sample"], seg["part_source"], n)
        for batch in batches
        for seg in batch
        for n in range(seg["first_part"], seg["last_part"] + 1)
    )
    expected = sorted(
        (s.key, source, n) for s in samples for source, p in s.sources.items() for n in range(1, p["parts"] + 1)
    )
    assert covered == expected
    assert pack_run_parts([], 8) == []


def _sized_sample(key: str, *sizes: int, file_type: str = "FASTQ", status: str = "planned") -> RunSample:
    sources = {
        f"SOURCE{i}": PlannedSource(
            uri=f"{key}_{i}", location=f"{key}_{i}", size=n, parts=1, part_size=n, fingerprint={}
        )
        for i, n in enumerate(sizes, start=1)
    }
    row = ManifestRow(row=1, sample_id=key, subject_id=key, name=key, sources=list(sources), file_type=file_type)
    return RunSample(key=key, row=row, sources=sources, status=status)


def test_the_sources_to_digest_are_packed_whole_into_the_digest_budget_by_bytes() -> None:
    samples = [_sized_sample(f"S{n}", 10 + n, 10 + n) for n in range(20)] + [
        _sized_sample("huge", 400),
        _sized_sample("bam", 900, file_type="BAM"),
        _sized_sample("stored", 900, status="stored"),
        _sized_sample("failed", 900, status="failed"),
        _sized_sample("reused", 5, 5, status="completed"),
    ]
    batches = pack_run_digests(samples, 8)
    assert len(batches) == 8
    pairs = sorted(tuple(pair) for batch in batches for pair in batch)
    # Each FASTQ source to upload or to prove (reused) once; not the BAM's, nor a stored or failed sample's.
    expected = sorted(
        (s.key, source) for s in samples if s.key not in ("bam", "stored", "failed") for source in s.sources
    )
    assert pairs == expected
    sizes = {(s.key, source): p["size"] for s in samples for source, p in s.sources.items()}
    loads = sorted(sum(sizes[(key, source)] for key, source in batch) for batch in batches)
    # The largest source alone in its batch; the rest within one source's size of each other.
    assert [["huge", "SOURCE1"]] in batches
    assert loads[-2] - loads[0] <= 29, loads
    # Fewer sources than the budget: a task each. Nothing to digest: one empty batch, so that the step still runs.
    assert sorted(map(len, pack_run_digests(samples[:3], 8))) == [1] * 6
    assert pack_run_digests([_sized_sample("bam", 9, file_type="BAM")], 8) == [[]]
    assert pack_run_digests([], 4) == [[]]
    with pytest.raises(PartPlanError, match="max_digest_tasks=0"):
        pack_run_digests(samples, 0)


def test_the_digest_tasks_outputs_merge_and_a_source_without_a_digest_fails_its_sample_not_verified() -> None:
    def result(**sources: str) -> dict[str, Any]:
        return {
            "family": "MD5up",
            "file_type": "FASTQ",
            "skipped": None,
            "sources": {
                name: {"hexdigest": h, "compressed": False, "uncompressed_bytes": 1} for name, h in sources.items()
            },
        }

    outputs = [
        {"digests": {"P": result(SOURCE1="a"), "Q": result(SOURCE2="q2")}, "failed": {}},
        {"digests": {"P": result(SOURCE2="b")}, "failed": {"Q": "Q read 1 changed"}},
    ]
    merged = merge_digests(outputs)
    assert {k: sorted(v["sources"]) for k, v in merged["digests"].items()} == {
        "P": ["SOURCE1", "SOURCE2"],
        "Q": ["SOURCE2"],
    }
    assert merged["failed"] == {"Q": "Q read 1 changed"}
    assert merge_digests(outputs[0])["digests"]["P"]["sources"]["SOURCE1"]["hexdigest"] == "a"
    assert merge_digests(None) == {"digests": {}, "failed": {}}

    # A paired sample whose read 2 no digest task returned is failed at digest, before any service call.
    sample = _sized_sample("R", 4, 4, status="active")
    sample.read_set_id = "1234567890"
    log = logging.getLogger("test")
    verified = verify_samples(None, "1234567890", {"R": sample}, [{"digests": {"R": result(SOURCE1="x")}}], log)  # type: ignore[arg-type]
    assert verified == [] and sample.status == "failed", sample
    assert sample.failed_step == "digest" and "no digest was computed for SOURCE2" in sample.reason

    # A digest of another file than the plan pinned (left by a digest task of an earlier plan of the run) does not
    # stand in for the source's.
    sample = _sized_sample("R", 4, 4, status="active")
    sample.read_set_id = "1234567890"
    sample.sources["SOURCE2"]["fingerprint"] = {"size": 4, "mtime_ns": 2}
    stale = result(SOURCE1="x", SOURCE2="y")
    stale["sources"]["SOURCE2"]["fingerprint"] = {"size": 4, "mtime_ns": 1}
    assert sorted(merge_digests([{"digests": {"R": stale}}], {"R": sample})["digests"]["R"]["sources"]) == ["SOURCE1"]
    verify_samples(None, "1234567890", {"R": sample}, [{"digests": {"R": stale}}], log)  # type: ignore[arg-type]
    assert sample.failed_step == "digest" and "no digest was computed for SOURCE2" in sample.reason


def test_the_summary_says_what_happened_to_each_sample_in_words_with_a_totals_line() -> None:
    from airflow_provider_omics.utils.payloads import UploadRecord

    def sample(key: str, status: str, *, started: bool = True, uploaded: bool = True, **fields: Any) -> RunSample:
        s = _sized_sample(key, 1_000_000, status=status)
        s.started_at = "2026-12-04T10:00:00+00:00" if started else None
        record = UploadRecord(
            sequence_store_id="1234567890",
            client_token="t",
            name=key,
            sample_id=key,
            subject_id=key,
            source_file_type="FASTQ",
        )
        s.record = record if uploaded else None
        for name, value in fields.items():
            setattr(s, name, value)
        return s

    samples = {
        s.key: s
        for s in (
            sample("A", "verified", verified=True),
            sample("B", "verified", verified=True, uploaded=False),
            sample("C", "stored", started=False, uploaded=False, verified=True),
            sample("D", "stored", started=False, uploaded=False, reason="on_existing=skip: skipped"),
            sample("E", "verified", started=False, uploaded=False, verified=True),
            sample("F", "failed", failed_step="wait_active", reason="Read set 1 FAILED: bad gzip\nmore detail"),
        )
    }
    table = summary_table(samples)
    assert {row["sample"]: row["outcome"] for row in table} == {
        "A": "uploaded and verified",
        "B": "imported and verified",
        "C": "already stored, verified before",
        "D": "already stored, not verified",
        "E": "already stored, verified now",
        "F": "failed at wait_active: Read set 1 FAILED: bad gzip",
    }
    text = summary_text(table)
    assert text.splitlines()[0].split() == ["sample", "read", "set", "bytes", "seconds", "outcome"]
    assert text.splitlines()[-1] == (
        "1 uploaded and verified, 1 imported and verified, 3 already stored, 1 failed (of 6 samples, 6.0 MB staged)"
    )


def test_failed_samples_become_at_most_ten_tasks_named_by_sample_and_step_with_a_short_first_line() -> None:
    def label(failure: dict[str, Any] | None) -> str:
        return _LABELS.from_string(FAILURE_MAP_INDEX_TEMPLATE).render(task={"failure": failure})

    long_reason = "read set 1234567890 is UPLOAD_FAILED: " + "x" * 300 + "\nthe service's detail"
    samples = {f"S{n}/S{n}-reads": _sized_sample(f"S{n}/S{n}-reads", 10, status="verified") for n in range(1, 15)}
    assert run_failures(samples) == []
    assert label(None) == "no sample failed"
    samples["S2/S2-reads"].fail("wait_active", long_reason)
    (only,) = run_failures(samples)
    assert only == {"sample": "S2/S2-reads", "step": "wait_active", "reason": long_reason}
    assert label(only) == "S2 failed at wait_active"
    message = failure_message(only).splitlines()
    assert len(message[0]) <= FIRST_LINE_CHARS and message[0].startswith("S2/S2-reads failed at wait_active: read set")
    assert message[0].endswith("...") and "x" * 300 in message[1] and message[2] == "the service's detail"
    # More failed samples than tasks: the last task stands for the rest as well.
    for n in range(3, 15):
        samples[f"S{n}/S{n}-reads"].fail("verify", f"ETag of SOURCE1 differs ({n})")
    failures = run_failures(samples)
    assert len(failures) == MAX_FAILURE_TASKS
    assert [f["sample"] for f in failures] == [f"S{n}/S{n}-reads" for n in range(2, 2 + MAX_FAILURE_TASKS)]
    assert failures[-1]["more"] == [f"S{n}/S{n}-reads" for n in range(2 + MAX_FAILURE_TASKS, 15)]
    assert label(failures[-1]) == "S11 failed at verify (+3 samples)"
    assert "and 3 more failed sample(s)" in failure_message(failures[-1])
    assert all("more" not in f for f in failures[:-1])


def test_a_digest_task_of_a_run_is_named_by_its_largest_source_and_how_many_more_it_hashes() -> None:
    def label(*pairs: tuple[str, str]) -> str:
        return (
            SandboxedEnvironment(undefined=StrictUndefined)
            .from_string(DIGEST_MAP_INDEX_TEMPLATE)
            .render(task={"digest_sources": pairs})
        )

    assert label(("S5/run1-S5", "SOURCE2")) == "S5 read 2"
    assert label(("S5/a", "SOURCE1"), ("S6/b", "SOURCE2")) == "S5 read 1 (+1 source)"
    assert label(("S5/a", "SOURCE1"), ("S6/b", "SOURCE2"), ("S6/b", "SOURCE1")) == "S5 read 1 (+2 sources)"
    assert label() == "no FASTQ source to digest"


def test_a_part_task_of_a_run_is_named_by_its_first_range_and_what_else_it_carries() -> None:
    def label(*segments: tuple[str, str, int, int, int]) -> str:
        keys = ("sample", "part_source", "first_part", "last_part", "total_parts")
        task = {"segments": [dict(zip(keys, segment, strict=True)) for segment in segments]}
        return _LABELS.from_string(RUN_MAP_INDEX_TEMPLATE).render(task=task)

    assert label(("S5/run1-S5", "SOURCE1", 1, 3, 12)) == "S5 read 1 parts 1-3 of 12"
    assert label(("S5/run1-S5", "SOURCE2", 4, 4, 4)) == "S5 read 2 part 4 of 4"
    assert (
        label(("S7/n", "SOURCE1", 9, 12, 12), ("S7/n", "SOURCE2", 1, 2, 12)) == "S7 read 1 parts 9-12 of 12 (+ read 2)"
    )
    assert (
        label(
            ("S5/a", "SOURCE2", 3, 3, 3),
            ("S6/b", "SOURCE1", 1, 1, 1),
            ("S6/b", "SOURCE2", 1, 1, 1),
            ("S7/c", "SOURCE1", 1, 2, 2),
        )
        == "S5 read 2 part 3 of 3 (+2 samples)"
    )
    assert label(("S5/a", "SOURCE1", 1, 1, 1), ("S6/b", "SOURCE1", 1, 1, 1)) == "S5 read 1 part 1 of 1 (+1 sample)"


@pytest.mark.compat
def test_twelve_samples_from_a_manifest_on_s3_within_the_budget(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, store_id: str, s3_staging: Any, tmp_path: Path
) -> None:
    manifest, originals, _ = _stage_run(tmp_path, s3_staging)

    dag_run = _run(
        "omics_upload_run",
        sequence_store_id=store_id,
        manifest=manifest,
        default_reference_arn=REFERENCE_ARN,
        source_aws_conn_id="s3_staging",
        max_tasks=BUDGET,
        summary_csv=True,
    )

    states = task_states(dag_run)
    assert dag_run.state == "success", states
    assert 1 < len(states["upload_parts"]) <= BUDGET, states
    # The task count does not grow with the samples: the budget plus the run's fixed steps.
    instances = len(dag_run.get_task_instances())
    digests = len(states["digest"])
    assert 1 < digests <= DEFAULT_DIGEST_TASKS, states
    assert instances == len(states["upload_parts"]) + digests + FIXED_TASKS - 1
    assert instances <= BUDGET + DEFAULT_DIGEST_TASKS + FIXED_TASKS
    print(
        f"12 samples: {instances} task instances, {len(states['upload_parts'])} upload tasks (budget {BUDGET}), "
        f"{digests} digest tasks"
    )
    # Each digest task named by its largest source and how many more it hashes; together they hash each FASTQ
    # source of the run once, in batches of about equal bytes.
    digest_tis = [ti for ti in dag_run.get_task_instances() if ti.task_id == f"{GROUP}.digest"]
    for ti in digest_tis:
        assert re.fullmatch(r"S\d+ read [12]( \(\+\d+ sources?\))?", ti.rendered_map_index or ""), ti.rendered_map_index
    hashed = sorted(
        (key, part_source)
        for ti in digest_tis
        for key, result in ti.xcom_pull(task_ids=ti.task_id, map_indexes=ti.map_index)["digests"].items()
        for part_source in result["sources"]
    )
    fastq = sorted(
        (key, part_source) for key, sources in originals.items() if key != "S12/S12-reads" for part_source in sources
    )
    assert hashed == fastq, hashed
    # Each part task named in the UI by its first range and what else it carries.
    labels = [ti.rendered_map_index for ti in dag_run.get_task_instances() if ti.task_id == f"{GROUP}.upload_parts"]
    for label in labels:
        assert re.fullmatch(
            r"S\d+ read [12] (part \d+|parts \d+-\d+) of \d+( \(\+ read 2\)| \(\+\d+ samples?\))?", label
        ), labels
    client = emulator.client()
    summary = _summary(dag_run)
    assert set(summary) == set(originals)
    read_sets = _read_sets(client, store_id)
    assert len(read_sets) == 12
    for key, sources in originals.items():
        row = summary[key]
        assert row["status"] == "verified" and row["verified"], row
        assert row["bytes"] == sum(len(data) for data in sources.values())
        _check_stored(client, store_id, row["read_set_id"], sources)
    assert_no_upload_left(client, store_id)
    _check_events(client, store_id, dag_run, {row["read_set_id"] for row in summary.values()})
    # The table, as CSV next to the manifest on S3.
    safe_run = re.sub(r"[^A-Za-z0-9._-]+", "_", dag_run.run_id)
    key = f"run-7/manifest.summary.{dag_run.dag_id}.{safe_run}.csv"
    body = s3_staging.client.get_object(Bucket=s3_staging.bucket, Key=key)["Body"].read().decode()
    written = {row["sample"]: row for row in csv.DictReader(io.StringIO(body))}
    assert set(written) == set(summary)
    for key, row in written.items():
        assert (row["read_set_id"], row["status"], row["verified"], int(row["bytes"])) == (
            summary[key]["read_set_id"],
            "verified",
            "True",
            summary[key]["bytes"],
        )
        assert float(row["seconds"]) == summary[key]["seconds"] > 0


def test_checksums_too_many_for_xcom_are_read_back_from_the_service(
    airflow_db: Path,
    emulator: OmicsEmulator,
    omics_conn: str,
    store_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from airflow_provider_omics.readsets import upload

    # No checksum fits: every part task returns only which parts it uploaded.
    monkeypatch.setattr(upload, "RUN_CHECKSUMS_LIMIT", 0)
    rows, originals = [], {}
    for n in (1, 2, 3):
        reads = [write_fastq(tmp_path / f"S{n}_R{r}.fastq", 60, seed=10 * n + r) for r in (1, 2)[: n % 2 + 1]]
        originals[f"S{n}/S{n}"] = {f"SOURCE{i}": p.read_bytes() for i, p in enumerate(reads, start=1)}
        rows.append(
            {
                "sample_id": f"S{n}",
                "subject_id": "p",
                "name": f"S{n}",
                "read1": str(reads[0]),
                "read2": str(reads[1]) if len(reads) > 1 else "",
            }
        )
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes(_manifest_csv(rows))

    dag_run = _run(
        "omics_upload_run", sequence_store_id=store_id, manifest=str(manifest), max_tasks=2, summary_csv="true"
    )

    assert dag_run.state == "success", task_states(dag_run)
    [written] = tmp_path.glob("manifest.summary.*.csv")
    assert [row["status"] for row in csv.DictReader(io.StringIO(written.read_text()))] == ["verified"] * 3
    assert not list(tmp_path.glob(".*partial"))
    parts = [
        ti.xcom_pull(task_ids=ti.task_id, map_indexes=ti.map_index)
        for ti in dag_run.get_task_instances()
        if ti.task_id == f"{GROUP}.upload_parts"
    ]
    runs = [run for result in parts for sample_runs in result["parts"].values() for run in sample_runs]
    assert runs and all(run["checksums"] is None for run in runs), parts
    log = "".join(capfd.readouterr())
    assert "complete reads them back from the service" in log and "Parts missing from XCom, asking the service" in log
    client = emulator.client()
    summary = _summary(dag_run)
    for key, sources in originals.items():
        assert summary[key]["status"] == "verified", summary[key]
        _check_stored(client, store_id, summary[key]["read_set_id"], sources)
    assert_no_upload_left(client, store_id)


@pytest.mark.compat
def test_a_manifest_with_problems_fails_once_listing_every_row_and_creates_nothing(
    airflow_db: Path,
    emulator: OmicsEmulator,
    omics_conn: str,
    store_id: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    good = write_fastq(tmp_path / "good.fastq", 20, seed=1)
    bam = write_bam(tmp_path / "aligned.bam", 20)
    rows = [
        {"sample_id": "S1", "subject_id": "p1", "name": "S1", "read1": str(good)},
        {"sample_id": "S2", "subject_id": "p2", "name": "S2", "read1": str(tmp_path / "missing.fastq")},
        {"sample_id": "S3", "subject_id": "p3", "name": "S3", "read1": str(bam), "file_type": "BAM"},
        {"sample_id": "S4", "subject_id": "p4", "name": "S4", "read1": str(good)},
        {"sample_id": "S5", "subject_id": "p5", "name": "S5", "read1": str(tmp_path / "x.fastq"), "file_type": "SAM"},
    ]
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes(_manifest_csv(rows))

    dag_run = _run("omics_upload_run", sequence_store_id=store_id, manifest=str(manifest))

    states = task_states(dag_run)
    assert dag_run.state == "failed", states
    # One failure, in the plan; nothing after it fails too.
    failed = [ti.task_id for ti in dag_run.get_task_instances() if ti.state == "failed"]
    assert failed == [f"{GROUP}.plan"], states
    # dag.test() prints the task logs.
    log = "".join(capfd.readouterr())
    for row in (2, 3, 4, 5):
        assert f"row {row}" in log, log[-3000:]
    assert "missing.fastq" in log and "reference" in log and "SAM" in log
    client = emulator.client()
    assert _read_sets(client, store_id) == []
    assert_no_upload_left(client, store_id)


@pytest.mark.compat
def test_a_read_set_given_inline_is_a_run_of_one_sample(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, store_id: str, tmp_path: Path
) -> None:
    reads = [write_fastq(tmp_path / f"inline_R{r}.fastq.gz", 60, compress=True, seed=r) for r in (1, 2)]

    dag_run = _run(
        "omics_upload_run_inline",
        sequence_store_id=store_id,
        read1=str(reads[0]),
        read2=str(reads[1]),
        name="inline-reads",
        sample="S9",
    )

    states = task_states(dag_run)
    assert dag_run.state == "success", states
    summary = _summary(dag_run)
    assert list(summary) == ["S9/inline-reads"]
    row = summary["S9/inline-reads"]
    assert row["status"] == "verified" and row["verified"], row
    client = emulator.client()
    [read_set] = _read_sets(client, store_id)
    assert (read_set["id"], read_set["name"], read_set["sampleId"], read_set["subjectId"]) == (
        row["read_set_id"],
        "inline-reads",
        "S9",
        "subject-S9",
    )
    _check_stored(
        client, store_id, row["read_set_id"], {"SOURCE1": reads[0].read_bytes(), "SOURCE2": reads[1].read_bytes()}
    )
    # The inline manifest's tags are the read set's, beside the provider's own.
    arn = client.get_read_set_metadata(sequenceStoreId=store_id, id=read_set["id"])["arn"]
    assert client.list_tags_for_resource(resourceArn=arn)["tags"]["run"] == dag_run.run_id
    assert_no_upload_left(client, store_id)
    _check_events(client, store_id, dag_run, {row["read_set_id"]})


def test_a_read_set_given_inline_is_checked_as_a_manifest_row_before_anything_exists(
    airflow_db: Path,
    emulator: OmicsEmulator,
    omics_conn: str,
    store_id: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    dag_run = _run(
        "omics_upload_run_inline",
        sequence_store_id=store_id,
        read1=str(tmp_path / "missing_R1.fastq"),
        read2="",
        name="",
        sample="S9",
    )

    assert dag_run.state == "failed", task_states(dag_run)
    failed = [ti.task_id for ti in dag_run.get_task_instances() if ti.state == "failed"]
    assert failed == [f"{GROUP}.plan"]
    log = "".join(capfd.readouterr())
    assert "The manifest has 2 problems in 1 row; nothing was uploaded." in log, log[-3000:]
    assert "Manifest (inline) (JSON): fix it" in log, log[-3000:]
    assert "row 1 (sample " in log and "missing_R1.fastq" in log, log[-3000:]
    client = emulator.client()
    assert _read_sets(client, store_id) == []
    assert_no_upload_left(client, store_id)


@pytest.mark.compat
def test_failing_samples_fail_alone_and_a_second_run_uploads_only_them(
    airflow_db: Path,
    emulator: OmicsEmulator,
    omics_conn: str,
    store_id: str,
    s3_staging: Any,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from tests.dags import upload_run

    manifest, originals, local_read1 = _stage_run(tmp_path, s3_staging)
    removed, invalid = "S1/S1-reads", "S5/S5-reads"
    removed_path, invalid_path = local_read1["S1"], local_read1["S5"]
    # Not FASTQ: the service takes the parts and fails the read set at activation (UPLOAD_FAILED).
    good_s5 = invalid_path.read_bytes()
    invalid_path.write_bytes(b"this is not a FASTQ record\n" * 200)
    originals[invalid] = {"SOURCE1": invalid_path.read_bytes()}
    conf = {
        "sequence_store_id": store_id,
        "manifest": manifest,
        "default_reference_arn": REFERENCE_ARN,
        "source_aws_conn_id": "s3_staging",
        "max_tasks": BUDGET,
    }
    upload_run.INTERLUDES["after_create"] = lambda context: removed_path.unlink()
    try:
        dag_run = _run("omics_upload_run_interludes", **conf)
    finally:
        upload_run.INTERLUDES.clear()

    states = task_states(dag_run)
    assert dag_run.state == "failed", states
    summary = _summary_of_failed(dag_run)
    assert summary["failed"] == {removed, invalid}, summary
    log = console_words(capfd)
    assert "2 of 12 sample(s) failed" in log and removed in log and invalid in log
    reasons = {key: summary["samples"][key]["reason"] for key in (removed, invalid)}
    assert "UPLOAD_FAILED" in reasons[invalid] and "no longer exists" in reasons[removed], reasons
    # Each failed sample is a failed task in the grid, named by the sample and the step it failed at, failing with
    # its step and reason on the first line.
    assert states["failed_sample"] == ["failed", "failed"], states
    removed_step = summary["samples"][removed]["failed_step"]
    labels = _failure_labels(dag_run)
    assert sorted(labels) == sorted([f"S1 failed at {removed_step}", "S5 failed at wait_active"]), labels
    assert f"S1/S1-reads failed at {removed_step}: Staged source" in log, log[-3000:]
    assert "S5/S5-reads failed at wait_active: read set" in log, log[-3000:]
    # The long steps said where they stood, in samples, parts or sources and bytes, at least once at their end.
    assert re.search(r"create: 12 of 12 samples, ([0-9.]+) of \1 MB, \d+ s", log), log[-3000:]
    assert re.search(r"upload_parts: (\d+) of \1 parts, [0-9.]+ of [0-9.]+ MB(, 1 failed)?, \d+ s", log), log[-3000:]
    assert re.search(r"digest: (\d+) of \1 sources, ([0-9.]+) of \2 MB, (1 failed, )?\d+ s", log), log[-3000:]
    # The ten samples that reached ACTIVE (S1 was gone before its upload, S5 failed at activation) are verified.
    assert re.search(r"verify: 10 of 10 samples, \d+ s", log), log[-3000:]
    # Each step left the run so far where a user reads it before the summary: the task's XCom and its log.
    so_far = task_xcom(dag_run, f"{GROUP}.wait_active", key="run_so_far")
    assert (
        so_far["totals"] == "after wait_active: 0 verified, 0 already stored, 2 failed, 10 on their way (of 12 samples)"
    )
    assert so_far["samples"][invalid].startswith("failed at wait_active: read set"), so_far
    assert so_far["samples"][removed].startswith(f"failed at {removed_step}: Staged source"), so_far
    assert {so_far["samples"][key] for key in originals if key not in (removed, invalid)} == {"ACTIVE, to be verified"}
    so_far = task_xcom(dag_run, f"{GROUP}.verify", key="run_so_far")
    assert so_far["totals"] == "after verify: 10 verified, 0 already stored, 2 failed (of 12 samples)", so_far
    assert "Run so far, after complete: 0 verified, 0 already stored, " in log, log[-3000:]
    client = emulator.client()
    assert_no_upload_left(client, store_id)
    by_name = {rs["name"]: rs for rs in _read_sets(client, store_id)}
    for key, sources in originals.items():
        if key in (removed, invalid):
            continue
        _check_stored(client, store_id, by_name[key.split("/")[1]]["id"], sources)
    assert "S1-reads" not in by_name and by_name["S5-reads"]["status"] == "UPLOAD_FAILED"
    first_ids = {rs["id"] for rs in _read_sets(client, store_id)}
    # The verified read sets are announced, the failed samples are not.
    _check_events(client, store_id, dag_run, {rs["id"] for rs in by_name.values() if rs["status"] == "ACTIVE"})

    # Resume: the files are staged again (S1 restored, S5 corrected) and the same manifest is triggered again.
    write_fastq(removed_path, 45, compress=True, seed=101, prefix="S1r1")
    invalid_path.write_bytes(good_s5)
    dag_run = _run("omics_upload_run", **conf)

    states = task_states(dag_run)
    assert dag_run.state == "success", states
    assert states["failed_sample"] == ["success"] and _failure_labels(dag_run) == ["no sample failed"], states
    summary_rows = _summary(dag_run)
    new = {rs["id"] for rs in _read_sets(client, store_id)} - first_ids
    assert len(new) == 2
    for key, row in summary_rows.items():
        if key in (removed, invalid):
            assert row["status"] == "verified" and row["read_set_id"] in new, row
        else:
            assert row["status"] == "skipped (already stored)" and row["read_set_id"] in first_ids, row
    _check_stored(client, store_id, summary_rows[removed]["read_set_id"], {"SOURCE1": removed_path.read_bytes()})
    _check_stored(client, store_id, summary_rows[invalid]["read_set_id"], {"SOURCE1": good_s5})
    # Only the two new read sets are announced: the skipped samples were announced by the first run.
    _check_events(client, store_id, dag_run, new)
    # Exactly one ACTIVE read set per sample.
    active = [(rs["sampleId"], rs["name"]) for rs in _read_sets(client, store_id) if rs["status"] == "ACTIVE"]
    assert sorted(active) == sorted(set(active)) and len(active) == 12
    assert_no_upload_left(client, store_id)


def test_a_permanent_service_error_on_one_samples_part_fails_that_sample_alone(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, store_id: str, tmp_path: Path
) -> None:
    rows, originals = [], {}
    for n in (1, 2, 3):
        read = write_fastq(tmp_path / f"S{n}.fastq.gz", 80, compress=True, seed=n)
        originals[f"S{n}/S{n}"] = read.read_bytes()
        rows.append({"sample_id": f"S{n}", "subject_id": "p", "name": f"S{n}", "read1": str(read)})
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes(_manifest_csv(rows))
    # The run's first part request is refused for good: it belongs to whichever sample's batch ran first (each
    # sample has one part, so that sample alone is hit).
    emulator.inject("ValidationException", "UploadReadSetPart")

    dag_run = _run("omics_upload_run", sequence_store_id=store_id, manifest=str(manifest), max_tasks=2)

    states = task_states(dag_run)
    assert dag_run.state == "failed" and states["summary"] == ["failed"], states
    assert set(states["upload_parts"]) == {"success"}, states
    summary = _summary_of_failed(dag_run)
    assert len(summary["failed"]) == 1, summary
    (failed,) = summary["failed"]
    assert "ValidationException" in summary["samples"][failed]["reason"], summary["samples"][failed]
    client = emulator.client()
    by_name = {rs["name"]: rs for rs in _read_sets(client, store_id)}
    others = {key for key in originals if key != failed}
    assert set(by_name) == {key.split("/")[1] for key in others}
    for key in others:
        assert summary["samples"][key]["status"] == "verified"
        _check_stored(client, store_id, by_name[key.split("/")[1]]["id"], {"SOURCE1": originals[key]})
    assert_no_upload_left(client, store_id)


def test_uploads_are_aborted_by_their_tokens_when_creates_records_are_gone(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, store_id: str, tmp_path: Path
) -> None:
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    from tests.compat import xcom_model
    from tests.dags import upload_run

    XComModel = xcom_model()

    rows = []
    for n in (1, 2, 3):
        read = write_fastq(tmp_path / f"S{n}.fastq", 30, seed=n)
        rows.append({"sample_id": f"S{n}", "subject_id": "p", "name": f"S{n}", "read1": str(read)})
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes(_manifest_csv(rows))

    def forget_create(context: dict[str, Any]) -> None:
        # What a retry of create that died before it pushed anything leaves: no records, no output. The part
        # tasks then fail to resolve their input, and complete has nothing to complete.
        with create_session() as session:
            session.execute(
                delete(XComModel).where(
                    XComModel.dag_id == context["dag"].dag_id,
                    XComModel.run_id == context["run_id"],
                    XComModel.task_id == f"{GROUP}.create",
                )
            )

    client = emulator.client()
    upload_run.INTERLUDES["after_create"] = forget_create
    dag_run = _run("omics_upload_run_interludes", sequence_store_id=store_id, manifest=str(manifest))

    states = task_states(dag_run)
    assert dag_run.state == "failed" and states["abort"] == ["success"], states
    assert states["create"] == ["success"] and states["complete"] == ["failed"], states
    aborted = task_xcom(dag_run, f"{GROUP}.abort")
    assert sorted(aborted) == ["S1/S1", "S2/S2", "S3/S3"]
    assert_no_upload_left(client, store_id)
    assert _read_sets(client, store_id) == []


def _failure_labels(dag_run: Any) -> list[str]:
    """How the grid names the failed_sample tasks of ``dag_run``."""
    return [ti.rendered_map_index for ti in dag_run.get_task_instances() if ti.task_id == f"{GROUP}.failed_sample"]


def _summary_of_failed(dag_run: Any) -> dict[str, Any]:
    """What the run reported per sample although its summary failed: the samples of the last step."""
    verify = task_xcom(dag_run, f"{GROUP}.verify")
    return {"failed": {key for key, sample in verify.items() if sample["status"] == "failed"}, "samples": verify}


@pytest.fixture(autouse=True)
def _no_leftover_interludes() -> Any:
    from tests.dags import upload_run

    yield
    upload_run.INTERLUDES.clear()
