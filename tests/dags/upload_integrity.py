"""DAGs of tests/test_run_integrity.py: a sequencing run, its import path and one read set, with the choices the
integrity tests vary (on_existing, how long the wait looks) in the run's conf, and a run with a pause after create
that a test fills (another deployment running the same manifest to the end meanwhile).

The ``omics_test`` and ``s3_staging`` connections are defined by the tests in the environment.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG
from airflow.providers.common.compat.standard.operators import PythonOperator

from airflow_provider_omics.task_groups import upload_read_set, upload_sequencing_run

INTERLUDES: dict[str, Callable[[dict[str, Any]], None]] = {}
PARAMS = {
    "sequence_store_id": "",
    "manifest": "",
    "part_size": 4096,
    "max_tasks": 4,
    "on_existing": "fail",
    "wait_attempts": 300,
    "role_arn": "",
    "source_aws_conn_id": "",
    "read1": "",
    "read2": "",
}
DEFAULT_ARGS = {"retries": 0, "retry_delay": timedelta(0), "aws_conn_id": "omics_test"}
RUN_ARGS: dict[str, Any] = {
    "sequence_store_id": "{{ params.sequence_store_id }}",
    "manifest": "{{ params.manifest }}",
    "default_file_type": "FASTQ",
    "part_size": "{{ params.part_size }}",
    "max_tasks": "{{ params.max_tasks }}",
    "on_existing": "{{ params.on_existing }}",
    "source_aws_conn_id": "{{ params.source_aws_conn_id or '' }}",
    "aws_conn_id": "omics_test",
    "waiter_delay": 0.2,
    "waiter_max_attempts": "{{ params.wait_attempts }}",
}


def _interlude(name: str, **context: Any) -> None:
    action = INTERLUDES.get(name)
    if action is not None:
        action(context)


with DAG(
    dag_id="omics_integrity_run", schedule=None, catchup=False, params=PARAMS, default_args=DEFAULT_ARGS
) as omics_integrity_run:
    upload_sequencing_run(**RUN_ARGS)

with DAG(
    dag_id="omics_integrity_run_interludes", schedule=None, catchup=False, params=PARAMS, default_args=DEFAULT_ARGS
) as omics_integrity_run_interludes:
    _run = upload_sequencing_run(**RUN_ARGS)
    _after_create = PythonOperator(
        task_id="after_create", python_callable=_interlude, op_kwargs={"name": "after_create"}
    )
    _tasks = _run.children
    _tasks[f"{_run.group_id}.create"] >> _after_create >> _tasks[f"{_run.group_id}.upload_parts"]

with DAG(
    dag_id="omics_integrity_import", schedule=None, catchup=False, params=PARAMS, default_args=DEFAULT_ARGS
) as omics_integrity_import:
    upload_sequencing_run(**RUN_ARGS, method="import", role_arn="{{ params.role_arn }}")

with DAG(
    dag_id="omics_integrity_single", schedule=None, catchup=False, params=PARAMS, default_args=DEFAULT_ARGS
) as omics_integrity_single:
    upload_read_set(
        sequence_store_id="{{ params.sequence_store_id }}",
        sources=["{{ params.read1 }}", "{{ params.read2 }}"],
        source_file_type="FASTQ",
        name="single-reads",
        subject_id="subject-1",
        sample_id="single",
        part_size="{{ params.part_size }}",
        on_existing="{{ params.on_existing }}",
        aws_conn_id="omics_test",
        deferrable=False,
        waiter_delay=1,
        upload_retries=0,
        service_retries=0,
    )
