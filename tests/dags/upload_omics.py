"""DAGs that upload a read set, for tests/test_pipeline.py: one built from the operators, one with upload_read_set.

Everything a run needs comes from its conf (``dag.test(run_conf=...)``); the ``omics_test`` AWS connection (and
``s3_staging`` for S3 sources) are defined by the tests in the environment, the way users define connections.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.common.compat.sdk import DAG, XComArg

from airflow_provider_omics.operators.omics import (
    OmicsAbortReadSetUploadOperator,
    OmicsCompleteReadSetUploadOperator,
    OmicsCreateReadSetUploadOperator,
    OmicsSplitReadSetOperator,
    OmicsUploadReadSetPartOperator,
)
from airflow_provider_omics.task_groups import upload_read_set
from airflow_provider_omics.utils.payloads import UPLOAD_RECORD_KEY

PARAMS = {
    "sequence_store_id": "",
    "read1": "",
    "read2": "",
    "source_file_type": "FASTQ",
    "reference_arn": None,
    "part_size": 104857600,
    "max_tasks": None,
    "max_concurrency": 4,
    "source_aws_conn_id": None,
    "name": "test-read-set",
    "role_arn": "",
    "method": "auto",
}
DEFAULT_ARGS = {"retries": 0, "retry_delay": timedelta(0), "aws_conn_id": "omics_test"}

with DAG(
    dag_id="omics_upload_operators",
    schedule=None,
    catchup=False,
    params=PARAMS,
    default_args=DEFAULT_ARGS,
) as omics_upload_operators:
    split = OmicsSplitReadSetOperator(
        task_id="split",
        sources=["{{ params.read1 }}", "{{ params.read2 }}"],
        part_size="{{ params.part_size }}",
        max_tasks="{{ params.max_tasks or '' }}",
        source_file_type="{{ params.source_file_type }}",
        source_aws_conn_id="{{ params.source_aws_conn_id or '' }}",
    )
    create = OmicsCreateReadSetUploadOperator(
        task_id="create",
        sequence_store_id="{{ params.sequence_store_id }}",
        source_file_type="{{ params.source_file_type }}",
        name="{{ params.name }}",
        subject_id="subject-1",
        sample_id="sample-1",
        reference_arn="{{ params.reference_arn or '' }}",
        sources=XComArg(split, key="sources"),
    )
    upload = OmicsUploadReadSetPartOperator.partial(
        task_id="upload_parts",
        sequence_store_id="{{ params.sequence_store_id }}",
        upload_id=create.output,
        upload_record=XComArg(create, key=UPLOAD_RECORD_KEY),
        max_concurrency="{{ params.max_concurrency }}",
        source_aws_conn_id="{{ params.source_aws_conn_id or '' }}",
        retries=2,
    ).expand_kwargs(split.output)
    complete = OmicsCompleteReadSetUploadOperator(
        task_id="complete",
        sequence_store_id="{{ params.sequence_store_id }}",
        upload_id=create.output,
        parts=upload.output,
        expected_parts=XComArg(split, key="sources"),
        upload_record=XComArg(create, key=UPLOAD_RECORD_KEY),
    )
    abort = OmicsAbortReadSetUploadOperator(
        task_id="abort",
        sequence_store_id="{{ params.sequence_store_id }}",
        upload_id=create.output,
        read_set_id=complete.output,
        upload_record=XComArg(create, key=UPLOAD_RECORD_KEY),
    )
    split >> create
    complete >> abort.as_teardown(setups=[split, create])


with DAG(
    dag_id="omics_upload_group",
    schedule=None,
    catchup=False,
    params=PARAMS,
    default_args={"retries": 0, "retry_delay": timedelta(0)},
) as omics_upload_group:
    upload_read_set(
        sequence_store_id="{{ params.sequence_store_id }}",
        sources=["{{ params.read1 }}", "{{ params.read2 }}"],
        source_file_type="{{ params.source_file_type }}",
        name="{{ params.name }}",
        subject_id="subject-1",
        sample_id="sample-1",
        reference_arn="{{ params.reference_arn or '' }}",
        part_size="{{ params.part_size }}",
        max_tasks="{{ params.max_tasks or '' }}",
        aws_conn_id="omics_test",
        source_aws_conn_id="{{ params.source_aws_conn_id or '' }}",
        upload_retries=2,
        waiter_delay=1,
        waiter_max_attempts=60,
        deferrable=False,
    )


# The same group choosing its path (method="auto"), importing (method="import"), or taking the method from the
# run's conf as the example DAG's form gives it: tests/test_method.py.
for _name, _method, _deferrable in (
    ("auto", "auto", False),
    ("import", "import", False),
    ("chosen", "{{ params.method }}", False),
    ("import_deferrable", "import", True),
):
    with DAG(
        dag_id=f"omics_upload_{_name}",
        schedule=None,
        catchup=False,
        params=PARAMS,
        default_args={"retries": 0, "retry_delay": timedelta(0)},
    ) as _dag:
        upload_read_set(
            sequence_store_id="{{ params.sequence_store_id }}",
            sources=["{{ params.read1 }}", "{{ params.read2 }}"],
            source_file_type="{{ params.source_file_type }}",
            name="{{ params.name }}",
            subject_id="subject-1",
            sample_id="sample-1",
            reference_arn="{{ params.reference_arn or '' }}",
            part_size="{{ params.part_size }}",
            max_tasks="{{ params.max_tasks or '' }}",
            aws_conn_id="omics_test",
            source_aws_conn_id="{{ params.source_aws_conn_id or '' }}",
            method=_method,
            role_arn="{{ params.role_arn or '' }}",
            waiter_delay=1,
            waiter_max_attempts=120,
            deferrable=_deferrable,
        )
    globals()[_dag.dag_id] = _dag
