"""
Upload a paired-end FASTQ staged on S3 into a HealthOmics sequence store, then verify its ETags.

The staging bucket is read through its own connection (``aws_staging``, e.g. another account or role); the
sequence store through ``aws_default``. Parts stream from S3 with ranged GETs pinned to the object version
that was split, so a file rewritten during the upload is refused instead of mixed.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_omics.task_groups import upload_read_set

with DAG(
    dag_id="omics_paired_fastq_s3",
    description="Paired FASTQ on S3 into a HealthOmics sequence store",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["omics", "healthomics", "s3"],
    params={
        "sequence_store_id": Param("", type="string", pattern="^[0-9]{10,36}$", title="Sequence store id"),
        "read1": Param("s3://genomics-staging/run-42/sample-7_R1.fastq.gz", type="string", pattern="^s3://.+"),
        "read2": Param("s3://genomics-staging/run-42/sample-7_R2.fastq.gz", type="string", pattern="^s3://.+"),
        "sample_id": Param("sample-7", type="string", minLength=1),
        "subject_id": Param("subject-7", type="string", minLength=1),
    },
) as dag:
    upload_read_set(
        sequence_store_id="{{ params.sequence_store_id }}",
        sources=["{{ params.read1 }}", "{{ params.read2 }}"],
        source_file_type="FASTQ",
        name="{{ params.sample_id }}-{{ ds_nodash }}",
        subject_id="{{ params.subject_id }}",
        sample_id="{{ params.sample_id }}",
        generated_from="{{ params.read1 }}",
        aws_conn_id="aws_default",
        source_aws_conn_id="aws_staging",
        max_tasks=64,
        max_concurrency=4,
    )
