"""An upload DAG with two pauses a test can fill: after create (before any part) and before complete.

The tests run it in-process with ``dag.test()`` and set ``INTERLUDES["before_upload"]`` /
``INTERLUDES["before_complete"]`` to what should happen there: the staged source changes, the upload is
aborted from outside, the service restarts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, XComArg
from airflow.providers.common.compat.standard.operators import PythonOperator

from airflow_provider_omics.operators.omics import (
    OmicsAbortReadSetUploadOperator,
    OmicsCompleteReadSetUploadOperator,
    OmicsCreateReadSetUploadOperator,
    OmicsSplitReadSetOperator,
    OmicsUploadReadSetPartOperator,
)
from airflow_provider_omics.utils.payloads import UPLOAD_RECORD_KEY

INTERLUDES: dict[str, Callable[[dict[str, Any]], None]] = {}
PARAMS = {
    "sequence_store_id": "",
    "read1": "",
    "part_size": 4096,
    "source_aws_conn_id": "",
    "source_file_type": "FASTQ",
    "reference_arn": "",
}


def _interlude(name: str, **context: Any) -> None:
    action = INTERLUDES.get(name)
    if action is not None:
        action(context)


with DAG(
    dag_id="omics_upload_interludes",
    schedule=None,
    catchup=False,
    params=PARAMS,
    default_args={"retries": 0, "retry_delay": timedelta(0), "aws_conn_id": "omics_test"},
) as omics_upload_interludes:
    split = OmicsSplitReadSetOperator(
        task_id="split",
        sources="{{ params.read1 }}",
        part_size="{{ params.part_size }}",
        max_tasks=4,
        source_file_type="{{ params.source_file_type }}",
        source_aws_conn_id="{{ params.source_aws_conn_id }}",
    )
    create = OmicsCreateReadSetUploadOperator(
        task_id="create",
        sequence_store_id="{{ params.sequence_store_id }}",
        source_file_type="{{ params.source_file_type }}",
        reference_arn="{{ params.reference_arn }}",
        name="interludes",
        subject_id="subject-1",
        sample_id="sample-1",
        sources=XComArg(split, key="sources"),
    )
    before_upload = PythonOperator(
        task_id="before_upload", python_callable=_interlude, op_kwargs={"name": "before_upload"}
    )
    upload = OmicsUploadReadSetPartOperator.partial(
        task_id="upload_parts",
        sequence_store_id="{{ params.sequence_store_id }}",
        upload_id=create.output,
        upload_record=XComArg(create, key=UPLOAD_RECORD_KEY),
        source_aws_conn_id="{{ params.source_aws_conn_id }}",
        retries=2,
    ).expand_kwargs(split.output)
    before_complete = PythonOperator(
        task_id="before_complete", python_callable=_interlude, op_kwargs={"name": "before_complete"}
    )
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
    split >> create >> before_upload >> upload >> before_complete >> complete
    complete >> abort.as_teardown(setups=[split, create])
