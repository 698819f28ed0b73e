"""Sequencing-run manifests: CSV and import-job JSON read alike, defaults, every problem of a run in one failure,
manifests and sources on S3, files that are no manifest, and a 384-sample run checked in well under a second."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_omics.staging.manifests import (
    INLINE_MANIFEST,
    MAX_LISTED_PROBLEMS,
    ManifestError,
    check_manifest_sources,
    inline_manifest,
    parse_manifest,
    read_manifest,
    validate_manifest,
)
from airflow_provider_omics.staging.sources import StagedSource, parse_source
from airflow_provider_omics.utils.errors import OmicsInputError
from airflow_provider_omics.utils.payloads import ManifestRow, PlannedSample

REFERENCE_ARN = "arn:aws:omics:us-east-1:123456789012:referenceStore/1234567890/reference/1234567890"
OTHER_REFERENCE_ARN = "arn:aws:omics:us-east-1:123456789012:referenceStore/1234567890/reference/9999999999"
FASTQ = b"@r\nACGT\n+\nIIII\n"


def local_sources(uri: str) -> StagedSource:
    return parse_source(uri)


def where(err: ManifestError) -> set[tuple[int | None, str | None]]:
    return {(problem.row, problem.column) for problem in err.problems}


@pytest.fixture
def staging(tmp_path: Path) -> Path:
    root = tmp_path / "staging"
    root.mkdir()
    for sample in ("S1", "S2", "S3", "S4"):
        (root / f"{sample}_R1.fastq").write_bytes(FASTQ * 10)
        (root / f"{sample}_R2.fastq").write_bytes(FASTQ * 10)
    (root / "S5.bam").write_bytes(b"\x1f\x8b" + b"\0" * 100)
    return root


def run_csv(root: Path) -> str:
    return (
        " Sample_ID , subject_id,NAME,read1,read2,file_type,reference_arn,generated_from,description\n"
        f"S1,P1,S1,{root}/S1_R1.fastq,{root}/S1_R2.fastq,FASTQ,,sequencer A,paired\n"
        f"S2,P1,S2,{root}/S2_R1.fastq,,fastq,,,\n"
        f'S5,P2,"S5, aligned",{root}/S5.bam,,BAM,{REFERENCE_ARN},,\n'
    )


def run_items(root: Path) -> list[dict[str, Any]]:
    return [
        {
            "sourceFiles": {"source1": f"{root}/S1_R1.fastq", "source2": f"{root}/S1_R2.fastq"},
            "sourceFileType": "FASTQ",
            "subjectId": "P1",
            "sampleId": "S1",
            "name": "S1",
            "generatedFrom": "sequencer A",
            "description": "paired",
        },
        {
            "sourceFiles": {"source1": f"{root}/S2_R1.fastq"},
            "sourceFileType": "FASTQ",
            "subjectId": "P1",
            "sampleId": "S2",
            "name": "S2",
        },
        {
            "sourceFiles": {"source1": f"{root}/S5.bam"},
            "sourceFileType": "BAM",
            "subjectId": "P2",
            "sampleId": "S5",
            "name": "S5, aligned",
            "referenceArn": REFERENCE_ARN,
        },
    ]


# -- the two formats -------------------------------------------------------------------------------------------


def test_csv_and_both_json_forms_of_one_run_give_equal_rows(staging: Path, tmp_path: Path) -> None:
    from_csv = parse_manifest(run_csv(staging), source_name="run.csv")
    bare = parse_manifest(json.dumps(run_items(staging)), source_name="run.json")
    # The request body of an import job, unchanged: its other members are accepted and not used.
    request = {
        "sequenceStoreId": "1234567890",
        "roleArn": "arn:aws:iam::123456789012:role/import",
        "sources": run_items(staging),
    }
    wrapped = parse_manifest(json.dumps(request, indent=2), source_name="import-request.txt")

    assert from_csv == bare == wrapped
    assert [row.row for row in from_csv] == [1, 2, 3]
    assert [row.line for row in from_csv] == [2, 3, 4]
    assert from_csv[0] == ManifestRow(
        row=1,
        sample_id="S1",
        subject_id="P1",
        name="S1",
        sources=[f"{staging}/S1_R1.fastq", f"{staging}/S1_R2.fastq"],
        file_type="FASTQ",
        generated_from="sequencer A",
        description="paired",
    )
    assert from_csv[1].sources == [f"{staging}/S2_R1.fastq"] and from_csv[1].file_type == "FASTQ"
    assert from_csv[2].name == "S5, aligned" and from_csv[2].reference_arn == REFERENCE_ARN

    (tmp_path / "run.csv").write_text(run_csv(staging), encoding="utf-8-sig")  # a spreadsheet's byte order mark
    (tmp_path / "run.json").write_text(json.dumps(request))
    csv_manifest = read_manifest(str(tmp_path / "run.csv"))
    json_manifest = read_manifest(f"file://{tmp_path}/run.json")
    assert (csv_manifest.format, json_manifest.format) == ("csv", "json")
    assert csv_manifest.rows == json_manifest.rows == from_csv
    assert csv_manifest.location == str((tmp_path / "run.csv").resolve())


def test_json_tags_are_kept_and_checked() -> None:
    item = {"sourceFiles": {"source1": "/data/a.fastq"}, "sampleId": "S", "subjectId": "P", "name": "S"}
    rows = parse_manifest(
        json.dumps([{**item, "tags": {"run": "42"}}]), source_name="m.json", default_file_type="FASTQ"
    )
    assert rows[0].tags == {"run": "42"}
    with pytest.raises(ManifestError) as caught:
        parse_manifest(
            json.dumps([{**item, "tags": {"aws:x": "1", "airflow-provider-omics:request": "t", "k": 5}}]),
            source_name="m.json",
            default_file_type="FASTQ",
        )
    text = str(caught.value)
    assert "'aws:x'" in text and "airflow-provider-omics:request" in text and "tag 'k'" in text


def test_rows_and_planned_samples_cross_xcom_as_json(staging: Path) -> None:
    rows = parse_manifest(run_csv(staging), source_name="run.csv")
    planned = check_manifest_sources(rows, source_factory=local_sources, part_size=64)
    again = [PlannedSample.from_dict(json.loads(json.dumps(sample.to_dict()))) for sample in planned]
    assert again == planned
    assert again[0].row.line == 2 and again[0].row.manifest_format == "csv"
    assert planned[0].sources["SOURCE2"]["parts"] == 3 and planned[0].sources["SOURCE2"]["size"] == 150
    assert set(planned[1].sources) == {"SOURCE1"}


# -- defaults --------------------------------------------------------------------------------------------------


def test_defaults_fill_empty_cells(staging: Path) -> None:
    text = (
        "sample_id,subject_id,name,read1,file_type,reference_arn\n"
        f"S1,P1,S1,{staging}/S1_R1.fastq,,\n"
        f"S5,P2,S5,{staging}/S5.bam,,\n"
        f"S6,P2,S6,{staging}/S6.cram,CRAM,{OTHER_REFERENCE_ARN}\n"
        f"S7,P2,S7,{staging}/S7.cram,CRAM,\n"
    )
    rows = parse_manifest(text, source_name="m.csv", default_file_type="bam", default_reference_arn=REFERENCE_ARN)
    assert [(row.file_type, row.reference_arn) for row in rows] == [
        ("BAM", REFERENCE_ARN),
        ("BAM", REFERENCE_ARN),
        ("CRAM", OTHER_REFERENCE_ARN),
        ("CRAM", REFERENCE_ARN),
    ]
    # Unaligned reads are not linked to the run's reference.
    fastq = parse_manifest(text, source_name="m.csv", default_file_type="FASTQ", default_reference_arn=REFERENCE_ARN)
    assert (fastq[0].file_type, fastq[0].reference_arn) == ("FASTQ", None)


def test_no_file_type_and_no_default_names_the_cell(staging: Path) -> None:
    text = f"sample_id,subject_id,name,read1\nS1,P1,S1,{staging}/S1_R1.fastq\n"
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, source_name="m.csv")
    assert where(caught.value) == {(1, "file_type")}
    with pytest.raises(ManifestError, match="default file type: source_file_type='FASTA'"):
        parse_manifest(text, source_name="m.csv", default_file_type="FASTA")


# -- every problem at once -------------------------------------------------------------------------------------


def test_every_problem_of_a_run_in_one_failure(staging: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "X_R1.fastq"
    outside.parent.mkdir()
    outside.write_bytes(FASTQ)
    long_name = "N" * 128
    manifest = staging / "run.csv"
    manifest.write_text(
        "sample_id,subject_id,name,read1,read2,file_type,reference_arn,lane\n"
        f"S1,P1,S1,{staging}/S1_R1.fastq,{staging}/S1_R2.fastq,FASTQ,,1\n"  # 1: fine
        f"S2,P1,S2,{staging}/S2_R1.fastq,,FASTA,,1\n"  # 2: bad file type
        f"S5,P2,S5,{staging}/S5.bam,,BAM,,1\n"  # 3: BAM without a reference
        f"S3,P2,S3,{staging}/S3_R1.fastq,{staging}/S3_R2.fastq,BAM,{REFERENCE_ARN},1\n"  # 4: read 2 for a BAM
        f"S4,P2,{long_name},{staging}/S4_R1.fastq,,FASTQ,,1\n"  # 5: name too long
        f"S1,P3,S1,{staging}/S4_R2.fastq,,FASTQ,,2\n"  # 6: name + sample of row 1
        f"S8,P3,S8,{staging}/S1_R1.fastq,,FASTQ,,2\n"  # 7: row 1's read 1
        f"S9,P3,S9,{staging}/missing_R1.fastq,,FASTQ,,2\n"  # 8: no such file
        f"S10,P3,S10,{outside},,FASTQ,,2\n"  # 9: outside the allowed roots
        f"S11,P3,S11,relative/S11.fastq,,FASTQ,,2\n"  # 10: not an absolute path
    )
    with pytest.raises(ManifestError) as caught:
        validate_manifest(str(manifest), source_factory=local_sources, allowed_local_roots=[str(staging)])
    err = caught.value
    assert isinstance(err, OmicsInputError)  # an AirflowFailException: Airflow does not retry it
    assert where(err) == {
        (None, "header"),
        (2, "file_type"),
        (3, "reference_arn"),
        (4, "read2"),
        (5, "name"),
        (6, "name"),
        (7, "read1"),
        (8, "read1"),
        (9, "read1"),
        (10, "read1"),
    }
    message = str(err)
    lines = message.splitlines()
    # The first line, what a log view shows of a failure, is short; the manifest and each problem follow, each
    # problem naming its row, line and sample.
    assert lines[0] == "The manifest has 10 problems in 9 rows; nothing was uploaded."
    assert len(lines[0]) < 100
    assert lines[1] == f"  Manifest {manifest} (CSV): fix it and trigger the run again."
    assert lines[2].startswith("  line 1, header: unknown column 'lane'")
    assert (
        "  row 2 (line 3, sample S2), file_type: source_file_type='FASTA' is not one of FASTQ, BAM, CRAM, UBAM."
        in lines
    )
    assert "  row 3 (line 4, sample S5), reference_arn: A BAM read set must be linked" in message
    assert "  row 4 (line 5, sample S3), read2: a BAM read set has one source" in message
    assert f"  row 5 (line 6, sample S4), name: name='{long_name}' must be text of 1 to 127 characters." in lines
    assert "  row 6 (line 7, sample S1), name: the same name and sample_id as row 1 ('S1', 'S1')" in message
    assert f"  row 7 (line 8, sample S8), read1: {staging}/S1_R1.fastq is also row 1's read1" in message
    assert f"  row 8 (line 9, sample S9), read1: Staged source {staging}/missing_R1.fastq does not exist" in message
    assert f"  row 9 (line 10, sample S10), read1: Staged source {outside} resolves to" in message
    assert "outside the allowed staging roots" in message
    assert "  row 10 (line 11, sample S11), read1: Staged source 'relative/S11.fastq' is a relative path" in message
    assert not any(line.startswith("  row 1 ") for line in lines)
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == message and again.problems == err.problems


def test_json_problems_name_the_keys(staging: Path) -> None:
    items = run_items(staging)
    items[0]["lane"] = 1
    items[1]["sourceFiles"] = {"source1": items[1]["sourceFiles"]["source1"], "source3": "/x"}
    items[2]["sourceFileType"] = "SAM"
    del items[2]["sampleId"]
    text = json.dumps({"sources": items, "extra": True})
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, source_name="m.json")
    assert where(caught.value) == {
        (None, "top level"),
        (1, "'lane'"),
        (2, "sourceFiles.source3"),
        (3, "sourceFileType"),
        (3, "sampleId"),
    }
    assert "row 3, sampleId: sample_id=None must be text" in str(caught.value)


def test_one_file_under_two_spellings_is_caught_on_the_opened_files(staging: Path) -> None:
    (staging / "S1_link.fastq").symlink_to(staging / "S1_R1.fastq")
    (staging / "S2_hard.fastq").hardlink_to(staging / "S2_R1.fastq")
    text = (
        "sample_id,subject_id,name,read1,read2,file_type\n"
        f"S1,P1,S1,{staging}/S1_R1.fastq,{staging}/S1_R2.fastq,FASTQ\n"
        f"S2,P1,S2,{staging}/S2_R1.fastq,{staging}/S2_hard.fastq,FASTQ\n"
        f"S3,P1,S3,{staging}/./S1_R1.fastq,,FASTQ\n"
        f"S4,P1,S4,{staging}/S1_link.fastq,,FASTQ\n"
        f"S5,P1,S5,file://{staging}/S3_R1.fastq,{staging}/S3_R1.fastq,FASTQ\n"
    )
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, source_name="m.csv")
    # As written, only the file:// spelling is the same string once parsed.
    assert where(caught.value) == {(5, "read2")}
    rows = parse_manifest(text.replace(f"file://{staging}/S3_R1.fastq", f"{staging}/S4_R1.fastq"), source_name="m.csv")
    with pytest.raises(ManifestError) as caught:
        check_manifest_sources(rows, source_factory=local_sources, manifest_name="m.csv")
    assert where(caught.value) == {(2, "read2"), (3, "read1"), (4, "read1")}
    assert "is the same file as this row's read1" in str(caught.value)
    assert f"is the same file as row 1's read1 ({staging}/S1_R1.fastq)" in str(caught.value)


def test_sources_beyond_the_part_limit_and_empty_ones(staging: Path) -> None:
    (staging / "big.fastq").write_bytes(b"@" * 10_001)
    (staging / "empty.fastq").write_bytes(b"")
    text = (
        "sample_id,subject_id,name,read1,file_type\n"
        f"S1,P1,S1,{staging}/big.fastq,FASTQ\n"
        f"S2,P1,S2,{staging}/empty.fastq,FASTQ\n"
        f"S3,P1,S3,{staging}/S3_R1.fastq,FASTQ\n"
    )
    rows = parse_manifest(text, source_name="m.csv")
    with pytest.raises(ManifestError) as caught:
        check_manifest_sources(rows, source_factory=local_sources, part_size=1)
    assert where(caught.value) == {(1, "read1"), (2, "read1")}
    assert "above the service's limit of 10000 parts per source" in str(caught.value)
    assert "is empty" in str(caught.value)
    with pytest.raises(OmicsInputError, match="part_size=0"):
        check_manifest_sources(rows, source_factory=local_sources, part_size=0)


def test_the_list_of_problems_is_capped(staging: Path) -> None:
    rows = "".join(f"S{i},P,S{i},{staging}/S1_R1.fastq,,BAM\n" for i in range(1, 121))
    with pytest.raises(ManifestError) as caught:
        parse_manifest("sample_id,subject_id,name,read1,read2,file_type\n" + rows, source_name="m.csv")
    # Every row lacks a reference; all but the first repeat row 1's file.
    assert len(caught.value.problems) == 120 + 119
    lines = str(caught.value).splitlines()
    assert len(lines) == 2 + MAX_LISTED_PROBLEMS + 1
    assert lines[-1] == f"  ... and {239 - MAX_LISTED_PROBLEMS} more"


# -- where a manifest comes from -------------------------------------------------------------------------------


def test_manifest_and_sources_on_s3(s3_staging: Any, staging: Path) -> None:
    s3, bucket = s3_staging.client, s3_staging.bucket
    for key in ("run/S1_R1.fastq.gz", "run/S1_R2.fastq.gz", "run/S2.bam"):
        s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(FASTQ * 100))
    items = [
        {
            "sourceFiles": {
                "source1": f"s3://{bucket}/run/S1_R1.fastq.gz",
                "source2": f"s3://{bucket}/run/S1_R2.fastq.gz",
            },
            "sourceFileType": "FASTQ",
            "subjectId": "P1",
            "sampleId": "S1",
            "name": "S1",
        },
        {"sourceFiles": {"source1": f"s3://{bucket}/run/S2.bam"}, "subjectId": "P1", "sampleId": "S2", "name": "S2"},
        {"sourceFiles": {"source1": f"{staging}/S3_R1.fastq"}, "subjectId": "P1", "sampleId": "S3", "name": "S3"},
    ]
    s3.put_object(Bucket=bucket, Key="run/manifest.json", Body=json.dumps({"sources": items}).encode())
    s3_client: Callable[[], Any] = lambda: s3  # noqa: E731

    manifest = read_manifest(
        f"s3://{bucket}/run/manifest.json",
        s3_client_factory=s3_client,
        allowed_s3_prefixes=[f"s3://{bucket}/run/"],
        default_file_type="BAM",
        default_reference_arn=REFERENCE_ARN,
    )
    assert manifest.format == "json" and manifest.location == f"s3://{bucket}/run/manifest.json"
    assert manifest.fingerprint["etag"]
    assert [(row.file_type, row.reference_arn) for row in manifest.rows] == [
        ("FASTQ", None),
        ("BAM", REFERENCE_ARN),
        ("BAM", REFERENCE_ARN),
    ]

    def sources(uri: str) -> StagedSource:
        return parse_source(uri, s3_client)

    planned = check_manifest_sources(manifest.rows, source_factory=sources, allowed_s3_prefixes=[f"s3://{bucket}/"])
    assert planned[0].sources["SOURCE2"]["location"] == f"s3://{bucket}/run/S1_R2.fastq.gz"
    assert planned[0].sources["SOURCE1"]["fingerprint"]["etag"]
    assert planned[2].sources["SOURCE1"]["location"] == str(staging / "S3_R1.fastq")

    # The same run with a source gone and one outside the allowed prefix: one failure for both.
    s3.delete_object(Bucket=bucket, Key="run/S2.bam")
    with pytest.raises(ManifestError) as caught:
        validate_manifest(
            f"s3://{bucket}/run/manifest.json",
            source_factory=sources,
            allowed_s3_prefixes=[f"s3://{bucket}/run/manifest", f"s3://{bucket}/run/S2"],
            default_file_type="BAM",
            default_reference_arn=REFERENCE_ARN,
        )
    assert where(caught.value) == {(1, "sourceFiles.source1"), (1, "sourceFiles.source2"), (2, "sourceFiles.source1")}
    assert f"row 2 (sample S2), sourceFiles.source1: Staged source s3://{bucket}/run/S2.bam does not exist" in str(
        caught.value
    )

    # A manifest is held to the allow-lists as any staged file is.
    with pytest.raises(ManifestError, match="outside the allowed S3 staging prefixes"):
        read_manifest(
            f"s3://{bucket}/run/manifest.json", s3_client_factory=s3_client, allowed_s3_prefixes=[f"s3://{bucket}/in/"]
        )
    with pytest.raises(ManifestError, match=r"cannot be read: Staged source .* does not exist \(no such object\)"):
        read_manifest(f"s3://{bucket}/run/nothing.csv", s3_client_factory=s3_client)


def test_a_local_manifest_obeys_the_allow_lists(staging: Path, tmp_path: Path) -> None:
    (tmp_path / "run.csv").write_text(run_csv(staging))
    with pytest.raises(ManifestError, match="outside the allowed staging roots"):
        read_manifest(str(tmp_path / "run.csv"), allowed_local_roots=[str(staging)])
    home = Path(os.environ["AIRFLOW_HOME"])
    (home / "run.csv").write_text(run_csv(staging))
    with pytest.raises(ManifestError, match="the Airflow home"):
        read_manifest(str(home / "run.csv"))
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifest(str(tmp_path / "nothing.csv"))
    with pytest.raises(ManifestError, match="is a relative path"):
        read_manifest("run.csv")


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "m.csv",
            gzip.compress(b"sample_id,name\n", mtime=0),
            "is gzip-compressed (a .fastq.gz or a BAM?), not a manifest",
        ),
        ("m.csv", b"CRAM\x03\x00" + b"\0" * 20, "is a CRAM file, not a manifest"),
        ("m.csv", b"PK\x03\x04rest", "is a ZIP file (an Excel workbook?), not a manifest: save the sheet as 'CSV"),
        ("m.csv", "sample_id,subject_id\n".encode("utf-16"), "is UTF-16 text, not a manifest: save it as UTF-8"),
        ("m.csv", b"sample_id\x00\x01\x02", "holds binary data, not a manifest"),
        ("m.csv", b"sample_id,name\n\xe9t\xe9\n", "is not UTF-8 text (byte 15, line 2)"),
        ("m.csv", b"", "is empty"),
        ("m.csv", b"  \n\n", "is empty"),
        ("m.csv", FASTQ * 3, "is a FASTQ file, not a manifest"),
        ("m.csv", b"S1,P1,S1,/data/S1.fastq\n", "has no header: line 1 ('S1,P1,S1,/data/S1.fastq') names none of"),
        ("m.tsv", b"sample_id\tsubject_id\tname\tread1\nS1\tP1\tS1\t/d/x\n", "separated by tabs"),
        ("m.csv", b"sample_id,subject_id,name,read1,file_type\n\n", "has a header but no rows"),
        ("m.json", b'[{"sampleId": "S1",]', "is not valid JSON: Expecting property name enclosed in double quotes"),
        ("m.json", b'{"sequenceStoreId": "1234567890"}', "is a JSON object without 'sources'"),
        ("m.json", b"[]", "lists no read sets"),
        ("m.json", b'"text"', "is JSON but not a list of read sets (it is a str)"),
    ],
)
def test_what_is_not_a_manifest_is_refused_clearly(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ManifestError) as caught:
        read_manifest(str(path))
    message = str(caught.value)
    assert message.startswith(f"Manifest {path}")
    assert expected in message
    assert len(message.splitlines()) == 1


def test_a_sequencing_file_given_as_the_manifest_is_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "S1_R1.fastq"
    path.write_bytes(FASTQ * 1000)
    with pytest.raises(ManifestError, match="is 15000 bytes, above the 4096-byte limit of a manifest"):
        read_manifest(str(path), max_bytes=4096)


# -- scale -----------------------------------------------------------------------------------------------------


def test_a_384_sample_run_parses_and_validates_quickly(tmp_path: Path) -> None:
    root = tmp_path / "run"
    root.mkdir()
    lines = ["sample_id,subject_id,name,read1,read2,file_type"]
    for i in range(384):
        for read in (1, 2):
            (root / f"S{i}_R{read}.fastq.gz").write_bytes(FASTQ)
        lines.append(f"S{i},P{i // 8},S{i},{root}/S{i}_R1.fastq.gz,{root}/S{i}_R2.fastq.gz,FASTQ")
    manifest = tmp_path / "run.csv"
    manifest.write_text("\n".join(lines) + "\n")
    opened: list[str] = []

    def sources(uri: str) -> StagedSource:
        opened.append(uri)
        return parse_source(uri)

    started = time.perf_counter()
    rows = read_manifest(str(manifest), allowed_local_roots=[str(tmp_path)]).rows
    parsed = time.perf_counter()
    planned = check_manifest_sources(rows, source_factory=sources, allowed_local_roots=[str(root)])
    checked = time.perf_counter()
    validate_manifest(str(manifest), source_factory=sources, allowed_local_roots=[str(tmp_path)])
    validated = time.perf_counter()

    print(
        f"\n384 rows: read + parse {parsed - started:.3f} s, sources {checked - parsed:.3f} s, "
        f"validate_manifest {validated - checked:.3f} s"
    )
    assert len(planned) == 384 and all(len(sample.sources) == 2 for sample in planned)
    # One look at each source and nothing else: no call per row to any service.
    assert len(opened) == 2 * 2 * 384 + 1  # and validate_manifest's look at the manifest
    assert parsed - started < 1.0
    # About 2 ms a source here, mostly the never-read-locations check (sources.refuse_denied), made 4 times each.
    assert checked - parsed < 10.0


def test_an_inline_manifest_is_one_json_row_checked_as_a_manifest_file_is(tmp_path: Path) -> None:
    read1, read2 = tmp_path / "S1_R1.fastq", tmp_path / "S1_R2.fastq"
    for path in (read1, read2):
        path.write_bytes(b"@r1\nACGT\n+\nIIII\n")
    rows = inline_manifest(
        sources=[str(read1), str(read2)],
        file_type="FASTQ",
        name="S1-reads",
        subject_id="P1",
        sample_id="S1",
        reference_arn="",
        description=None,
        tags={"lane": "1"},
    )
    # Empty optional values are left out, as an empty cell is.
    assert rows == [
        {
            "sourceFiles": {"source1": str(read1), "source2": str(read2)},
            "sourceFileType": "FASTQ",
            "subjectId": "P1",
            "sampleId": "S1",
            "name": "S1-reads",
            "tags": {"lane": "1"},
        }
    ]
    manifest, planned = validate_manifest(rows, source_factory=local_sources, allowed_local_roots=[str(tmp_path)])
    assert (manifest.uri, manifest.location, manifest.format) == (INLINE_MANIFEST, "", "json")
    assert manifest.fingerprint["sha256"]
    [sample] = planned
    assert (sample.row.sample_id, sample.row.sources, sample.row.tags) == (
        "S1",
        [str(read1), str(read2)],
        {"lane": "1"},
    )
    assert list(sample.sources) == ["SOURCE1", "SOURCE2"]

    # The same checks as a manifest file's, every problem together, named by row and key.
    bad = inline_manifest(
        sources=[str(tmp_path / "missing.fastq")], file_type="FASTA", name="x", subject_id="P1", sample_id=""
    )
    with pytest.raises(ManifestError) as caught:
        validate_manifest(bad, source_factory=local_sources, allowed_local_roots=[str(tmp_path)])
    assert str(caught.value).splitlines()[1].startswith(f"  Manifest {INLINE_MANIFEST} (JSON): ")
    assert {column for _, column in where(caught.value)} >= {"sourceFileType", "sampleId"}


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({"sampleId": "S1"}, "neither a manifest's path or URI nor a list of read sets"),
        ([{"sampleId": object()}], "is not JSON data"),
        ([], "lists no read sets"),
    ],
)
def test_an_inline_manifest_that_is_no_list_of_read_sets_is_refused(manifest: Any, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        validate_manifest(manifest, source_factory=local_sources)


def test_an_inline_manifest_of_more_than_two_files_is_refused_where_it_is_built() -> None:
    with pytest.raises(OmicsInputError, match="3 files given; a read set has one or two"):
        inline_manifest(sources=["/a", "/b", "/c"], file_type="FASTQ", name="n", subject_id="p", sample_id="s")
