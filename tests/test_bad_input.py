"""Bad input is refused once and clearly, before anything exists on the service, and never retried: JSON nested too
deep, manifests of too many rows, text the service's pattern refuses, malformed reference and role ARNs, tags that
are not text, and rows whose run keys collide."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_omics.readsets.imports import ROLE_ARN_PARTITIONS, check_role_arn
from airflow_provider_omics.staging import manifests as manifest
from airflow_provider_omics.staging.manifests import (
    MAX_MANIFEST_DEPTH,
    MAX_MANIFEST_ROWS,
    ManifestError,
    json_depth,
    parse_manifest,
    read_manifest,
)
from airflow_provider_omics.utils.errors import OmicsInputError
from airflow_provider_omics.utils.inputs import check_reference, check_text
from airflow_provider_omics.utils.payloads import ManifestRow, sample_key

REFERENCE_ARN = "arn:aws:omics:us-east-1:123456789012:referenceStore/1234567890/reference/1234567890"
ROLE = "arn:aws:iam::123456789012:role/omics-import"
HEADER = "sample_id,subject_id,name,read1,file_type\n"


def item(sample: str = "S1", name: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "sourceFiles": {"source1": "/data/" + f"{sample}_{name or sample}".replace("/", "_") + ".fastq"},
        "sourceFileType": "FASTQ",
        "subjectId": "P1",
        "sampleId": sample,
        "name": name or sample,
        **extra,
    }


def csv_rows(count: int) -> str:
    return HEADER + "".join(f"S{i},P1,S{i},/data/S{i}.fastq,FASTQ\n" for i in range(1, count + 1))


def json_rows(count: int) -> str:
    return json.dumps({"sources": [item(f"S{i}") for i in range(1, count + 1)]})


def only_problem(err: ManifestError) -> str:
    assert len(err.problems) == 1, err.problems
    return str(err.problems[0])


def test_every_refusal_is_never_retried() -> None:
    assert issubclass(ManifestError, OmicsInputError) and issubclass(OmicsInputError, AirflowFailException)


# -- nesting ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"sources": ' + "[" * 10_000 + "]" * 10_000 + "}",
        "[" + '{"a":' * 10_000 + "1" + "}" * 10_000 + "]",
        "[" * 100_000,  # never closed: the parser would descend into every one
        json.dumps([item(tags={"a": [[[[[[1]]]]]]})]),  # 9 deep
    ],
    ids=["deep lists", "deep objects", "unclosed", "one level too deep"],
)
def test_json_nested_too_deep_is_a_manifest_error_naming_the_limit(text: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, source_name="m.json")
    message = only_problem(caught.value)
    assert f"more than {MAX_MANIFEST_DEPTH} levels deep" in message
    assert "Give a list of read sets or an import request" in message


def test_a_deep_manifest_file_is_refused_by_read_manifest(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text('{"sources": ' + "[" * 50_000 + "]" * 50_000 + "}")
    with pytest.raises(ManifestError, match="levels deep"):
        read_manifest(str(path))


def test_the_deepest_real_manifest_is_accepted() -> None:
    request = {"sequenceStoreId": "1234567890", "roleArn": ROLE, "sources": [item(tags={"run": "42"})]}
    assert json_depth(json.dumps(request)) == 4
    [row] = parse_manifest(json.dumps(request), source_name="m.json")
    assert row.tags == {"run": "42"}


def test_a_recursion_error_of_the_parser_is_a_manifest_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Past the depth check (as a raised limit would let it be), the parser's own RecursionError is still refused.
    monkeypatch.setattr(manifest, "MAX_MANIFEST_DEPTH", 10**9)
    monkeypatch.setattr(manifest, "json_depth", lambda text, at_most=0: 0)
    with pytest.raises(ManifestError, match="nests too deep for the JSON parser"):
        parse_manifest("[" * 100_000 + "]" * 100_000, source_name="m.json")


def test_json_depth_counts_brackets_outside_strings_without_recursion() -> None:
    assert json_depth("[]") == 1 and json_depth('{"a": [1]}') == 2 and json_depth("1") == 0
    assert json_depth(r'["[[[[", {"k\"[": "]]\\"}, "\\\\"]', at_most=100) == 2
    assert json_depth('[["unterminated [[[[[[[[[[', at_most=100) == 2
    # Millions deep: no RecursionError, a fraction of a second, capped at the limit + 1.
    started = time.monotonic()
    assert json_depth("[" * 4_000_000 + "]" * 4_000_000) == MAX_MANIFEST_DEPTH + 1
    assert json_depth("[[]" * 1_000_000 + "]" * 1_000_000) == MAX_MANIFEST_DEPTH + 1
    assert time.monotonic() - started < 10


def _depth(value: Any) -> int:
    # The reference, recursive: only for the small structures below.
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


def _random_json(rng: random.Random, depth: int) -> Any:
    pick = rng.random()
    if depth == 0 or pick < 0.3:
        return rng.choice(["", "[", "]", "{}", '"', "\\", '\\"[', "a]b", "é{", 1, None, True])
    children = [_random_json(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    if pick < 0.65:
        return children
    return {rng.choice(["k", "[", '"]', "\\"]) + str(i): child for i, child in enumerate(children)}


def test_json_depth_agrees_with_the_parsed_structure() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        value = _random_json(rng, rng.randint(0, 12))
        for text in (json.dumps(value), json.dumps(value, ensure_ascii=False, indent=1)):
            assert json_depth(text, at_most=20) == _depth(value), text
            assert json_depth(text, at_most=3) == min(_depth(value), 4), text


# -- rows ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "name"), [(csv_rows, "m.csv"), (json_rows, "m.json")], ids=["csv", "json"])
def test_more_rows_than_a_run_takes_are_refused_at_once(text: Any, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_row_checked(*args: Any) -> Any:
        raise AssertionError("a row was checked before the rows were counted")

    # Counted before any row is checked: checking 10,001 rows one by one takes seconds.
    monkeypatch.setattr(manifest, "_check_record", no_row_checked)
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text(MAX_MANIFEST_ROWS + 1), source_name=name)
    assert only_problem(caught.value) == (
        "has 10,001 rows (read sets), at most 10,000 per run: split the manifest into several runs."
    )


@pytest.mark.parametrize(("text", "name"), [(csv_rows, "m.csv"), (json_rows, "m.json")], ids=["csv", "json"])
def test_the_row_limit_is_inclusive_and_counts_rows_not_lines(
    text: Any, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manifest, "MAX_MANIFEST_ROWS", 3)
    assert len(parse_manifest(text(3), source_name=name)) == 3
    with pytest.raises(ManifestError, match=r"has 4 rows .* at most 3 per run"):
        parse_manifest(text(4), source_name=name)
    # Blank lines and a quoted cell over two lines are no rows.
    spread = (
        HEADER
        + '\n\nS1,P1,"S\n1",/data/S1.fastq,FASTQ\n\nS2,P1,S2,/data/S2.fastq,FASTQ\nS3,P1,S3,/data/S3.fastq,FASTQ\n'
    )
    with pytest.raises(ManifestError) as caught:
        parse_manifest(spread, source_name="m.csv")
    assert "per run" not in str(caught.value) and "U+000A" in str(caught.value)


# -- text the service's pattern refuses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("char", "what"),
    [
        ("\x1b", "U+001B, a control character"),
        ("\n", "U+000A, a control character"),
        ("\t", "U+0009, a control character"),
        ("\r", "U+000D, a control character"),
        ("\x7f", "U+007F, a control character"),
        ("\x85", "U+0085, a control character"),
        ("\u200b", "U+200B, an invisible format character"),
        ("\ufeff", "U+FEFF, an invisible format character"),
        ("\ue000", "U+E000, a private-use character"),
        ("\ud800", "U+D800, a lone surrogate"),
        ("\U000e0001", "U+E0001, an invisible format character"),
    ],
)
@pytest.mark.parametrize("field", ["name", "sample_id", "subject_id", "generated_from", "description"])
def test_text_outside_the_service_pattern_is_refused_naming_field_character_and_position(
    field: str, char: str, what: str
) -> None:
    with pytest.raises(OmicsInputError) as caught:
        check_text(field, f"ab{char}c")
    message = str(caught.value)
    assert message.startswith(f"{field}={'ab' + char + 'c'!r} holds {char!r} ({what}) at character 3")
    assert "Remove it" in message


@pytest.mark.parametrize(
    "value",
    [
        "S1",
        "Tumour sample 1 (FFPE), lane 2/4",
        "\u00c9chantillon \u21165 \u2013 \u03b1-\u03b2 \u2713 \u65e5\u672c\u8a9e",
        "a|b+c=d~e^f`g",
        "x\u0301",
        "🧬",
    ],
)
def test_text_of_the_service_pattern_passes(value: str) -> None:
    assert check_text("name", value) == value
    assert check_text("description", value) == value


def test_a_manifest_row_with_a_control_character_is_refused_with_its_row_and_column() -> None:
    text = HEADER + "S1,P1,S1,/data/S1.fastq,FASTQ\n" + 'S\x1b[2J,P1,"two\nlines",/data/S2.fastq,FASTQ\n'
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, source_name="m.csv")
    assert {(p.row, p.column, p.line) for p in caught.value.problems} == {(2, "sample_id", 3), (2, "name", 3)}
    message = str(caught.value)
    # The sample the row names is shown escaped: the cell is what is wrong, and the log view must not act on it.
    assert "row 2 (line 3, sample 'S\\x1b[2J'), sample_id: sample_id='S\\x1b[2J' holds '\\x1b' (U+001B" in message
    assert (
        "row 2 (line 3, sample 'S\\x1b[2J'), name: name='two\\nlines' holds '\\n' (U+000A, a control character) at "
        "character 4" in message
    )
    assert "\x1b" not in message

    items = [item("S1"), item("S2", description="a\tb", generatedFrom="seq\u200bA")]
    with pytest.raises(ManifestError) as caught:
        parse_manifest(json.dumps(items), source_name="m.json")
    assert {(p.row, p.column) for p in caught.value.problems} == {(2, "description"), (2, "generatedFrom")}


# -- reference ARNs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arn",
    [
        REFERENCE_ARN + "\n",
        "arn:\n",
        REFERENCE_ARN[:-1] + "\x1b0",
        REFERENCE_ARN + "\u200b",
        "arn:" + "x" * 124,  # 128 characters
        " " + REFERENCE_ARN,
        123,
    ],
    ids=["trailing newline", "newline only", "escape", "zero-width space", "128 characters", "leading space", "int"],
)
def test_malformed_reference_arns_are_refused(arn: Any) -> None:
    with pytest.raises(OmicsInputError, match=r"is not an ARN"):
        check_reference("BAM", arn)


def test_reference_arns_of_the_model_pass() -> None:
    assert check_reference("BAM", REFERENCE_ARN) == REFERENCE_ARN
    assert check_reference("BAM", "arn:" + "x" * 123) == "arn:" + "x" * 123  # 127 characters
    assert check_reference("FASTQ", None) is None and check_reference("FASTQ", "") is None


def test_a_manifest_reference_with_a_trailing_control_character_is_refused() -> None:
    bam = {**item("S1"), "sourceFileType": "BAM", "referenceArn": REFERENCE_ARN + "\x1b"}
    with pytest.raises(ManifestError) as caught:
        parse_manifest(json.dumps([bam]), source_name="m.json")
    assert [(p.row, p.column) for p in caught.value.problems] == [(1, "referenceArn")]
    assert "U+001B" in str(caught.value)


# -- role ARNs -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arn",
    [
        ROLE,
        "arn:aws-cn:iam::123456789012:role/omics-import",
        "arn:aws-us-gov:iam::123456789012:role/service-role/omics-import",
        "arn:aws:iam::123456789012:role/a/b/c/x",
        "arn:aws:iam::123456789012:role/" + "n" * 64,
        "arn:aws:iam::123456789012:role/Name_With+=,.@-",
        "arn:aws:iam::123456789012:role/p!$%/x",  # a path is any printable ASCII
        "arn:aws:iam::123456789012:role/" + "p" * 510 + "/x",  # the longest path: 512 characters
    ],
)
def test_role_arns_of_real_roles_pass(arn: str) -> None:
    assert check_role_arn(arn) == arn


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws-evil:iam::123456789012:role/x",
        "arn:aws-iso:iam::123456789012:role/x",
        "arn:awsx:iam::123456789012:role/x",
        "arn:aws:iam::123456789012:role/x\n",
        "arn:aws:iam::123456789012:role/x y",
        "arn:aws:iam::123456789012:role/",
        "arn:aws:iam::123456789012:role//x",
        "arn:aws:iam::123456789012:role/x/",
        "arn:aws:iam::123456789012:role/" + "n" * 65,
        "arn:aws:iam::123456789012:role/nåme",
        "arn:aws:iam::12345678901:role/x",
        "arn:aws:iam::١٢٣٤٥٦٧٨٩٠١٢:role/x",  # Arabic-Indic digits are \d, not an account
        "arn:aws:iam::123456789012:user/x",
        "arn:aws:iam::123456789012:role/" + "p" * 511 + "/x",  # a path of 513 characters
        "arn:aws:iam::123456789012:role/" + "p/" * 1100 + "x",  # above 2048 characters
        "arn:aws:iam::123456789012:role/a/b\x1b/x",
        123,
    ],
)
def test_role_arns_that_are_no_iam_role_are_refused_saying_what_one_looks_like(arn: Any) -> None:
    with pytest.raises(OmicsInputError) as caught:
        check_role_arn(arn)
    message = str(caught.value)
    assert "is not an IAM role ARN: expected arn:aws:iam::<12-digit account>:role/<name>" in message
    assert all(partition in message for partition in ROLE_ARN_PARTITIONS) and "20 to 2048" in message
    assert len(message) < 700


# -- tags ------------------------------------------------------------------------------------------------------


def test_tag_keys_and_values_must_be_text_within_the_limits() -> None:
    problems: list[tuple[str, str]] = []
    tags = {5: "v", ("t",): "v", "ok": "v", "n": None, "long": "v" * 257, "k" * 129: "v", "": "v"}
    manifest._check_tags(tags, lambda column, message: problems.append((column, message)))
    messages = [message for _, message in problems]
    assert {column for column, _ in problems} == {"tags"}
    assert "tag key 5 is a int: a key is text of 1 to 128 characters." in messages
    assert "tag key ('t',) is a tuple: a key is text of 1 to 128 characters." in messages
    assert "tag 'n': its value must be text of at most 256 characters, got NoneType None." in messages
    assert "tag 'long': its value must be text of at most 256 characters, got 257 characters." in messages
    assert sum("a key is 1 to 128 characters" in m for m in messages) == 2
    assert not any("'ok'" in m for m in messages)


def test_tags_that_are_not_text_are_refused_in_a_manifest() -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(json.dumps([item(tags={"n": 1.5, "m": ["x"]})]), source_name="m.json")
    assert {(p.row, p.column) for p in caught.value.problems} == {(1, "tags")}
    assert "got float 1.5" in str(caught.value) and "got list ['x']" in str(caught.value)


# -- run keys --------------------------------------------------------------------------------------------------


def test_sample_key_is_one_function_importable_from_the_run() -> None:
    row = ManifestRow(row=1, sample_id="A", subject_id="P", name="B/C", sources=["/d/x"], file_type="FASTQ")
    assert sample_key(row) == sample_key("A", "B/C") == "A/B/C"
    with pytest.raises(TypeError):
        sample_key("A")  # type: ignore[call-overload]


def test_rows_whose_run_keys_collide_are_refused_naming_both() -> None:
    text = HEADER + "A,P1,B/C,/data/1.fastq,FASTQ\n" + "X,P1,Y,/data/2.fastq,FASTQ\n" + "A/B,P1,C,/data/3.fastq,FASTQ\n"
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, source_name="m.csv")
    message = only_problem(caught.value)
    assert message == (
        "row 3 (line 4), name: sample_id 'A/B' with name 'C' is the run's sample 'A/B/C', as row 1's sample_id 'A' "
        "with name 'B/C' is: a run keys its samples by \"sample_id/name\". Rename one of the two so that no two "
        'rows\' "sample_id/name" are equal.'
    )
    items = [item("A", "B/C"), item("A/B", "C")]
    items[1]["sourceFiles"] = {"source1": "/data/other.fastq"}
    with pytest.raises(ManifestError) as caught:
        parse_manifest(json.dumps(items), source_name="m.json")
    assert [(p.row, p.column) for p in caught.value.problems] == [(2, "name")]


def test_an_exact_duplicate_is_reported_once_and_distinct_keys_pass() -> None:
    text = HEADER + "A,P1,B,/data/1.fastq,FASTQ\n" + "A,P1,B,/data/2.fastq,FASTQ\n"
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, source_name="m.csv")
    assert "the same name and sample_id as row 1" in only_problem(caught.value)
    rows = parse_manifest(
        HEADER + "A,P1,B/C,/data/1.fastq,FASTQ\n" + "A/B,P1,D,/data/2.fastq,FASTQ\n", source_name="m.csv"
    )
    assert len({sample_key(row) for row in rows}) == 2


@pytest.mark.parametrize("store_id", ["1234567890\n", " 1234567890", "12345678901234567890123456789012345678"])
def test_a_store_id_is_digits_alone(store_id: str) -> None:
    from airflow_provider_omics.utils.inputs import check_store_id

    with pytest.raises(OmicsInputError, match="is not a sequence store id"):
        check_store_id(store_id)


def test_the_import_operators_sources_nested_too_deep_are_an_input_error() -> None:
    from airflow_provider_omics.operators.omics_import import OmicsStartReadSetImportJobOperator

    deep = "[" * 100_000 + "]" * 100_000
    operator = OmicsStartReadSetImportJobOperator(
        task_id="import", sequence_store_id="1234567890", role_arn=ROLE, sources=deep
    )
    with pytest.raises(OmicsInputError, match="too deeply"):
        operator.checked_rows()


def test_a_switch_rendered_from_a_form_reads_as_a_bool_and_anything_else_is_refused() -> None:
    from airflow_provider_omics.utils.inputs import as_bool

    # A form's switch renders "True"/"False"; a null param (the type allows it) renders "None".
    assert [as_bool("x", v) for v in (True, "True", "yes", "1")] == [True] * 4
    assert [as_bool("x", v) for v in (False, "False", "None", "", None, "0")] == [False] * 6
    with pytest.raises(OmicsInputError, match=r"x='maybe' must be true or false"):
        as_bool("x", "maybe")
