"""Import read sets from S3 with StartReadSetImportJob: HealthOmics reads the objects itself, as a role the user
gives, up to 100 read sets per job, and no byte passes through an Airflow worker."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.amazon.aws.utils.waiter_with_logging import wait
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, AirflowSkipException, conf

from airflow_provider_omics.hooks.omics import OmicsHook
from airflow_provider_omics.links.omics import OmicsReadSetImportJobLink
from airflow_provider_omics.operators.base import defer_while_running, resumed_import, warn_single_read_set_operator
from airflow_provider_omics.readsets import identity
from airflow_provider_omics.readsets.identity import request_token
from airflow_provider_omics.readsets.imports import (
    IMPORT_JOBS_KEY,
    IMPORTED_KEY,
    JOB_DONE,
    JOB_FAILED,
    MAX_SOURCES_PER_JOB,
    METHOD_KEY,
    ImportRequest,
    check_role_arn,
    import_outcome,
    import_sources,
    import_token,
    run_imports,
)
from airflow_provider_omics.readsets.request import REQUEST_FIELDS, check_request, check_store
from airflow_provider_omics.staging.manifests import check_manifest_sources, parse_manifest, read_manifest
from airflow_provider_omics.triggers.omics import OmicsReadSetImportJobCompleteTrigger, waiter_settings
from airflow_provider_omics.utils.errors import OmicsInputError, service_errors
from airflow_provider_omics.utils.inputs import check_store_id
from airflow_provider_omics.utils.payloads import UPLOAD_RECORD_KEY, PlannedSample, UploadRecord

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
        """The sources as checked manifest rows with their checked sources: every problem of every source in one
        failure."""
        if isinstance(self.sources, str):
            # A template rendered to JSON text (the example DAG's form).
            try:
                self.sources = json.loads(self.sources) if self.sources.strip() else None
            except json.JSONDecodeError as err:
                raise OmicsInputError(
                    f"sources is not JSON: {err}. Give a list of the service's sources items."
                ) from None
            except RecursionError:
                raise OmicsInputError(
                    "sources nests arrays or objects too deeply to be a list of the service's sources items."
                ) from None
        if bool(self.sources) == bool(self.manifest):
            raise OmicsInputError("Give either sources (the service's sources items) or manifest, not both.")
        file_type, reference_arn = self.default_file_type or None, self.default_reference_arn or None
        if self.manifest:
            rows = read_manifest(
                self.manifest,
                s3_client_factory=self.hook._s3_client,
                allowed_s3_prefixes=self.allowed_s3_prefixes,
                default_file_type=file_type,
                default_reference_arn=reference_arn,
            ).rows
            name = self.manifest
        else:
            name = "sources"
            try:
                text = json.dumps({"sources": list(self.sources or [])})
            except (RecursionError, ValueError, TypeError) as err:
                raise OmicsInputError(
                    f"sources is not a list of the service's sources items ({type(err).__name__})."
                ) from None
            rows = parse_manifest(
                text,
                source_name="sources.json",
                default_file_type=file_type,
                default_reference_arn=reference_arn,
            )
        local = [
            f"row {row.row} ({row.sample_id}/{row.name}): {source}"
            for row in rows
            for source in row.sources
            if not source.startswith("s3://")
        ]
        if local:
            raise OmicsInputError(
                "An import job reads only S3 objects, and these are not: " + "; ".join(local) + ". Stage them on S3, "
                "or upload them directly (upload_read_set, upload_sequencing_run)."
            )
        return check_manifest_sources(
            rows,
            source_factory=self.hook.staged_source,
            allowed_s3_prefixes=self.allowed_s3_prefixes,
            manifest_name=name,
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
        OmicsReadSetImportJobLink.persist(
            context=context,
            operator=self,
            region_name=self.hook.conn_region_name,
            aws_partition=self.hook.conn_partition,
            sequence_store_id=store_id,
            job_id=job_ids[0],
        )
        if not self.wait_for_completion:
            return job_ids
        return self.wait_for_jobs(context, store_id, job_ids)

    def wait_for_jobs(self, context: Context, store_id: str, job_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Wait for every job (in the triggerer when deferrable), then report each source."""
        for job_id in job_ids:
            if self.deferrable:
                job = self.hook.get_read_set_import_job(store_id, job_id)
                if job.get("status") in JOB_DONE:
                    continue
                self.defer(
                    trigger=OmicsReadSetImportJobCompleteTrigger(
                        sequence_store_id=store_id,
                        job_id=job_id,
                        **waiter_settings(self),
                    ),
                    method_name="execute_complete",
                )
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
        """Carry on after a job finished in the triggerer: the next job, or the report."""
        validated = validate_execute_complete_event(event)
        store_id = check_store_id(self.sequence_store_id)
        job_ids = context["ti"].xcom_pull(task_ids=self.task_id, key=IMPORT_JOBS_KEY) or []
        if validated.get("status") != "success":
            job_id = str(validated.get("job_id"))
            if self.hook.get_read_set_import_job(store_id, job_id).get("status") not in JOB_FAILED:
                raise AirflowException(f"Waiting for import job {job_id} failed: {validated.get('message')}")
        return self.wait_for_jobs(context, store_id, job_ids)

    def report(self, context: Context, store_id: str, job_ids: Sequence[str]) -> list[dict[str, Any]]:
        try:
            return import_outcome(self.hook, store_id, job_ids, self.log)
        except AirflowFailException:
            outcome = [
                source
                for job_id in job_ids
                for source in self.hook.get_read_set_import_job(store_id, job_id).get("sources") or []
                if source.get("readSetId") and source.get("status") == "FINISHED"
            ]
            context["ti"].xcom_push(
                key=IMPORTED_KEY,
                value=[
                    {"sample_id": s.get("sampleId"), "name": s.get("name"), "read_set_id": s["readSetId"]}
                    for s in outcome
                ],
            )
            raise


class OmicsImportReadSetOperator(AwsBaseOperator[OmicsHook]):
    """
    Import one read set from S3 as the import path of ``upload_read_set(method="import" | "auto")``: the same
    metadata and checks as :class:`~airflow_provider_omics.operators.omics.OmicsCreateReadSetUploadOperator`,
    the sources as split planned them, and the same request token, so that whichever path ran first, a retry,
    a cleared task or the other path finds the read set instead of storing it again (see :func:`run_imports`).
    Returns the read set's id, as the upload path's complete task does; an import that fails fails the task
    with the service's message.

    :param sequence_store_id: the destination sequence store's id. (templated)
    :param sources: the split plan (``XComArg(split, key="sources")``). (templated)
    :param source_file_type: FASTQ, BAM, CRAM or UBAM. (templated)
    :param name: the read set's name. (templated)
    :param subject_id: the subject's id. (templated)
    :param sample_id: the sample's id. (templated)
    :param reference_arn: the reference's ARN; required for BAM and CRAM. (templated)
    :param generated_from: where the file came from. (templated)
    :param description: the read set's description. (templated)
    :param tags: tags for the read set. (templated)
    :param method_task_id: the split task that chose the path: this task skips unless it chose import.
    :param request_task_id: kept for DAGs written against earlier versions; the request token is the request's
        content (see :func:`~airflow_provider_omics.readsets.identity.request_token`), the same on both paths.
    :param on_existing: as :class:`~airflow_provider_omics.operators.omics.OmicsCreateReadSetUploadOperator`'s:
        what to do when the store already holds a read set of this sample from other content. (templated)
    :param waiter_delay: seconds between two looks at the job. (default: 10)
    :param waiter_max_attempts: looks at the job at most. (default: 720)
    :param deferrable: wait for the job in the triggerer (:class:`~airflow_provider_omics.triggers.omics.
        OmicsReadSetImportJobCompleteTrigger`); the resumed task takes the read set from the job it waited for.
        (default: ``[operators] default_deferrable``)
    """

    aws_hook_class = OmicsHook
    template_fields: Sequence[str] = aws_template_fields(
        "sequence_store_id",
        "sources",
        "source_file_type",
        "name",
        "subject_id",
        "sample_id",
        "reference_arn",
        "generated_from",
        "description",
        "tags",
        "on_existing",
    )
    template_fields_renderers = {"tags": "json", "sources": "json"}
    operator_extra_links = (OmicsReadSetImportJobLink(),)
    ui_color = "#c9e2f5"

    def __init__(
        self,
        *,
        sequence_store_id: str,
        sources: Mapping[str, Any],
        source_file_type: str,
        name: str,
        subject_id: str,
        sample_id: str,
        reference_arn: str | None = None,
        generated_from: str | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        method_task_id: str,
        request_task_id: str | None = None,
        on_existing: str = "fail",
        waiter_delay: float = 10,
        waiter_max_attempts: int = 720,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        warn_single_read_set_operator(self, "OmicsImportRunReadSetsOperator (operators.sequencing_run)")
        super().__init__(**kwargs)
        self.deferrable = deferrable
        self.sequence_store_id = sequence_store_id
        self.sources = sources
        self.source_file_type = source_file_type
        self.name = name
        self.subject_id = subject_id
        self.sample_id = sample_id
        self.reference_arn = reference_arn
        self.generated_from = generated_from
        self.description = description
        self.tags = tags
        self.method_task_id = method_task_id
        self.request_task_id = request_task_id
        self.on_existing = on_existing
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    def execute(self, context: Context, known_jobs: Sequence[str] = ()) -> str:
        ti = context["ti"]
        choice = ti.xcom_pull(task_ids=self.method_task_id, key=METHOD_KEY) or {}
        if choice.get("method") != "import":
            raise AirflowSkipException(f"{self.method_task_id} chose a direct upload: nothing to import.")
        request = check_request(**{field: getattr(self, field) for field in REQUEST_FIELDS})
        on_existing = identity.check_on_existing(self.on_existing)
        store_id = request["sequenceStoreId"]
        check_store(self.hook, store_id, self.aws_conn_id)
        token = request_token(request, self.sources)
        record = UploadRecord.for_request(request, token)
        if not known_jobs:
            with service_errors("Looking for read sets of this sample already in the store", self.aws_conn_id):
                same, other = identity.existing_read_sets(self.hook, store_id, request, token)
            found = identity.resolve_existing(
                same, other, on_existing, request["sourceFileType"], f"{request['name']} (sample {request['sampleId']})"
            )
            if found.action == "fail":
                raise AirflowFailException(found.reason)
            if found.action != "upload" and found.read_set_id:
                record.read_set_id, record.adopted, record.skip_verify = (
                    found.read_set_id,
                    found.adopted,
                    found.skip_verify,
                )
                # verify reads it: a read set kept with on_existing=skip is not verified, an adopted one is proven.
                ti.xcom_push(key=UPLOAD_RECORD_KEY, value=record.to_dict())
                self.log.info("Nothing is imported: %s.", found.reason)
                return found.read_set_id
        # The job reads the objects split checked: their canonical locations, not the URIs as they were spelled.
        files = {part_source.lower(): planned["location"] for part_source, planned in sorted(self.sources.items())}
        item = {
            "sourceFiles": files,
            "sourceFileType": request["sourceFileType"],
            "subjectId": request["subjectId"],
            "sampleId": request["sampleId"],
            "name": request["name"],
            **{
                key: request[key]
                for key in ("referenceArn", "generatedFrom", "description", "tags")
                if request.get(key)
            },
        }

        def on_jobs(job_ids: list[str]) -> None:
            ti.xcom_push(key=IMPORT_JOBS_KEY, value=job_ids)
            OmicsReadSetImportJobLink.persist(
                context=context,
                operator=self,
                region_name=self.hook.conn_region_name,
                aws_partition=self.hook.conn_partition,
                sequence_store_id=store_id,
                job_id=job_ids[0],
            )

        outcome = run_imports(
            self.hook,
            store_id,
            str(choice["role_arn"]),
            [ImportRequest(key=request["name"], item=item, token=token)],
            aws_conn_id=self.aws_conn_id,
            log=self.log,
            waiter_delay=float(self.waiter_delay),
            waiter_max_attempts=int(self.waiter_max_attempts),
            on_jobs=on_jobs,
            known_jobs=known_jobs,
            before_wait=self.defer_while_running if self.deferrable else None,
        )[request["name"]]
        if outcome["status"] != "FINISHED" or not outcome["read_set_id"]:
            raise AirflowFailException(f"The import of {request['name']} failed: {outcome['message']}")
        self.log.info("Imported %s as read set %s", request["name"], outcome["read_set_id"])
        return str(outcome["read_set_id"])

    def defer_while_running(self, job_ids: list[str]) -> None:
        defer_while_running(
            self, check_store_id(self.sequence_store_id), job_ids, self.waiter_delay, self.waiter_max_attempts
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Carry on after the job ended in the triggerer: the same steps, the job taken from this try's XCom."""
        return self.execute(context, known_jobs=resumed_import(self, context, event))


__all__ = ["OmicsImportReadSetOperator", "OmicsStartReadSetImportJobOperator"]
