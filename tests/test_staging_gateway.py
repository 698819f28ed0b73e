"""What crosses the staging gateway in both directions, judged as it is read or written.

In: an S3 URI is checked as the very object S3 reads, so every spelling S3 would read as another key is refused
(``parse_source``), by a manifest row too, naming its row and column; what passes is handed on as its canonical URI.
Out: a run's summary CSV is written where it is judged, at write time: never through a symlink swapped in since the
plan, never outside the allow-lists or in a denied location, its formula-like cells escaped, one file per DAG and
run (real moto S3, and real Airflow ``dag.test()`` runs over the emulator).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from airflow_provider_omics.operators.sequencing_run import OmicsSequencingRunSummaryOperator
from airflow_provider_omics.readsets.run import FORMULA_STARTS, summary_csv, summary_location
from airflow_provider_omics.staging.manifests import ManifestError, validate_manifest
from airflow_provider_omics.staging.reports import write_report_beneath
from airflow_provider_omics.staging.sources import S3Source, SourceError, StagedSource, check_allowed, parse_source
from airflow_provider_omics.testing import OmicsEmulator
from airflow_provider_omics.testing.samples import write_fastq
from tests.helpers import task_states

FASTQ = b"@r\nACGT\n+\nIIII\n"
GROUP = "upload_sequencing_run"


def _s3_factory(s3_staging: Any) -> Any:
    def client() -> Any:
        return boto3.client("s3", endpoint_url=s3_staging.endpoint_url, region_name="us-east-1")

    return client


def _sources(s3_staging: Any) -> Any:
    factory = _s3_factory(s3_staging)

    def source(uri: str) -> StagedSource:
        return parse_source(uri, s3_client_factory=factory)

    return source


# -- S3 keys: checked as read --------------------------------------------------------------------------------

# Spelling (after s3://<bucket>/) -> what the message must say. Each one S3 reads as another key than the one a
# decoding, slash-stripping or path-resolving check would judge.
REFUSED_KEYS = {
    "a leading slash": ("/approved/r1.fastq", r"has an empty path segment \(a leading or doubled '/'\).*single"),
    "a doubled slash": ("approved//r1.fastq", r"has an empty path segment.*single slashes"),
    "a percent escape": ("%61pproved/r1.fastq", r"percent escape '%61'.*literal escape.*rename the object"),
    "an escaped slash": ("approved%2F..%2Fsecret.fastq", r"percent escape '%2F'"),
    "a '..' segment": ("approved/../secret.fastq", r"has a '\.' or '\.\.' segment.*without '\.' and '\.\.'"),
    "a '.' segment": ("approved/./r1.fastq", r"has a '\.' or '\.\.' segment"),
    "a trailing '..'": ("approved/..", r"has a '\.' or '\.\.' segment"),
    "a query": ("approved/r1.fastq?versionId=1", r"contains '\?'.*query or a fragment.*Rename the object"),
    "a fragment": ("approved/r1.fastq#x", r"contains '#'"),
    "a backslash": ("approved\\r1.fastq", r"contains a backslash.*Rename the object"),
    "a vertical tab": ("approved/r\x0b1.fastq", r"control character U\+000B.*Rename the object"),
    "a form feed": ("approved/r\x0c1.fastq", r"control character U\+000C"),
    "an escape character": ("approved/r\x1b1.fastq", r"control character U\+001B"),
    "a tab": ("approved/r\t1.fastq", r"contains a tab or a line break"),
    "a line break": ("approved/r\n1.fastq", r"contains a tab or a line break"),
}


@pytest.mark.parametrize("row", list(REFUSED_KEYS))
def test_an_s3_key_that_s3_reads_otherwise_is_refused_naming_the_uri(row: str, s3_staging: Any) -> None:
    key, expected = REFUSED_KEYS[row]
    uri = f"s3://{s3_staging.bucket}/{key}"
    with pytest.raises(SourceError, match=expected) as caught:
        parse_source(uri, s3_client_factory=_s3_factory(s3_staging))
    # The URI as written, quoted (its escapes shown), starts the message.
    assert str(caught.value).startswith(f"Staged source {repr(uri)[:50]}")


REFUSED_BUCKETS = {
    "user and port": "user@{bucket}:9000",
    "a port": "{bucket}:9000",
    "uppercase": "Staging-Bucket",
    "an underscore": "staging_bucket",
    "too short": "ab",
    "too long": "b" * 64,
    "a leading hyphen": "-staging",
    "a trailing dot": "staging.",
}


@pytest.mark.parametrize("row", list(REFUSED_BUCKETS))
def test_a_netloc_that_is_no_bucket_name_is_refused(row: str, s3_staging: Any) -> None:
    bucket = REFUSED_BUCKETS[row].format(bucket=s3_staging.bucket)
    uri = f"s3://{bucket}/approved/r1.fastq"
    with pytest.raises(SourceError, match=r"is not a valid S3 bucket name \(3 to 63 lowercase") as caught:
        parse_source(uri, s3_client_factory=_s3_factory(s3_staging))
    assert uri in str(caught.value)


def test_s3_reads_each_refused_spelling_as_an_object_of_its_own(s3_staging: Any) -> None:
    """Why they are refused: S3 (here moto's server, as AWS) decodes nothing and resolves nothing in a key."""
    s3, bucket = s3_staging.client, s3_staging.bucket
    s3.put_object(Bucket=bucket, Key="approved/r1.fastq", Body=b"approved")
    for key in ("/approved/r1.fastq", "%61pproved/r1.fastq", "approved/../r1.fastq", "approved//r1.fastq"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    assert s3.get_object(Bucket=bucket, Key="approved/r1.fastq")["Body"].read() == b"approved"


def test_what_passes_is_handed_on_and_judged_as_its_canonical_uri(s3_staging: Any) -> None:
    s3, bucket = s3_staging.client, s3_staging.bucket
    s3.put_object(Bucket=bucket, Key="approved/run 1/r1%.fastq", Body=FASTQ)
    prefixes = [f"s3://{bucket}/approved/"]
    for spelling in (f"s3://{bucket}/approved/run 1/r1%.fastq", f"  S3://{bucket}/approved/run 1/r1%.fastq "):
        source = parse_source(spelling, s3_client_factory=_s3_factory(s3_staging))
        assert isinstance(source, S3Source)
        # A space and a '%' that starts no escape are part of the key as S3 reads it.
        assert (source.bucket, source.key) == (bucket, "approved/run 1/r1%.fastq")
        assert source.location == f"s3://{bucket}/approved/run 1/r1%.fastq"
        check_allowed(source, [], prefixes)
        assert source.stat().size == len(FASTQ)
        with source.pin(source.stat()) as pinned:
            assert pinned.location == source.location


def test_check_allowed_judges_the_bucket_and_key_not_the_uri_as_written(s3_staging: Any) -> None:
    bucket = s3_staging.bucket
    factory = _s3_factory(s3_staging)
    # A source whose spelling and object disagree can only be built by hand: the allow-list judges the object.
    forged = S3Source(f"s3://{bucket}/approved/r1.fastq", bucket, "secret.fastq", factory)
    with pytest.raises(SourceError, match=r"outside the allowed S3 staging prefixes"):
        check_allowed(forged, [], [f"s3://{bucket}/approved/"])
    look_alike = parse_source(f"s3://{bucket}/approved2/r1.fastq", s3_client_factory=factory)
    with pytest.raises(SourceError, match=r"outside the allowed S3 staging prefixes"):
        check_allowed(look_alike, [], [f"s3://{bucket}/approved/"])


def test_a_manifest_row_with_such_a_uri_is_refused_with_its_row_and_column(s3_staging: Any, tmp_path: Path) -> None:
    s3, bucket = s3_staging.client, s3_staging.bucket
    for key in ("approved/S1.fastq", "approved/S4_R1.fastq", "secret.fastq", "approved/reads.fastq"):
        s3.put_object(Bucket=bucket, Key=key, Body=FASTQ * 10)
    good = f"s3://{bucket}/approved"
    manifest = tmp_path / "run.csv"
    manifest.write_text(
        "sample_id,subject_id,name,read1,read2,file_type\n"
        f"S1,P1,S1,{good}/S1.fastq,,FASTQ\n"
        f"S2,P1,S2,s3://{bucket}//approved/S2.fastq,,FASTQ\n"
        f"S3,P1,S3,s3://{bucket}/approved/../secret.fastq,,FASTQ\n"
        f"S4,P1,S4,{good}/S4_R1.fastq,s3://{bucket}/approved/%72eads.fastq,FASTQ\n"
        f"S5,P1,S5,s3://user@{bucket}:9000/approved/S5.fastq,,FASTQ\n"
    )
    with pytest.raises(ManifestError) as caught:
        validate_manifest(
            str(manifest), source_factory=_sources(s3_staging), allowed_s3_prefixes=[f"s3://{bucket}/approved/"]
        )
    problems = {(p.row, p.column): str(p) for p in caught.value.problems}
    assert set(problems) == {(2, "read1"), (3, "read1"), (4, "read2"), (5, "read1")}, problems
    assert problems[(2, "read1")].startswith(f"row 2 (line 3), read1: Staged source 's3://{bucket}//approved/")
    assert "empty path segment" in problems[(2, "read1")]
    assert "'.' or '..' segment" in problems[(3, "read1")]
    assert "percent escape '%72'" in problems[(4, "read2")] and "rename the object" in problems[(4, "read2")]
    assert "not a valid S3 bucket name" in problems[(5, "read1")]
    assert "4 problems in 4 rows; nothing was uploaded" in str(caught.value)


def test_a_json_manifest_names_the_key_of_the_refused_source(s3_staging: Any, tmp_path: Path) -> None:
    bucket = s3_staging.bucket
    s3_staging.client.put_object(Bucket=bucket, Key="approved/S1_R1.fastq", Body=FASTQ * 10)
    manifest = tmp_path / "import.json"
    source_files = {"source1": f"s3://{bucket}/approved/S1_R1.fastq", "source2": f"s3://{bucket}/approved/R2?x=1"}
    item = {"sourceFiles": source_files, "sourceFileType": "FASTQ", "subjectId": "P", "sampleId": "S1", "name": "S1"}
    manifest.write_text(json.dumps({"sources": [item]}))
    with pytest.raises(ManifestError) as caught:
        validate_manifest(str(manifest), source_factory=_sources(s3_staging))
    assert [(p.row, p.column) for p in caught.value.problems] == [(1, "sourceFiles.source2")]
    assert "contains '?'" in str(caught.value)


# -- the summary CSV: written where it is judged ---------------------------------------------------------------


def test_formula_cells_are_escaped_and_numbers_stay_numbers() -> None:
    table = [
        {"sample": f"{start}cmd|' /C calc'!A0", "read_set_id": None, "status": "failed", "verified": False}
        | {"bytes": -5, "seconds": -1.5, "reason": f"{start}HYPERLINK('http://x')\r\nline 2"}
        for start in FORMULA_STARTS
    ] + [{"sample": "S1/S1", "read_set_id": "1234567890", "status": "verified", "verified": True, "bytes": 10}]
    written = summary_csv(table).decode()
    # Every row on its own line: a carriage return or a line break inside a cell is quoted.
    assert written.count("\r\n") == len(table) + 1 + len(FORMULA_STARTS)
    rows = list(csv.DictReader(io.StringIO(written, newline="")))
    for start, row in zip(FORMULA_STARTS, rows, strict=False):
        assert row["sample"] == f"'{start}cmd|' /C calc'!A0"
        assert row["reason"] == f"'{start}HYPERLINK('http://x')\r\nline 2"
        assert (row["bytes"], row["seconds"], row["verified"], row["read_set_id"]) == ("-5", "-1.5", "False", "")
    assert rows[-1] == {
        "sample": "S1/S1",
        "read_set_id": "1234567890",
        "status": "verified",
        "outcome": "",
        "verified": "True",
        "bytes": "10",
        "seconds": "",
        "reason": "",
    }


def _summary_operator(manifest_location: str, **kwargs: Any) -> OmicsSequencingRunSummaryOperator:
    return OmicsSequencingRunSummaryOperator(
        task_id="summary", samples=[], manifest={"location": manifest_location}, **kwargs
    )


TABLE = [{"sample": "=1+1/S1", "read_set_id": "1234567890", "status": "verified", "verified": True, "bytes": 3}]


def test_two_dags_with_one_run_id_write_two_files(tmp_path: Path) -> None:
    manifest = tmp_path / "SampleSheet.csv"
    manifest.write_text("")
    run_id = "scheduled__2026-11-30T00:00:00+00:00"
    written = [_summary_operator(str(manifest)).write_table(TABLE, run_id, dag_id) for dag_id in ("runs_a", "runs.b")]
    assert written == [
        str(tmp_path / "SampleSheet.summary.runs_a.scheduled__2026-11-30T00_00_00_00_00.csv"),
        str(tmp_path / "SampleSheet.summary.runs.b.scheduled__2026-11-30T00_00_00_00_00.csv"),
    ]
    for path in written:
        assert path is not None
        [row] = csv.DictReader(io.StringIO(Path(path).read_text()))
        assert row["sample"] == "'=1+1/S1"
    assert summary_location("/d/m.csv", "r/../1", dag_id="../x y") == "/d/m.summary.x_y.r_.._1.csv"


def test_a_directory_swapped_for_a_symlink_is_refused_and_nothing_is_written_through_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    for linked in ("runs/run-7", "runs"):
        directory = tmp_path / "runs" / "run-7"
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / "m.summary.d.r.csv"
        write_report_beneath(str(target), b"first\n")
        assert target.read_bytes() == b"first\n"
        # The final directory, then a directory above it, swapped for a link since the plan.
        swapped = tmp_path / linked
        swapped.rename(tmp_path / f"{swapped.name}.moved")
        swapped.symlink_to(outside, target_is_directory=True)
        if linked == "runs":
            (outside / "run-7").mkdir()
        expected = f"directory {swapped} is now a symlink (to {outside})"
        with pytest.raises(SourceError, match=re.escape(expected)):
            write_report_beneath(str(target), b"second\n")
        assert [p.name for p in outside.rglob("*") if p.is_file()] == []
        swapped.unlink()
        (tmp_path / f"{swapped.name}.moved").rename(swapped)


def test_a_symlink_at_the_file_name_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"keep\n")
    (tmp_path / "runs").mkdir()
    target = tmp_path / "runs" / "m.summary.d.r.csv"
    target.symlink_to(victim)
    write_report_beneath(str(target), b"summary\n")
    assert not target.is_symlink() and target.read_bytes() == b"summary\n"
    assert victim.read_bytes() == b"keep\n"
    assert not list((tmp_path / "runs").glob(".*partial"))


def test_the_target_is_judged_by_the_allow_lists_and_the_denied_locations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    allowed, other = tmp_path / "allowed", tmp_path / "other"
    allowed.mkdir()
    other.mkdir()
    # The operator narrows [omics] allowed_local_roots; without its own value, the setting decides.
    monkeypatch.setenv("AIRFLOW__OMICS__ALLOWED_LOCAL_ROOTS", str(tmp_path))
    assert _summary_operator(f"{allowed}/m.csv", allowed_local_roots=str(allowed)).write_table(TABLE, "r", "d")
    assert _summary_operator(f"{other}/m.csv", allowed_local_roots=str(allowed)).write_table(TABLE, "r", "d") is None
    assert "is outside the allowed local roots" in capfd.readouterr().out and not list(other.iterdir())
    monkeypatch.setenv("AIRFLOW__OMICS__ALLOWED_LOCAL_ROOTS", str(allowed))
    assert _summary_operator(f"{other}/m.csv").write_table(TABLE, "r", "d") is None
    assert not list(other.iterdir())
    monkeypatch.delenv("AIRFLOW__OMICS__ALLOWED_LOCAL_ROOTS")
    # Never in the Airflow home, whatever the allow-lists; never a path that is not canonical.
    home = tmp_path / "airflow-home"
    home.mkdir()
    monkeypatch.setenv("AIRFLOW_HOME", str(home))
    with pytest.raises(SourceError, match=r"lies in the Airflow home"):
        write_report_beneath(f"{home}/dags/m.summary.d.r.csv", b"x")
    with pytest.raises(SourceError, match=r"is not a canonical absolute file path"):
        write_report_beneath(f"{allowed}/../other/m.summary.d.r.csv", b"x")
    assert not list(home.iterdir()) and not list(other.iterdir())


def test_an_s3_summary_goes_to_the_canonical_key_within_the_allowed_prefixes(
    s3_staging: Any, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    s3, bucket = s3_staging.client, s3_staging.bucket
    manifest = f"s3://{bucket}/runs/run-7/manifest.csv"
    written = _summary_operator(manifest, source_aws_conn_id="s3_staging").write_table(TABLE, "manual__1", "dag_a")
    assert written == f"s3://{bucket}/runs/run-7/manifest.summary.dag_a.manual__1.csv"
    body = s3.get_object(Bucket=bucket, Key="runs/run-7/manifest.summary.dag_a.manual__1.csv")["Body"].read()
    assert [row["sample"] for row in csv.DictReader(io.StringIO(body.decode()))] == ["'=1+1/S1"]

    def keys() -> list[str]:
        return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []))

    before = keys()
    # A location recorded as written by an older plan, in a spelling S3 reads as another key: refused.
    for spelling in (f"s3://{bucket}/runs//run-7/manifest.csv", f"s3://{bucket}/runs/%72un-7/manifest.csv"):
        assert _summary_operator(spelling, source_aws_conn_id="s3_staging").write_table(TABLE, "m", "d") is None
    log = capfd.readouterr().out
    assert "empty path segment" in log and "percent escape '%72'" in log
    # Outside the prefixes: the operator's own, then [omics] allowed_s3_prefixes.
    narrowed = _summary_operator(manifest, source_aws_conn_id="s3_staging", allowed_s3_prefixes=f"s3://{bucket}/in/")
    assert narrowed.write_table(TABLE, "m", "d") is None
    monkeypatch.setenv("AIRFLOW__OMICS__ALLOWED_S3_PREFIXES", f"s3://{bucket}/in/")
    assert _summary_operator(manifest, source_aws_conn_id="s3_staging").write_table(TABLE, "m", "d") is None
    assert (
        f"s3://{bucket}/runs/run-7/manifest.summary.d.m.csv is outside the allowed S3 prefixes"
        in capfd.readouterr().out
    )
    assert keys() == before


# -- the summary CSV through real runs -------------------------------------------------------------------------


def _run(dag_id: str, logical_date: datetime, **conf: Any) -> Any:
    from tests.compat import dag_test
    from tests.dags import upload_run

    dag = getattr(upload_run, dag_id)
    # A manual run's id is made of the date it runs after: the same date gives two DAGs the same run id.
    return dag_test(dag, {**upload_run.PARAMS, **conf}, logical_date)


def _stage(tmp_path: Path, sample_id: str = "S1", name: str = "S1") -> Path:
    """One FASTQ staged under ``staged/`` and a manifest naming it under ``manifests/``."""
    (tmp_path / "staged").mkdir()
    (tmp_path / "manifests").mkdir()
    reads = write_fastq(tmp_path / "staged" / "S1_R1.fastq", 30, seed=7)
    manifest = tmp_path / "manifests" / "SampleSheet.csv"
    manifest.write_text(f"sample_id,subject_id,name,read1\n{sample_id},P1,{name},{reads}\n")
    return manifest


def test_a_manifest_directory_swapped_for_a_symlink_after_the_plan_gets_no_summary_and_the_log_says_why(
    airflow_db: Path,
    emulator: OmicsEmulator,
    omics_conn: str,
    store_id: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from tests.dags import upload_run

    manifest = _stage(tmp_path)
    # Stands for the Airflow home or any directory the DAG's user must not write to.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def swap(context: dict[str, Any]) -> None:
        manifest.parent.rename(tmp_path / "manifests.moved")
        manifest.parent.symlink_to(elsewhere, target_is_directory=True)

    upload_run.INTERLUDES["after_create"] = swap
    try:
        dag_run = _run(
            "omics_upload_run_interludes",
            datetime.now(UTC),
            sequence_store_id=store_id,
            manifest=str(manifest),
            summary_csv=True,
        )
    finally:
        upload_run.INTERLUDES.clear()

    states = task_states(dag_run)
    # The CSV is a report: the run, whose read sets are stored, still succeeds.
    assert dag_run.state == "success", states
    assert states["summary"] == ["success"] and states["after_create"] == ["success"], states
    assert list(elsewhere.iterdir()) == []
    assert [p.name for p in (tmp_path / "manifests.moved").iterdir()] == ["SampleSheet.csv"]
    log = "".join(capfd.readouterr())
    assert "Could not write the summary CSV" in log
    assert f"directory {manifest.parent} is now a symlink (to {elsewhere})" in log


def test_two_dags_with_one_run_id_write_two_summaries_with_their_formula_cells_escaped(
    airflow_db: Path, emulator: OmicsEmulator, omics_conn: str, store_id: str, tmp_path: Path
) -> None:
    manifest = _stage(tmp_path, sample_id="=1+1", name="@SUM(A1)")
    # One logical date: the same run id in both DAGs, as the scheduled runs of one date have.
    logical_date = datetime.fromtimestamp(time.time() // 1, UTC)
    runs = [
        _run(dag_id, logical_date, sequence_store_id=store_id, manifest=str(manifest), summary_csv=True)
        for dag_id in ("omics_upload_run", "omics_upload_run_interludes")
    ]
    assert runs[0].run_id == runs[1].run_id
    assert [run.state for run in runs] == ["success", "success"], [task_states(run) for run in runs]
    written = sorted(p.name for p in manifest.parent.glob("SampleSheet.summary.*.csv"))
    safe_run = re.sub(r"[^A-Za-z0-9._-]+", "_", runs[0].run_id)
    assert written == [f"SampleSheet.summary.{dag_id}.{safe_run}.csv" for dag_id in sorted(r.dag_id for r in runs)]
    for name, status in zip(written, ("verified", "skipped (already stored)"), strict=True):
        [row] = csv.DictReader(io.StringIO((manifest.parent / name).read_text()))
        # The sample's key, =1+1/@SUM(A1), would be a formula: escaped, and the count of bytes still a number.
        assert (row["sample"], row["status"]) == ("'=1+1/@SUM(A1)", status), row
        assert int(row["bytes"]) == os.path.getsize(tmp_path / "staged" / "S1_R1.fastq")
