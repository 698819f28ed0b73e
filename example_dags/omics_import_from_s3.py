"""
Import read sets from S3 into a HealthOmics sequence store with an import job, triggered from the Airflow UI.

HealthOmics reads the objects itself, as the import role (an IAM role the service may assume, allowed to read
the objects), so no byte passes through an Airflow worker. Give either one read set (read 1, and read 2 for
paired FASTQ, with its sample, subject and name) or a manifest (a CSV sample sheet or StartReadSetImportJob JSON,
on S3 or on the workers' filesystem) listing many; more than 100 read sets are imported in several jobs.
Everything is checked before a job starts: the objects exist inside ``[omics] allowed_s3_prefixes``, file types,
references, names. The task fails naming each source the service could not import, and reports the read sets
it did import.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_omics.operators.omics_import import OmicsStartReadSetImportJobOperator

STORE_ID_PATTERN = "^[0-9]{10,36}$"
ROLE_ARN_PATTERN = "^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/.+$"
S3_URI_PATTERN = "^s3://[^/]+/.+$"
ONE_READ_SET = "One read set (leave the manifest empty)"

with DAG(
    dag_id="omics_import_from_s3",
    description="Import read sets from S3 into a HealthOmics sequence store with an import job",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["omics", "healthomics", "import", "s3"],
    params={
        "sequence_store_id": Param(
            "",
            type="string",
            pattern=STORE_ID_PATTERN,
            title="Sequence store id",
            description="The id of the destination sequence store: 10 to 36 digits (not its name or ARN).",
        ),
        "role_arn": Param(
            None,
            type=["null", "string"],
            pattern=ROLE_ARN_PATTERN,
            title="Import role ARN",
            description=(
                "The IAM role HealthOmics assumes to read the objects: arn:aws:iam::<account>:role/<name>. Empty: "
                "omics_import_role_arn in the AWS connection's extra."
            ),
        ),
        "manifest": Param(
            None,
            type=["null", "string"],
            title="Manifest",
            description=(
                "Many read sets: a CSV sample sheet (sample_id, subject_id, name, read1, read2, file_type, "
                "reference_arn, ...) or the JSON of a StartReadSetImportJob request, at s3://... or on the workers' "
                "filesystem. Leave empty to import the one read set below."
            ),
        ),
        "default_file_type": Param(
            "FASTQ",
            type="string",
            enum=["FASTQ", "BAM", "CRAM", "UBAM"],
            title="File type",
            description="The file type of the read set below, and of manifest rows whose file_type is empty.",
        ),
        "default_reference_arn": Param(
            None,
            type=["null", "string"],
            pattern="^arn:.+",
            title="Reference ARN (BAM and CRAM)",
            description="The reference a BAM or CRAM was aligned to; also fills the manifest's empty cells.",
        ),
        "read1": Param(None, type=["null", "string"], pattern=S3_URI_PATTERN, title="Read 1", section=ONE_READ_SET),
        "read2": Param(
            None,
            type=["null", "string"],
            pattern=S3_URI_PATTERN,
            title="Read 2 (paired FASTQ)",
            section=ONE_READ_SET,
        ),
        "sample_id": Param(None, type=["null", "string"], maxLength=127, title="Sample id", section=ONE_READ_SET),
        "subject_id": Param(None, type=["null", "string"], maxLength=127, title="Subject id", section=ONE_READ_SET),
        "name": Param(None, type=["null", "string"], maxLength=127, title="Read set name", section=ONE_READ_SET),
    },
) as dag:
    OmicsStartReadSetImportJobOperator(
        task_id="import_read_sets",
        sequence_store_id="{{ params.sequence_store_id }}",
        role_arn="{{ params.role_arn or '' }}",
        manifest="{{ params.manifest or '' }}",
        # Without a manifest, the one read set of the form, as the service's sources (JSON the operator parses).
        sources=(
            "{{ [] | tojson if params.manifest else [{"
            "'sourceFiles': {'source1': params.read1, 'source2': params.read2}, "
            "'sourceFileType': params.default_file_type, 'sampleId': params.sample_id, "
            "'subjectId': params.subject_id, 'name': params.name or params.sample_id}] | tojson }}"
        ),
        default_file_type="{{ params.default_file_type }}",
        default_reference_arn="{{ params.default_reference_arn or '' }}",
        aws_conn_id="aws_default",
    )
