"""Import job DAGs for tests/test_import_job.py: the operator blocking and deferrable, and the sensor.

Everything comes from the run's conf; the ``omics_test`` and ``s3_staging`` connections are defined by the tests.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_omics.operators.omics_import import OmicsStartReadSetImportJobOperator
from airflow_provider_omics.sensors.omics import OmicsReadSetImportJobSensor

PARAMS = {
    "sequence_store_id": "",
    "role_arn": "arn:aws:iam::123456789012:role/omics-import",
    "sources": "",
    "manifest": "",
    "default_reference_arn": "",
    "job_id": "",
}
DEFAULT_ARGS = {"retries": 0, "retry_delay": timedelta(0), "aws_conn_id": "omics_test"}
IMPORT_ARGS = {
    "sequence_store_id": "{{ params.sequence_store_id }}",
    "role_arn": "{{ params.role_arn }}",
    "sources": "{{ params.sources }}",
    "manifest": "{{ params.manifest }}",
    "default_reference_arn": "{{ params.default_reference_arn }}",
    "source_aws_conn_id": "s3_staging",
    # The emulator finishes a small job within a second.
    "waiter_delay": 1,
    "waiter_max_attempts": 300,
}

with DAG(dag_id="omics_import", schedule=None, params=PARAMS, default_args=DEFAULT_ARGS) as omics_import:
    OmicsStartReadSetImportJobOperator(task_id="import_read_sets", deferrable=False, **IMPORT_ARGS)

with DAG(
    dag_id="omics_import_deferrable", schedule=None, params=PARAMS, default_args=DEFAULT_ARGS
) as omics_import_deferrable:
    OmicsStartReadSetImportJobOperator(task_id="import_read_sets", deferrable=True, **IMPORT_ARGS)

for _deferrable in (False, True):
    with DAG(
        dag_id=f"omics_import_sensor{'_deferrable' if _deferrable else ''}",
        schedule=None,
        params=PARAMS,
        default_args=DEFAULT_ARGS,
    ) as _dag:
        OmicsReadSetImportJobSensor(
            task_id="wait_for_import",
            sequence_store_id="{{ params.sequence_store_id }}",
            job_id="{{ params.job_id }}",
            deferrable=_deferrable,
            waiter_delay=1,
            waiter_max_attempts=300,
        )
    globals()[_dag.dag_id] = _dag
