"""Import read sets from S3 with StartReadSetImportJob: HealthOmics reads the objects itself, as a role the user
gives, up to 100 read sets per job, and no byte passes through an Airflow worker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.amazon.aws.utils.waiter_with_logging import wait
from airflow.providers.common.compat.sdk import AirflowException, AirflowSkipException, conf

from airflow_provider_omics.hooks.omics import OmicsHook
from airflow_provider_omics.links.omics import OmicsReadSetImportJobLink
from airflow_provider_omics.operators.base import (
    ReadSetRequestOperator,
    defer_while_running,
    persist_import_job_link,
    resumed_import,
)
from airflow_provider_omics.readsets import identity
from airflow_provider_omics.readsets.imports import (
    IMPORT_JOBS_KEY,
    IMPORTED_KEY,
    JOB_FAILED,
    MAX_SOURCES_PER_JOB,
    METHOD_KEY,
    check_role_arn,
    import_outcome,
    import_read_set,
    import_sources,
    import_token,
)
from airflow_provider_omics.readsets.request import REQUEST_FIELDS, check_store
from airflow_provider_omics.staging.manifests import import_job_rows
from airflow_provider_omics.utils.errors import service_errors
from airflow_provider_omics.utils.inputs import check_store_id
from airflow_provider_omics.utils.payloads import UPLOAD_RECORD_KEY, PlannedSample

if TYPE_CHECKING:
    from airflow.sdk import Context


class OmicsStartReadSetImportJobOperator(AwsBaseOperator[OmicsHook]):
    """
    Import read sets from S3 into a sequence store with StartReadSetImportJob, and wait for the jobs.

    HealthOmics reads the objects itself, as ``role_arn``. The sources are the service's ``sources`` items, or the
    rows of a manifest (CSV or import JSON, as for a sequencing run). Everything is checked before a job starts:
    the rows as a manifest's (file types, a reference for BAM and CRAM, two sources only for FASTQ, names and
    text limits, duplicates), every source an ``s3://`` object that exists inside ``allowed_s3_prefixes``, the
    role ARN, the store. More than 100 sources are imported in several jobs. Each job's ``clientToken`` is
    derived from the run, the task and its sources, so a retry of the task does not start a second job.

    Returns, per source in order, ``{"job_id", "sample_id", "name", "source1", "read_set_id", "status",
    "status_message"}``. A job that ends FAILED or CANCELLED fails the task with the service's message;
    COMPLETED_WITH_FAILURES fails it naming each failed source with its ``statusMessage``, after logging and
    pushing (XCom key ``read_sets``) the read sets that were imported. The job ids are pushed under
    ``import_jobs`` as soon as the jobs exist.

    .. seealso::
        StartReadSetImportJob in the AWS HealthOmics API reference:
        https://docs.aws.amazon.com/omics/latest/api/API_StartReadSetImportJob.html

    :param sequence_store_id: the destination sequence store's id. (templated)
    :param role_arn: the IAM role HealthOmics assumes to read the objects; default: ``omics_import_role_arn``
        in the connection's extra. (templated)
    :param sources: the service's ``sources`` items (``sourceFiles.source1/source2``, ``sourceFileType``,
        ``sampleId``, ``subjectId``, ``name``, ``referenceArn``, ...), or their JSON text. (templated)
    :param manifest: instead of ``sources``, a manifest's local path, ``file://`` or ``s3://`` URI. (templated)
    :param default_file_type: fills empty file types. (templated)
    :param default_reference_arn: fills empty references of BAM and CRAM sources. (templated)
    :param source_aws_conn_id: connection that checks the objects (and reads an ``s3://`` manifest); default
        ``aws_conn_id``. (templated)
    :param allowed_s3_prefixes: narrows ``[omics] allowed_s3_prefixes``.
    :param wait_for_completion: wait for the jobs; otherwise return the job ids at once. (default: True)
    :param deferrable: wait in the triggerer (:class:`~airflow_provider_omics.triggers.omics.
        OmicsReadSetImportJobCompleteTrigger`). (default: ``[operators] default_deferrable``)
    :param waiter_delay: seconds between two looks at a job. (default: 30)
    :param waiter_max_attempts: looks at a job at most. (default: 720)
    """

    aws_hook_class = OmicsHook
    template_fields: Sequence[str] = aws_template_fields(
        "sequence_store_id",
        "role_arn",
        "sources",
        "manifest",
        "default_file_type",
        "default_reference_arn",
        "source_aws_conn_id",
    )
    template_fields_renderers = {"sources": "json"}
    operator_extra_links = (OmicsReadSetImportJobLink(),)
    ui_color = "#c9e2f5"

    def __init__(
        self,
        *,
        sequence_store_id: str,
        role_arn: str | None = None,
        sources: Sequence[Mapping[str, Any]] | None = None,
        manifest: str | None = None,
        default_file_type: str | None = None,
        default_reference_arn: str | None = None,
        source_aws_conn_id: str | None = None,
        allowed_s3_prefixes: str | Sequence[str] | None = None,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        waiter_delay: int = 30,
        waiter_max_attempts: int = 720,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sequence_store_id = sequence_store_id
        self.role_arn = role_arn
        self.sources = sources
        self.manifest = manifest
        self.default_file_type = default_file_type
        self.default_reference_arn = default_reference_arn
        self.source_aws_conn_id = source_aws_conn_id
        self.allowed_s3_prefixes = allowed_s3_prefixes
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    @property
    def _hook_parameters(self) -> dict[str, Any]:
        return {**super()._hook_parameters, "source_aws_conn_id": self.source_aws_conn_id}

    def checked_rows(self) -> list[PlannedSample]:
        """The sources as checked manifest rows with their checked sources
        (:func:`~airflow_provider_omics.staging.manifests.import_job_rows`)."""
        return import_job_rows(
            self.sources,
            self.manifest,
            source_factory=self.hook.staged_source,
            s3_client_factory=self.hook._s3_client,
            allowed_s3_prefixes=self.allowed_s3_prefixes,
            default_file_type=self.default_file_type,
            default_reference_arn=self.default_reference_arn,
        )

    def execute(self, context: Context) -> Any:
        store_id = check_store_id(self.sequence_store_id)
        role_arn = check_role_arn(self.role_arn or self.hook.import_role_arn())
        checked = self.checked_rows()
        # The job reads exactly the objects that were checked (their canonical URIs), not the spellings given.
        items = import_sources([sample.row for sample in checked], [sample.sources for sample in checked])
        check_store(self.hook, store_id, self.aws_conn_id)
        ti = context["ti"]
        job_ids: list[str] = []
        for index in range(0, len(items), MAX_SOURCES_PER_JOB):
            chunk = items[index : index + MAX_SOURCES_PER_JOB]
            token = import_token(chunk, scope=[ti.dag_id, ti.run_id, ti.task_id, ti.map_index, index])
            with service_errors("StartReadSetImportJob", self.aws_conn_id):
                job = self.hook.start_read_set_import_job(store_id, role_arn, chunk, client_token=token)
            job_ids.append(str(job["id"]))
            self.log.info("Import job %s: %d source(s), %s", job["id"], len(chunk), job.get("status"))
            ti.xcom_push(key=IMPORT_JOBS_KEY, value=job_ids)
        persist_import_job_link(context, self, store_id, job_ids[0])
        if not self.wait_for_completion:
            return job_ids
        return self.wait_for_jobs(context, store_id, job_ids)

    def wait_for_jobs(self, context: Context, store_id: str, job_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Wait for every job (in the triggerer when deferrable), then report each source."""
        if self.deferrable:
            defer_while_running(self, store_id, job_ids, self.waiter_delay, self.waiter_max_attempts)
        for job_id in job_ids:
            try:
                wait(
                    waiter=self.hook.get_waiter("read_set_import_job_complete"),
                    waiter_delay=int(self.waiter_delay),
                    waiter_max_attempts=int(self.waiter_max_attempts),
                    args={"sequenceStoreId": store_id, "id": job_id},
                    failure_message=f"Import job {job_id} failed",
                    status_message=f"Import job {job_id} is",
                    status_args=["status"],
                )
            except AirflowException:
                if self.hook.get_read_set_import_job(store_id, job_id).get("status") not in JOB_FAILED:
                    raise
        return self.report(context, store_id, job_ids)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Carry on after a job ended in the triggerer: the next job, or the report."""
        return self.wait_for_jobs(context, check_store_id(self.sequence_store_id), resumed_import(self, context, event))

    def report(self, context: Context, store_id: str, job_ids: Sequence[str]) -> list[dict[str, Any]]:
        return import_outcome(
            self.hook,
            store_id,
            job_ids,
            self.log,
            on_imported=lambda imported: context["ti"].xcom_push(key=IMPORTED_KEY, value=imported),
        )


class OmicsImportReadSetOperator(ReadSetRequestOperator):
    """
    Deprecated: use :class:`~airflow_provider_omics.operators.sequencing_run.OmicsImportRunReadSetsOperator`
    (``upload_read_set(method="import" | "auto")`` builds it). Import one read set from S3, the import path of a
    hand-wired direct upload: the metadata and checks of ``OmicsCreateReadSetUploadOperator``, the sources as
    split planned them and the same request token, so that whichever path ran first, the other finds its read set
    (:func:`~airflow_provider_omics.readsets.imports.import_read_set`). Returns the read set's id.

    :param sources: the split plan (``XComArg(split, key="sources")``). (templated)
    :param method_task_id: the split task that chose the path: this task skips unless it chose import.
    :param request_task_id: kept for DAGs written against earlier versions; the token is the request's content.
    :param waiter_delay: seconds between two looks at the job. (default: 10)
    :param waiter_max_attempts: looks at the job at most. (default: 720)
    :param deferrable: wait for the job in the triggerer. (default: ``[operators] default_deferrable``)

    The read set's metadata and ``on_existing`` are ``OmicsCreateReadSetUploadOperator``'s.
    """

    template_fields: Sequence[str] = aws_template_fields(*REQUEST_FIELDS, "sources", "on_existing")
    template_fields_renderers = {"tags": "json", "sources": "json"}
    operator_extra_links = (OmicsReadSetImportJobLink(),)
    ui_color = "#c9e2f5"
    instead = "OmicsImportRunReadSetsOperator"

    def __init__(
        self,
        *,
        sources: Mapping[str, Any],
        method_task_id: str,
        request_task_id: str | None = None,
        waiter_delay: float = 10,
        waiter_max_attempts: int = 720,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sources = sources
        self.method_task_id = method_task_id
        self.request_task_id = request_task_id
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self.deferrable = deferrable

    def execute(self, context: Context, known_jobs: Sequence[str] = ()) -> str:
        ti = context["ti"]
        choice = ti.xcom_pull(task_ids=self.method_task_id, key=METHOD_KEY) or {}
        if choice.get("method") != "import":
            raise AirflowSkipException(f"{self.method_task_id} chose a direct upload: nothing to import.")
        request = self.checked_request()
        store_id = request["sequenceStoreId"]
        check_store(self.hook, store_id, self.aws_conn_id)

        def on_jobs(job_ids: list[str]) -> None:
            ti.xcom_push(key=IMPORT_JOBS_KEY, value=job_ids)
            persist_import_job_link(context, self, store_id, job_ids[0])

        return import_read_set(
            self.hook,
            request,
            self.sources,
            str(choice["role_arn"]),
            identity.check_on_existing(self.on_existing),
            aws_conn_id=self.aws_conn_id,
            log=self.log,
            # verify reads it: a read set kept with on_existing=skip is not verified, an adopted one is proven.
            on_record=lambda record: ti.xcom_push(key=UPLOAD_RECORD_KEY, value=record.to_dict()),
            known_jobs=known_jobs,
            waiter_delay=float(self.waiter_delay),
            waiter_max_attempts=int(self.waiter_max_attempts),
            on_jobs=on_jobs,
            before_wait=(
                (
                    lambda job_ids: defer_while_running(
                        self, store_id, job_ids, self.waiter_delay, self.waiter_max_attempts
                    )
                )
                if self.deferrable
                else None
            ),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Carry on after the job ended in the triggerer: the same steps, the job taken from this try's XCom."""
        return self.execute(context, known_jobs=resumed_import(self, context, event))


__all__ = ["OmicsImportReadSetOperator", "OmicsStartReadSetImportJobOperator"]
