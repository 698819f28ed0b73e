"""
Upload one read set into a HealthOmics sequence store, triggered from the Airflow UI with a form.

Trigger it with "Trigger DAG" and fill in the form: the sequence store, the file type, read 1 (and read 2 for
paired FASTQ), the sample, subject and name, the reference for BAM/CRAM, and the part size. The staged files
are local paths on the workers' shared filesystem or ``s3://`` URIs. The AWS connection ``aws_default`` is
used for HealthOmics and for S3; point it at another account or an emulator by changing only the connection.

Whoever can trigger this DAG chooses which files the workers read and send to HealthOmics. Limit them in the
Airflow configuration, not here (a DAG can only narrow these settings, never widen them):

    [omics]
    allowed_local_roots = /data/staging,/mnt/shared/runs
    allowed_s3_prefixes = s3://genomics-staging/incoming/

or ``AIRFLOW__OMICS__ALLOWED_LOCAL_ROOTS`` / ``AIRFLOW__OMICS__ALLOWED_S3_PREFIXES`` in the workers' environment.
The Airflow home, ``/proc``, ``/sys``, ``/dev`` and the workers' credential files are refused whatever they say.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_omics.task_groups import upload_read_set

with DAG(
    dag_id="omics_upload_read_set",
    description="Upload FASTQ, BAM, CRAM or uBAM files into a HealthOmics sequence store",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["omics", "healthomics", "upload"],
    params={
        "sequence_store_id": Param(
            "",
            type="string",
            pattern="^[0-9]{10,36}$",
            title="Sequence store id",
            description="The destination store's id: 10 to 36 digits (not its name or ARN).",
        ),
        "source_file_type": Param(
            "FASTQ",
            type="string",
            enum=["FASTQ", "BAM", "CRAM", "UBAM"],
            title="File type",
            description="FASTQ (single or paired), BAM or CRAM (need a reference), or unaligned BAM.",
        ),
        "read1": Param(
            "",
            type="string",
            minLength=1,
            title="Read 1 (or the only file)",
            description="Absolute path on the workers' shared filesystem, file://, or s3://bucket/key.",
        ),
        "read2": Param(
            None,
            type=["null", "string"],
            title="Read 2 (paired FASTQ only)",
            description="Leave empty unless the FASTQ is paired-end.",
        ),
        "sample_id": Param("", type="string", minLength=1, maxLength=127, title="Sample id"),
        "subject_id": Param("", type="string", minLength=1, maxLength=127, title="Subject id"),
        "name": Param("", type="string", minLength=1, maxLength=127, title="Read set name"),
        "reference_arn": Param(
            None,
            type=["null", "string"],
            pattern="^arn:.+",
            title="Reference ARN (BAM and CRAM)",
            description="arn:aws:omics:<region>:<account>:referenceStore/<id>/reference/<id>",
        ),
        "part_size_mib": Param(
            100,
            type="integer",
            minimum=1,
            maximum=100,
            title="Part size (MiB)",
            description="Bytes per uploaded part; at most 100 MiB and at most 10,000 parts per file.",
        ),
        "max_tasks": Param(
            32,
            type="integer",
            minimum=1,
            maximum=1024,
            title="Upload tasks at most",
            description="Parts are grouped so that at most this many mapped upload tasks run.",
        ),
    },
) as dag:
    upload_read_set(
        sequence_store_id="{{ params.sequence_store_id }}",
        sources=["{{ params.read1 }}", "{{ params.read2 or '' }}"],
        source_file_type="{{ params.source_file_type }}",
        name="{{ params.name }}",
        subject_id="{{ params.subject_id }}",
        sample_id="{{ params.sample_id }}",
        reference_arn="{{ params.reference_arn or '' }}",
        part_size="{{ params.part_size_mib * 1048576 }}",
        max_tasks="{{ params.max_tasks }}",
        aws_conn_id="aws_default",
    )
