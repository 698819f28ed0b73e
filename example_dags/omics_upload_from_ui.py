"""
Upload one read set into a HealthOmics sequence store, triggered from the Airflow UI with a form.

Trigger it with "Trigger DAG" and fill in the form: the sequence store, the file type, read 1 (and read 2 for
paired FASTQ), the sample, subject and name, the reference for BAM/CRAM, and, under "Upload tuning", the part
size, how many upload tasks run and how many parts each of them sends at once. The staged files
are local paths on the workers' shared filesystem or ``s3://`` URIs. The AWS connection ``aws_default`` is
used for HealthOmics and for S3; point it at another account or an emulator by changing only the connection.

"How the files get into the store" is ``auto`` by default: files on S3 are imported by HealthOmics itself (an
import job, no byte through the workers) when an import role is given in the form or as
``omics_import_role_arn`` in the connection's extra; otherwise the workers upload them. The ``plan`` task's log
says which path it chose and why; the other path's tasks are skipped.

Whoever can trigger this DAG chooses which files the workers read and send to HealthOmics. Limit them in the
Airflow configuration, not here (a DAG can only narrow these settings, never widen them):

    [omics]
    allowed_local_roots = /data/staging,/mnt/shared/runs
    allowed_s3_prefixes = s3://genomics-staging/incoming/

or ``AIRFLOW__OMICS__ALLOWED_LOCAL_ROOTS`` / ``AIRFLOW__OMICS__ALLOWED_S3_PREFIXES`` in the workers' environment.
The Airflow home, ``/proc``, ``/sys``, ``/dev`` and the workers' credential files are refused whatever they say.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_omics.assets.omics import sequence_store_id_of
from airflow_provider_omics.task_groups import upload_read_set

# The form's store: the one the deployment's downstream DAG listens on (OMICS_SEQUENCE_STORE_ARN, as
# omics_analyze_arriving_read_sets reads it), when that is set; else empty, for the user to type.
DEFAULT_STORE_ID = sequence_store_id_of(os.environ.get("OMICS_SEQUENCE_STORE_ARN"))

STORE_ID_PATTERN = "^[0-9]{10,36}$"
STORE_ID_EXPECTED = "a sequence store id: 10 to 36 digits, such as 1234567890 (not the store name or ARN)"
TUNING = "Upload tuning"

with DAG(
    dag_id="omics_upload_read_set",
    description="Upload FASTQ, BAM, CRAM or uBAM files into a HealthOmics sequence store",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["omics", "healthomics", "upload"],
    params={
        "sequence_store_id": Param(
            DEFAULT_STORE_ID,
            description=(
                "The id of the destination sequence store: 10 to 36 digits, such as 1234567890. Not its name "
                "or ARN: the HealthOmics console lists the id beside the name, and so does "
                "'aws omics list-sequence-stores'."
            ),
            schema={
                "type": "string",
                "title": "Sequence store id",
                "pattern": STORE_ID_PATTERN,
                # Airflow shows jsonschema's own message when it refuses the form, and the one for a failed
                # pattern only repeats the regular expression. A value the pattern refuses fails this `else`
                # too, and jsonschema reports that failure first: its message is the sentence.
                "if": {"pattern": STORE_ID_PATTERN},
                "else": {"const": STORE_ID_EXPECTED},
            },
        ),
        "source_file_type": Param(
            "FASTQ",
            type="string",
            enum=["FASTQ", "BAM", "CRAM", "UBAM"],
            title="File type",
            description="FASTQ (single or paired-end), BAM or CRAM (both need a reference), or UBAM (unaligned BAM).",
        ),
        "read1": Param(
            "",
            type="string",
            minLength=1,
            title="Read 1 (or the only file)",
            description=(
                "The FASTQ (read 1 of a pair), BAM, CRAM or uBAM file: an absolute path on the workers' shared "
                "filesystem, file://..., or s3://bucket/key."
            ),
        ),
        "read2": Param(
            None,
            type=["null", "string"],
            title="Read 2 (paired FASTQ only)",
            description=(
                "FASTQ only: the second file of a paired-end pair, given like read 1. Leave empty for single-end "
                "FASTQ, BAM, CRAM and uBAM."
            ),
        ),
        "sample_id": Param("", type="string", minLength=1, maxLength=127, title="Sample id"),
        "subject_id": Param("", type="string", minLength=1, maxLength=127, title="Subject id"),
        "name": Param("", type="string", minLength=1, maxLength=127, title="Read set name"),
        "reference_arn": Param(
            None,
            type=["null", "string"],
            pattern="^arn:.+",
            title="Reference ARN (BAM and CRAM only)",
            description=(
                "BAM and CRAM only, and required for them: the reference the reads were aligned to, "
                "arn:aws:omics:<region>:<account>:referenceStore/<id>/reference/<id>. Leave empty for FASTQ "
                "and uBAM."
            ),
        ),
        "method": Param(
            "auto",
            type="string",
            enum=["auto", "upload", "import"],
            title="How the files get into the store",
            description=(
                "upload: the workers read the files and send them in parts. import: HealthOmics reads them from "
                "S3 itself in an import job (S3 only, needs an import role). auto: import when every file is on "
                "S3 and an import role is set (below, or omics_import_role_arn in the connection's extra), "
                "upload otherwise; the plan task's log says which and why."
            ),
        ),
        "on_existing": Param(
            "fail",
            type="string",
            enum=["fail", "skip", "new"],
            title="When the store already holds this sample from other files",
            description=(
                "A read set of the same sample (name, sample, subject, file type, reference) stored from other "
                "files (another tool's, or files staged again since). fail: a FASTQ read set whose ETags equal "
                "the staged files' digests counts; anything else fails the sample, naming the read set. skip: "
                "keep it, unverified. new: store the staged files as another read set."
            ),
        ),
        "import_role_arn": Param(
            None,
            type=["null", "string"],
            pattern="^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/.+",
            title="Import role ARN (import only)",
            description=(
                "The IAM role HealthOmics assumes to read the S3 objects in an import job, "
                "arn:aws:iam::<account>:role/<name>. Leave empty to use omics_import_role_arn from the "
                "connection's extra (or to upload)."
            ),
        ),
        "part_size_mib": Param(
            100,
            type="integer",
            minimum=1,
            maximum=100,
            title="Part size (MiB)",
            description=(
                "MiB per uploaded part, 1 to 100. HealthOmics takes at most 10,000 parts per file, so a file "
                "of more than 10,000 x this size is refused: raise it for very large files."
            ),
            section=TUNING,
        ),
        "max_tasks": Param(
            32,
            type="integer",
            minimum=1,
            maximum=1024,
            title="Upload tasks at most",
            description="Consecutive parts are grouped so that at most this many mapped upload tasks run.",
            section=TUNING,
        ),
        "max_concurrency": Param(
            4,
            type="integer",
            minimum=1,
            maximum=32,
            title="Parts in flight per task",
            description=(
                "How many parts each upload task sends at once, each over a connection of its own. Parts are "
                "streamed, so this costs connections and bandwidth, not memory."
            ),
            section=TUNING,
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
        # The part tasks render it like their other templated fields and take it as a number.
        max_concurrency="{{ params.max_concurrency }}",
        aws_conn_id="aws_default",
        method="{{ params.method }}",
        on_existing="{{ params.on_existing }}",
        role_arn="{{ params.import_role_arn or '' }}",
    )
