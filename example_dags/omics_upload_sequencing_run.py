"""
Upload every read set of a sequencing run into a HealthOmics sequence store, triggered from the Airflow UI with a
form: the sequence store and the run's manifest (a CSV sample sheet or the JSON of StartReadSetImportJob).

The manifest lists one read set per row: ``sample_id, subject_id, name, read1, read2, file_type, reference_arn,
generated_from, description`` (CSV with a header; only the first four are required), each file a path on the
workers' shared filesystem or an ``s3://`` URI. The form's file type and reference fill the empty cells. The
whole manifest is checked before anything is created, and every problem is listed in one failure.

All samples share one budget of upload tasks and one of digest tasks ("Upload tuning"): a run of 96 samples is at
most that many upload and digest tasks plus eleven. A sample that fails (a file removed, invalid content) fails
alone: its upload is aborted, the other samples are uploaded and verified, the ``summary`` task fails naming it,
and a ``failed_sample`` task named by the sample and the step ("S5 failed at wait_active") shows it in the grid.
Trigger the run again with the same manifest once the files are fixed: samples whose read set is already ACTIVE
in the store are skipped.

"How the files get into the store" is ``auto`` by default: a manifest whose files are all on S3 is imported by
HealthOmics itself (import jobs of up to 100 samples, no byte through the workers) when an import role is given
in the form or as ``omics_import_role_arn`` in the connection's extra; otherwise the workers upload the files.
The ``plan`` task's log says which path it chose and why; the other path's tasks are skipped.

Whoever can trigger this DAG chooses which files the workers read, the manifest included: limit them with
``[omics] allowed_local_roots`` and ``allowed_s3_prefixes`` in the Airflow configuration, as for
``omics_upload_read_set``.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_omics.assets.omics import sequence_store_id_of
from airflow_provider_omics.task_groups import upload_sequencing_run

# The form's store: the one the deployment's downstream DAG listens on (OMICS_SEQUENCE_STORE_ARN, as
# omics_analyze_arriving_read_sets reads it), when that is set; else empty, for the user to type.
DEFAULT_STORE_ID = sequence_store_id_of(os.environ.get("OMICS_SEQUENCE_STORE_ARN"))

STORE_ID_PATTERN = "^[0-9]{10,36}$"
STORE_ID_EXPECTED = "a sequence store id: 10 to 36 digits, such as 1234567890 (not the store name or ARN)"
TUNING = "Upload tuning"

with DAG(
    dag_id="omics_upload_sequencing_run",
    description="Upload every read set of a sequencing run's manifest into a HealthOmics sequence store",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["omics", "healthomics", "upload", "sequencing-run"],
    params={
        "sequence_store_id": Param(
            DEFAULT_STORE_ID,
            description=(
                "The id of the destination sequence store: 10 to 36 digits, such as 1234567890. Not its name "
                "or ARN: the HealthOmics console lists the id beside the name."
            ),
            schema={
                "type": "string",
                "title": "Sequence store id",
                "pattern": STORE_ID_PATTERN,
                # As in omics_upload_read_set: the `else` makes the form's refusal a sentence, not a regex.
                "if": {"pattern": STORE_ID_PATTERN},
                "else": {"const": STORE_ID_EXPECTED},
            },
        ),
        "manifest": Param(
            "",
            type="string",
            minLength=1,
            title="Manifest",
            description=(
                "The run's manifest: a CSV sample sheet (header sample_id, subject_id, name, read1, read2, "
                "file_type, reference_arn, generated_from, description) or the JSON of a StartReadSetImportJob "
                "request. An absolute path on the workers' shared filesystem, file://..., or s3://bucket/key."
            ),
        ),
        "default_file_type": Param(
            "FASTQ",
            type="string",
            enum=["FASTQ", "BAM", "CRAM", "UBAM"],
            title="Default file type",
            description="The file type of the rows whose file_type cell is empty.",
        ),
        "default_reference_arn": Param(
            None,
            type=["null", "string"],
            pattern="^arn:.+",
            title="Default reference ARN (BAM and CRAM)",
            description=(
                "The reference of the BAM and CRAM rows whose reference_arn cell is empty: "
                "arn:aws:omics:<region>:<account>:referenceStore/<id>/reference/<id>. Leave empty for FASTQ runs."
            ),
        ),
        "write_summary_csv": Param(
            False,
            # "null" too: the form marks a field required unless its type allows null, and a switch is never empty.
            type=["boolean", "null"],
            title="Write the summary next to the manifest",
            description=(
                "Also write the run's per-sample table (read set, status, verified, bytes, seconds, reason) as "
                "<manifest name>.summary.<run id>.csv beside the manifest (the workers need write access there)."
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
                "MiB per uploaded part, 1 to 100. HealthOmics takes at most 10,000 parts per file: raise it for "
                "very large files."
            ),
            section=TUNING,
        ),
        "max_tasks": Param(
            32,
            type="integer",
            minimum=1,
            maximum=1024,
            title="Upload tasks at most (whole run)",
            description=(
                "The parts of all samples are grouped so that at most this many mapped upload tasks run for the "
                "whole run; parts of different samples share a task."
            ),
            section=TUNING,
        ),
        "max_concurrency": Param(
            4,
            type="integer",
            minimum=1,
            maximum=32,
            title="Parts in flight per task",
            description="How many parts each upload task sends at once, each over a connection of its own.",
            section=TUNING,
        ),
        "max_digest_tasks": Param(
            4,
            type="integer",
            minimum=1,
            maximum=1024,
            title="Digest tasks at most (whole run)",
            description=(
                "The FASTQ files are hashed for verification by at most this many mapped tasks, on any worker: "
                "raise it with the workers to verify a large run sooner."
            ),
            section=TUNING,
        ),
        "digest_concurrency": Param(
            4,
            type="integer",
            minimum=1,
            maximum=32,
            title="Files hashed at once per digest task",
            description="How many FASTQ files each digest task hashes at once, a thread each (about a core each).",
            section=TUNING,
        ),
        "check_every_seconds": Param(
            10,
            type="integer",
            minimum=1,
            maximum=600,
            title="Look at the read sets every (seconds)",
            description="How often wait_active asks the store whether the completed read sets are ACTIVE yet.",
            section=TUNING,
        ),
    },
) as dag:
    upload_sequencing_run(
        sequence_store_id="{{ params.sequence_store_id }}",
        manifest="{{ params.manifest }}",
        default_file_type="{{ params.default_file_type }}",
        default_reference_arn="{{ params.default_reference_arn or '' }}",
        part_size="{{ params.part_size_mib * 1048576 }}",
        max_tasks="{{ params.max_tasks }}",
        max_concurrency="{{ params.max_concurrency }}",
        max_digest_tasks="{{ params.max_digest_tasks }}",
        digest_concurrency="{{ params.digest_concurrency }}",
        summary_csv="{{ params.write_summary_csv }}",
        waiter_delay="{{ params.check_every_seconds }}",
        aws_conn_id="aws_default",
        method="{{ params.method }}",
        on_existing="{{ params.on_existing }}",
        role_arn="{{ params.import_role_arn or '' }}",
    )
