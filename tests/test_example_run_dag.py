"""The sequencing-run example DAG imports cleanly, builds the run's tasks, and its form refuses bad values."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

# In the compat suite (`make test-compat`): what every supported Airflow must do.
pytestmark = pytest.mark.compat

EXAMPLE = Path(__file__).parents[1] / "example_dags" / "omics_upload_sequencing_run.py"
GOOD = {
    "sequence_store_id": "1234567890",
    "manifest": "s3://staging/run-42/manifest.csv",
    "default_file_type": "FASTQ",
    "default_reference_arn": None,
    "part_size_mib": 100,
    "max_tasks": 32,
    "max_concurrency": 4,
    "max_digest_tasks": 4,
}


@pytest.fixture(scope="module")
def dag(airflow_db: Path) -> Any:
    from tests.compat import dag_bag

    dagbag = dag_bag(dag_folder=str(EXAMPLE))
    assert dagbag.import_errors == {}
    return dagbag.get_dag("omics_upload_sequencing_run")


def validate(dag: Any, conf: dict[str, Any]) -> dict[str, Any]:
    params = copy.deepcopy(dag.params)
    params.update(conf)
    return params.validate()


def test_the_run_is_one_task_per_step_and_the_byte_work_mapped(dag: Any) -> None:
    task_ids = {t.task_id.rsplit(".", 1)[-1] for t in dag.tasks}
    assert task_ids == {
        "plan",
        "create",
        "upload_parts",
        "complete",
        "abort",
        "wait_active",
        "digest_batches",
        "digest",
        "verify",
        "summary",
        "failures",
        "failed_sample",
        "import",
    }
    from airflow.providers.common.compat.sdk import MappedOperator

    mapped = [t.task_id for t in dag.tasks if isinstance(t, MappedOperator)]
    assert sorted(m.rsplit(".", 1)[-1] for m in mapped) == ["digest", "failed_sample", "upload_parts"]


def test_the_form_accepts_a_run_and_has_titles(dag: Any) -> None:
    assert validate(dag, GOOD)["manifest"] == GOOD["manifest"]
    bam = {**GOOD, "default_file_type": "BAM", "default_reference_arn": "arn:aws:omics:us-east-1:1:referenceStore/1"}
    assert validate(dag, bam)["default_file_type"] == "BAM"
    for name in GOOD:
        schema = dag.params.get_param(name).schema
        assert schema.get("title") and (schema.get("description") or dag.params.get_param(name).description), name
    assert dag.params.get_param("max_tasks").schema["section"] == "Upload tuning"
    # A switch is never empty: the form must not mark it required (it does unless the type allows null).
    assert dag.params.get_param("write_summary_csv").schema["type"] == ["boolean", "null"]
    assert validate(dag, {**GOOD, "write_summary_csv": True})["write_summary_csv"] is True


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sequence_store_id", "my-store"),
        ("manifest", ""),
        ("default_file_type", "SAM"),
        ("default_reference_arn", "not-an-arn"),
        ("part_size_mib", 101),
        ("max_tasks", 0),
        ("max_digest_tasks", 0),
        ("on_existing", "merge"),
        ("import_role_arn", "arn:aws-evil:iam::123456789012:role/r"),
    ],
)
def test_the_form_refuses_bad_values(dag: Any, field: str, value: Any) -> None:
    from airflow.providers.common.compat.sdk import ParamValidationError

    with pytest.raises(ParamValidationError):
        validate(dag, {**GOOD, field: value})
