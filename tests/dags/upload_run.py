"""Sequencing-run DAGs for tests/test_sequencing_run.py: ``upload_sequencing_run`` as a user writes it, and the
same with a pause after create that a test can fill (a staged file removed after planning).

Everything a run needs comes from its conf; the ``omics_test`` and ``s3_staging`` connections are defined by the
tests in the environment.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, XComArg
from airflow.providers.common.compat.standard.operators import PythonOperator

from airflow_provider_omics.operators.sequencing_run import (
    OmicsAbortRunUploadsOperator,
    OmicsCreateRunUploadsOperator,
    OmicsPlanSequencingRunOperator,
)
from airflow_provider_omics.staging.manifests import inline_manifest
from airflow_provider_omics.task_groups import upload_sequencing_run

INTERLUDES: dict[str, Callable[[dict[str, Any]], None]] = {}
PARAMS = {
    "sequence_store_id": "",
    "manifest": "",
    "default_file_type": "FASTQ",
    "default_reference_arn": "",
    "part_size": 4096,
    "max_tasks": 6,
    "source_aws_conn_id": "",
    "summary_csv": False,
    "role_arn": "",
    # omics_upload_run_inline's one read set.
    "read1": "",
    "read2": "",
    "name": "",
    "sample": "",
}
DEFAULT_ARGS = {"retries": 0, "retry_delay": timedelta(0), "aws_conn_id": "omics_test"}
RUN_ARGS: dict[str, Any] = {
    "sequence_store_id": "{{ params.sequence_store_id }}",
    "manifest": "{{ params.manifest }}",
    "default_file_type": "{{ params.default_file_type }}",
    "default_reference_arn": "{{ params.default_reference_arn or '' }}",
    "part_size": "{{ params.part_size }}",
    "max_tasks": "{{ params.max_tasks }}",
    "source_aws_conn_id": "{{ params.source_aws_conn_id or '' }}",
    "summary_csv": "{{ params.summary_csv }}",
    "aws_conn_id": "omics_test",
    # The emulator activates read sets within a fraction of a second.
    "waiter_delay": 0.2,
}


def _interlude(name: str, **context: Any) -> None:
    action = INTERLUDES.get(name)
    if action is not None:
        action(context)


with DAG(
    dag_id="omics_upload_run", schedule=None, catchup=False, params=PARAMS, default_args=DEFAULT_ARGS
) as omics_upload_run:
    upload_sequencing_run(**RUN_ARGS)

with DAG(
    dag_id="omics_upload_run_interludes", schedule=None, catchup=False, params=PARAMS, default_args=DEFAULT_ARGS
) as omics_upload_run_interludes:
    run = upload_sequencing_run(**RUN_ARGS)
    after_create = PythonOperator(
        task_id="after_create", python_callable=_interlude, op_kwargs={"name": "after_create"}
    )
    group_id = run.group_id
    tasks = run.children
    tasks[f"{group_id}.create"] >> after_create >> [tasks[f"{group_id}.upload_parts"], tasks[f"{group_id}.digest"]]

# A run of one read set given inline, without a manifest file: its fields are templates of the run's conf.
with DAG(
    dag_id="omics_upload_run_inline", schedule=None, catchup=False, params=PARAMS, default_args=DEFAULT_ARGS
) as omics_upload_run_inline:
    upload_sequencing_run(
        **{
            **RUN_ARGS,
            "manifest": inline_manifest(
                sources=["{{ params.read1 }}", "{{ params.read2 }}"],
                file_type="{{ params.default_file_type }}",
                name="{{ params.name }}",
                subject_id="subject-{{ params.sample }}",
                sample_id="{{ params.sample }}",
                tags={"run": "{{ run_id }}"},
            ),
        }
    )

# The run choosing its path (method="auto") or importing (method="import"): tests/test_method.py.
for _name, _method, _deferrable in (
    ("auto", "auto", False),
    ("import", "import", False),
    ("auto_deferrable", "auto", True),
):
    with DAG(
        dag_id=f"omics_upload_run_{_name}", schedule=None, catchup=False, params=PARAMS, default_args=DEFAULT_ARGS
    ) as _dag:
        upload_sequencing_run(
            **RUN_ARGS, method=_method, role_arn="{{ params.role_arn or '' }}", deferrable=_deferrable
        )
    globals()[_dag.dag_id] = _dag

with DAG(
    dag_id="omics_upload_run_deferrable", schedule=None, catchup=False, params=PARAMS, default_args=DEFAULT_ARGS
) as omics_upload_run_deferrable:
    # The run's wait in the triggerer (tests/test_wait.py): two rounds a second apart, then it gives up.
    upload_sequencing_run(**{**RUN_ARGS, "waiter_delay": 1}, waiter_max_attempts=2, deferrable=True)

with DAG(
    dag_id="omics_plan_run_only", schedule=None, catchup=False, params=PARAMS, default_args=DEFAULT_ARGS
) as omics_plan_run_only:
    # A run's plan and create without its bytes (tests/test_run_scale.py), its uploads aborted at the end.
    plan = OmicsPlanSequencingRunOperator(
        task_id="plan",
        sequence_store_id="{{ params.sequence_store_id }}",
        manifest="{{ params.manifest }}",
        default_file_type="{{ params.default_file_type }}",
        part_size="{{ params.part_size }}",
        max_tasks="{{ params.max_tasks }}",
    )
    create = OmicsCreateRunUploadsOperator(
        task_id="create", sequence_store_id="{{ params.sequence_store_id }}", samples=XComArg(plan, key="samples")
    )
    abort = OmicsAbortRunUploadsOperator(
        task_id="abort",
        sequence_store_id="{{ params.sequence_store_id }}",
        create_task_id="create",
        trigger_rule="all_done",
    )
    plan >> create >> abort
