"""The example DAGs import cleanly and their trigger forms accept what they should and refuse the rest."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

# In the compat suite (`make test-compat`): what every supported Airflow must do.
pytestmark = pytest.mark.compat

EXAMPLES = Path(__file__).parents[1] / "example_dags"


@pytest.fixture(scope="module")
def dagbag(airflow_db: Path) -> Any:
    from tests.compat import dag_bag

    return dag_bag(dag_folder=str(EXAMPLES))


def test_every_example_dag_imports_without_errors(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {
        "omics_upload_read_set",
        "omics_paired_fastq_s3",
        "omics_bam_with_reference",
        "omics_upload_sequencing_run",
        "omics_analyze_arriving_read_sets",
        "omics_import_from_s3",
    }
    for dag_id in dagbag.dag_ids:
        if dag_id in ("omics_analyze_arriving_read_sets", "omics_import_from_s3"):
            continue
        task_ids = {t.task_id.rsplit(".", 1)[-1] for t in dagbag.get_dag(dag_id).tasks}
        # One pipeline: a single read set is a run of one sample.
        steps = {"plan", "create", "upload_parts", "complete", "abort", "wait_active", "digest_batches", "digest"}
        steps |= {"verify", "summary"}
        assert steps <= task_ids, dag_id


GOOD = {
    "sequence_store_id": "1234567890",
    "source_file_type": "FASTQ",
    "read1": "/data/staging/S1_R1.fastq.gz",
    "read2": "/data/staging/S1_R2.fastq.gz",
    "sample_id": "S1",
    "subject_id": "P1",
    "name": "S1",
    "reference_arn": None,
    "part_size_mib": 100,
    "max_tasks": 32,
}


def validate(dagbag: Any, conf: dict[str, Any]) -> dict[str, Any]:
    params = copy.deepcopy(dagbag.get_dag("omics_upload_read_set").params)
    params.update(conf)
    return params.validate()


def test_the_form_accepts_a_paired_fastq_and_a_bam(dagbag: Any) -> None:
    assert validate(dagbag, GOOD)["part_size_mib"] == 100
    bam = {**GOOD, "source_file_type": "BAM", "read2": None, "reference_arn": "arn:aws:omics:us-east-1:1:x/1"}
    assert validate(dagbag, bam)["read2"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sequence_store_id", "my-store"),
        ("sequence_store_id", "123"),
        ("source_file_type", "SAM"),
        ("read1", ""),
        ("sample_id", ""),
        ("name", "n" * 128),
        ("reference_arn", "reference/1"),
        ("part_size_mib", 0),
        ("part_size_mib", 101),
        ("part_size_mib", "a lot"),
        ("max_tasks", 0),
        ("method", "fastest"),
        ("import_role_arn", "omics-import"),
        ("import_role_arn", "arn:aws:iam::123:role/x"),
    ],
)
def test_the_form_refuses_bad_values(dagbag: Any, field: str, value: Any) -> None:
    from airflow.providers.common.compat.sdk import ParamValidationError

    with pytest.raises(ParamValidationError):
        validate(dagbag, {**GOOD, field: value})


def test_the_form_has_titles_and_descriptions_for_the_ui(dagbag: Any) -> None:
    params = dagbag.get_dag("omics_upload_read_set").params
    for name in GOOD:
        schema = params.get_param(name).schema
        assert schema.get("title"), name
    assert params.get_param("source_file_type").schema["enum"] == ["FASTQ", "BAM", "CRAM", "UBAM"]
    assert params.get_param("method").schema["enum"] == ["auto", "upload", "import"]
    assert params["method"] == "auto" and params["import_role_arn"] is None
    assert params.get_param("on_existing").schema["enum"] == ["fail", "skip", "new"]
    assert params["on_existing"] == "fail"
    for name in ("method", "import_role_arn", "on_existing"):
        assert params.get_param(name).schema.get("title"), name


def test_the_forms_pass_the_method_and_role_to_the_task_that_chooses(dagbag: Any) -> None:
    for dag_id, task in (("omics_upload_read_set", "plan"), ("omics_upload_sequencing_run", "plan")):
        dag = dagbag.get_dag(dag_id)
        chooser = next(t for t in dag.tasks if t.task_id.endswith(f".{task}"))
        assert chooser.method == "{{ params.method }}", dag_id
        assert chooser.role_arn == "{{ params.import_role_arn or '' }}", dag_id
        assert any(t.task_id.endswith(".import") for t in dag.tasks), dag_id
    role = "arn:aws:iam::123456789012:role/omics-import"
    accepted = validate(dagbag, {**GOOD, "method": "import", "import_role_arn": role})
    assert (accepted["method"], accepted["import_role_arn"]) == ("import", role)


def test_the_downstream_example_is_scheduled_on_the_store_asset(dagbag: Any) -> None:
    from airflow_provider_omics.version_compat import AIRFLOW_V_3_0_PLUS, Asset

    dag = dagbag.get_dag("omics_analyze_arriving_read_sets")
    expected = [Asset("omics://us-east-1/123456789012/sequence-store/1234567890")]
    if AIRFLOW_V_3_0_PLUS:
        assert dag.schedule == expected
    else:
        # Airflow 2 keeps a schedule of datasets as their DatasetAll.
        assert list(dag.timetable.dataset_condition.objects) == expected


def test_the_upload_forms_default_to_the_store_the_deployment_announces(
    airflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.compat import dag_bag

    monkeypatch.setenv("OMICS_SEQUENCE_STORE_ARN", "arn:aws:omics:eu-west-1:123456789012:sequenceStore/5550001112")
    dags = dag_bag(dag_folder=str(EXAMPLES))
    for dag_id in ("omics_upload_read_set", "omics_upload_sequencing_run"):
        assert dags.get_dag(dag_id).params["sequence_store_id"] == "5550001112", dag_id
    # Without it, the form opens empty for the user to type the id.
    monkeypatch.delenv("OMICS_SEQUENCE_STORE_ARN")
    dags = dag_bag(dag_folder=str(EXAMPLES))
    assert dags.get_dag("omics_upload_sequencing_run").params.get_param("sequence_store_id").value == ""


def test_the_import_form_renders_one_read_set_as_the_services_sources(dagbag: Any) -> None:
    import json

    dag = dagbag.get_dag("omics_import_from_s3")
    task = dag.get_task("import_read_sets")
    params = copy.deepcopy(dag.params)
    params.update(
        {
            "sequence_store_id": "1234567890",
            "role_arn": "arn:aws:iam::123456789012:role/omics-import",
            "read1": "s3://staging/S1_R1.fastq.gz",
            "read2": "s3://staging/S1_R2.fastq.gz",
            "sample_id": "S1",
            "subject_id": "P1",
        }
    )
    env = dag.get_template_env()
    rendered = env.from_string(task.sources).render(params=params.validate())
    assert json.loads(rendered) == [
        {
            "sourceFiles": {"source1": "s3://staging/S1_R1.fastq.gz", "source2": "s3://staging/S1_R2.fastq.gz"},
            "sourceFileType": "FASTQ",
            "sampleId": "S1",
            "subjectId": "P1",
            "name": "S1",
        }
    ]
    params.update({"manifest": "s3://staging/run-1/manifest.csv"})
    assert json.loads(env.from_string(task.sources).render(params=params.validate())) == []
