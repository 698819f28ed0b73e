"""
Upload an aligned BAM, linked to the reference it was aligned to, into a HealthOmics sequence store.

BAM and CRAM read sets need a reference ARN. Their ETags are computed by HealthOmics from the alignment as SAM
against the reference, so the verification step checks the stored size and says the ETag check was skipped.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_omics.task_groups import upload_read_set

with DAG(
    dag_id="omics_bam_with_reference",
    description="An aligned BAM into a HealthOmics sequence store",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["omics", "healthomics", "bam"],
    params={
        "sequence_store_id": Param("", type="string", pattern="^[0-9]{10,36}$", title="Sequence store id"),
        "bam": Param("/data/staging/sample-7.bam", type="string", minLength=1, title="BAM file"),
        "reference_arn": Param(
            "arn:aws:omics:us-east-1:123456789012:referenceStore/1234567890/reference/1234567890",
            type="string",
            pattern="^arn:.+",
            title="Reference ARN",
        ),
        "sample_id": Param("sample-7", type="string", minLength=1),
        "subject_id": Param("subject-7", type="string", minLength=1),
    },
) as dag:
    upload_read_set(
        sequence_store_id="{{ params.sequence_store_id }}",
        sources="{{ params.bam }}",
        source_file_type="BAM",
        name="{{ params.sample_id }}-aligned",
        subject_id="{{ params.subject_id }}",
        sample_id="{{ params.sample_id }}",
        reference_arn="{{ params.reference_arn }}",
        aws_conn_id="aws_default",
    )
