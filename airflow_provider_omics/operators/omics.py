"""Operators of a HealthOmics direct upload: split, create, upload part (mapped), complete, abort; digest, verify.

Thin operators over :class:`~airflow_provider_omics.hooks.omics.OmicsHook`: they hold the parameters, the
templating, the checks of user input and the Airflow lifecycle; the hook holds every boto3 call.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSkipException,
    conf,
)

from airflow_provider_omics.hooks.omics import OmicsHook
from airflow_provider_omics.links.omics import OmicsReadSetLink
from airflow_provider_omics.operators.base import (
    StagedSourceOperator,
    persist_read_set_link,
    warn_single_read_set_operator,
)
from airflow_provider_omics.readsets import identity
from airflow_provider_omics.readsets.announce import announce_read_sets, claim_announcements, with_read_sets_alias
from airflow_provider_omics.readsets.imports import METHOD_KEY, choose_method, chosen_method
from airflow_provider_omics.readsets.request import REQUEST_FIELDS, check_request, check_store
from airflow_provider_omics.readsets.upload import (
    abort_request,
    complete_or_find,
    complete_upload,
    create_or_reuse,
    find_created_upload,
    reconcile_parts,
    upload_segment,
    upload_segments,
)
from airflow_provider_omics.readsets.verify import digest_skip_reason, digest_source, verify_read_set
from airflow_provider_omics.staging.sources import (
    Fingerprint,
    SourceError,
    StagedSource,
    allow_lists,
    plan_source,
    same_source,
)
from airflow_provider_omics.utils.errors import OmicsInputError, service_errors
from airflow_provider_omics.utils.inputs import as_int, check_file_type, check_store_id, normalize_sources
from airflow_provider_omics.utils.parts import (
    MAX_PART_SIZE,
    PART_SOURCES,
    PartPlanError,
    batch_parts,
    check_part_size,
)
from airflow_provider_omics.utils.payloads import (
    UPLOAD_RECORD_KEY,
    DigestResult,
    PartBatch,
    PartResult,
    PartSegment,
    PlannedSource,
    RunPartResults,
    UploadRecord,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


class OmicsSplitReadSetOperator(StagedSourceOperator):
    """
    Plan the parts of a direct upload from the staged source(s), without reading their content.

    Checks every limit before anything exists on the service (sources exist, are readable non-empty files,
    at most two and two only for FASTQ, the part size, at most 10,000 parts per source, the staging
    allow-lists), fingerprints each source (size and mtime; S3 ETag and VersionId), and plans byte ranges
    grouped into batches so that the number of mapped upload tasks stays at most ``max_tasks`` and never
    above ``[core] max_map_length``.

    Returns a list of kwargs, one per mapped :class:`OmicsUploadReadSetPartOperator`
    (``.expand_kwargs(split.output)``), and pushes the plan per source under the XCom key ``sources``.

    :param sources: one path or URI (local path, ``file://`` or ``s3://``), or two for paired FASTQ
        (read 1 is SOURCE1, read 2 is SOURCE2). (templated)
    :param part_size: bytes per part, at most 100 MiB (104,857,600). (templated)
    :param max_tasks: at most this many mapped upload tasks (default: ``[core] max_map_length``). (templated)
    :param source_file_type: FASTQ, BAM, CRAM or UBAM; when given, two sources are refused unless FASTQ.
        (templated)
    :param source_aws_conn_id: connection that reads ``s3://`` sources; default ``aws_conn_id``. (templated)
    :param allowed_local_roots: directories local sources must lie under (default: ``[omics]
        allowed_local_roots``).
    :param allowed_s3_prefixes: ``s3://bucket/prefix`` values S3 sources must start with (default:
        ``[omics] allowed_s3_prefixes``).
    :param method: ``upload``, ``import`` or ``auto``: also choose how the read set gets into the store
        (:func:`~airflow_provider_omics.readsets.imports.choose_method`), log why, and push the choice
        under the XCom key ``method``; when it is import, no parts are planned. (templated)
    :param role_arn: the import role for ``method`` import or auto; default: ``omics_import_role_arn`` in the
        connection's extra. (templated)
    """

    aws_hook_class = OmicsHook
    template_fields: Sequence[str] = aws_template_fields(
        "sources", "part_size", "max_tasks", "source_file_type", "source_aws_conn_id", "method", "role_arn"
    )
    ui_color = "#d7e8f7"

    def __init__(
        self,
        *,
        sources: str | Sequence[str],
        part_size: int | str = MAX_PART_SIZE,
        max_tasks: int | str | None = None,
        source_file_type: str | None = None,
        source_aws_conn_id: str | None = None,
        allowed_local_roots: str | Sequence[str] | None = None,
        allowed_s3_prefixes: str | Sequence[str] | None = None,
        method: str | None = None,
        role_arn: str | None = None,
        **kwargs: Any,
    ) -> None:
        warn_single_read_set_operator(self, "OmicsPlanSequencingRunOperator (operators.sequencing_run)")
        super().__init__(**kwargs)
        self.sources = sources
        self.part_size = part_size
        self.max_tasks = max_tasks
        self.source_file_type = source_file_type
        self.source_aws_conn_id = source_aws_conn_id
        self.allowed_local_roots = allowed_local_roots
        self.allowed_s3_prefixes = allowed_s3_prefixes
        self.method = method
        self.role_arn = role_arn

    def execute(self, context: Context) -> list[PartBatch]:
        sources = normalize_sources(self.sources)
        choice = None
        if self.method is not None:
            choice = choose_method(self.method, sources, self.role_arn, self.hook, self.aws_conn_id, self.log)
        if self.source_file_type:
            file_type = check_file_type(self.source_file_type)
            if len(sources) == 2 and file_type != "FASTQ":
                raise OmicsInputError(
                    f"Two sources were given for a {file_type} read set: only paired FASTQ has a read 2. "
                    "Give one file, or set the file type to FASTQ."
                )
        part_size = as_int("part_size", self.part_size)
        try:
            check_part_size(part_size)
        except PartPlanError as err:
            raise OmicsInputError(str(err)) from None
        map_limit = conf.getint("core", "max_map_length")
        max_tasks = map_limit if self.max_tasks in (None, "") else as_int("max_tasks", self.max_tasks)
        max_tasks = min(max_tasks, map_limit)
        roots, prefixes = allow_lists(self.allowed_local_roots, self.allowed_s3_prefixes)

        planned: dict[str, PlannedSource] = {}
        staged: list[tuple[StagedSource, Fingerprint]] = []
        for part_source, uri in zip(PART_SOURCES, sources, strict=False):
            label = f"{part_source} ({uri})"
            try:
                source, fingerprint, planned[part_source] = plan_source(
                    functools.partial(self.hook.staged_source, uri), uri, part_source, part_size, roots, prefixes
                )
            except (SourceError, PartPlanError) as err:
                raise OmicsInputError(str(err)) from None
            staged.append((source, fingerprint))
            self.log.info(
                "%s: %d bytes in %d parts of %d bytes",
                label,
                fingerprint.size,
                planned[part_source]["parts"],
                part_size,
            )
        if len(staged) == 2 and same_source(*staged[0], *staged[1]):
            raise OmicsInputError(
                f"Read 1 and read 2 are the same file ({sources[0]} and {sources[1]}): give the two files of the pair."
            )

        try:
            batches = batch_parts([p["parts"] for p in planned.values()], max_tasks)
        except PartPlanError as err:
            raise OmicsInputError(str(err)) from None
        context["ti"].xcom_push(key="sources", value=planned)
        if choice is not None:
            context["ti"].xcom_push(key=METHOD_KEY, value=choice)
            if choice["method"] == "import":
                return []
        self.log.info("%d parts in %d upload tasks (limit %d)", sum(b.count for b in batches), len(batches), max_tasks)
        return [
            PartBatch(
                source_uri=planned[b.part_source]["location"],
                part_source=b.part_source,
                first_part=b.first_part,
                last_part=b.last_part,
                total_parts=b.total_parts,
                part_size=part_size,
                fingerprint=planned[b.part_source]["fingerprint"],
            )
            for b in batches
        ]


class OmicsCreateReadSetUploadOperator(AwsBaseOperator[OmicsHook]):
    """
    Start a direct upload (CreateMultipartReadSetUpload) and return its ``uploadId``.

    Checks the metadata first (store id format, the store exists, file type, a reference for BAM/CRAM, the
    service's length limits), so that bad input creates nothing. The request carries an idempotency token
    (``client_token``), also given to the upload as the tag :data:`~airflow_provider_omics.hooks.omics.REQUEST_TAG`,
    which the read set inherits. So every path converges on one read set:

    - a retried task, and any other run, DAG or deployment asking for the same staged files, sends the same token
      (the request's content, :func:`request_token`) and gets the same upload;
    - a create whose every answer was lost finds its upload by the token;
    - a cleared task or a re-run whose request was already stored finds that read set, returns ``None`` (no
      upload) and records the read set id: the part tasks upload nothing and complete returns it;
    - a read set of the same sample from other staged files is handled as ``on_existing`` says.

    Pushes an :class:`~airflow_provider_omics.utils.payloads.UploadRecord` under the XCom key ``upload``
    (before the request is sent, and again with the upload id), which the part, complete and abort tasks take
    as ``upload_record``.

    :param sequence_store_id: the destination sequence store's id. (templated)
    :param source_file_type: FASTQ, BAM, CRAM or UBAM. (templated)
    :param name: the read set's name. (templated)
    :param subject_id: the subject's id. (templated)
    :param sample_id: the sample's id. (templated)
    :param reference_arn: the reference's ARN; required for BAM and CRAM. (templated)
    :param generated_from: where the file came from. (templated)
    :param description: the read set's description. (templated)
    :param tags: tags for the read set. (templated)
    :param client_token: idempotency token; default derived from the request's sample identity (store, name,
        sample, subject, file type, reference) and the sources' fingerprints, never from the run: every run, DAG or
        deployment asking for the same staged files gets the same upload and read set. (templated)
    :param sources: the split plan (``XComArg(split, key="sources")``): its fingerprints go into the default
        token, so that files staged again (other content) are another request.
        (templated)
    :param method_task_id: the task that chose the path (split with ``method="auto"``): when it chose import,
        this task skips (and with it the part uploads); when it chose upload, an import job of this request
        still running refuses the upload.
    :param on_existing: what to do when the store already holds a read set of this sample (name, sample, subject,
        file type, reference) made from other content: ``fail`` (the default: a FASTQ read set whose ETags equal
        the staged files' digests counts, verify proves it; anything else fails before an upload exists),
        ``skip`` (keep it, unverified) or ``new`` (store the staged files as another read set). A read set of
        this very request (the same staged files) is always reused. (templated)
    """

    aws_hook_class = OmicsHook
    template_fields: Sequence[str] = aws_template_fields(
        "sequence_store_id",
        "source_file_type",
        "name",
        "subject_id",
        "sample_id",
        "reference_arn",
        "generated_from",
        "description",
        "tags",
        "client_token",
        "sources",
        "on_existing",
    )
    template_fields_renderers = {"tags": "json", "sources": "json"}
    ui_color = "#d7e8f7"

    def __init__(
        self,
        *,
        sequence_store_id: str,
        source_file_type: str,
        name: str,
        subject_id: str,
        sample_id: str,
        reference_arn: str | None = None,
        generated_from: str | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        client_token: str | None = None,
        sources: Mapping[str, PlannedSource] | None = None,
        method_task_id: str | None = None,
        on_existing: str = "fail",
        **kwargs: Any,
    ) -> None:
        warn_single_read_set_operator(self, "OmicsCreateRunUploadsOperator (operators.sequencing_run)")
        super().__init__(**kwargs)
        self.sources = sources
        self.method_task_id = method_task_id
        self.on_existing = on_existing
        self.sequence_store_id = sequence_store_id
        self.source_file_type = source_file_type
        self.name = name
        self.subject_id = subject_id
        self.sample_id = sample_id
        self.reference_arn = reference_arn
        self.generated_from = generated_from
        self.description = description
        self.tags = tags
        self.client_token = client_token

    def check_input(self) -> dict[str, Any]:
        """Every check that needs no service call; returns the request."""
        return check_request(**{field: getattr(self, field) for field in REQUEST_FIELDS})

    def request_token(self, context: Context, request: Mapping[str, Any]) -> str:
        """The create request's idempotency token (:func:`~airflow_provider_omics.readsets.identity.request_token`)."""
        return identity.request_token(request, self.sources)

    def execute(self, context: Context) -> str | None:
        ti = context["ti"]
        # Something under the key at once: the abort teardown reads it even when this task fails early.
        ti.xcom_push(key=UPLOAD_RECORD_KEY, value={})
        request = self.check_input()
        on_existing = identity.check_on_existing(self.on_existing)
        store_id = request["sequenceStoreId"]
        token = self.client_token or self.request_token(context, request)
        record = UploadRecord.for_request(request, token)
        in_flight = None
        if self.method_task_id and chosen_method(ti, self.method_task_id) != "upload":
            # The record still goes to the abort teardown: an upload of this request that an earlier try left in
            # progress (it chose a direct upload then) is found by its token and aborted.
            ti.xcom_push(key=UPLOAD_RECORD_KEY, value=record.to_dict())
            raise AirflowSkipException(f"{self.method_task_id} chose an import job: nothing to upload.")
        store = check_store(self.hook, store_id, self.aws_conn_id)
        if self.method_task_id:
            with service_errors("ListReadSetImportJobs", self.aws_conn_id):
                in_flight = self.hook.imports_in_flight(store_id)
        create_or_reuse(
            self.hook,
            request,
            record,
            lambda: ti.xcom_push(key=UPLOAD_RECORD_KEY, value=record.to_dict()),
            self.aws_conn_id,
            self.log,
            imports_in_flight=in_flight,
            on_existing=on_existing,
        )
        if record.read_set_id:
            return None
        self.log.info(
            "Started upload %s of %s read set %r into store %s (%s)",
            record.upload_id,
            request["sourceFileType"],
            request["name"],
            store_id,
            store.get("name", ""),
        )
        return record.upload_id

    def find_created_upload(self, store_id: str, token: str, err: Exception) -> dict[str, Any]:
        """The upload a create whose every answer was lost made: see :func:`find_created_upload`."""
        return find_created_upload(self.hook, store_id, token, err, self.aws_conn_id, self.log)


# How each mapped upload task is named in the UI, with the sources named as the trigger form names them:
# "read 1 (SOURCE1) parts 9-16 of 120", "read 2 (SOURCE2) part 4 of 4".
DEFAULT_MAP_INDEX_TEMPLATE = (
    "{{ 'read 2' if task.part_source == 'SOURCE2' else 'read 1' }} ({{ task.part_source }}) "
    "{% if task.first_part == task.last_part %}part {{ task.first_part }}"
    "{% else %}parts {{ task.first_part }}-{{ task.last_part }}{% endif %} of {{ task.total_parts }}"
)


class OmicsUploadReadSetPartOperator(StagedSourceOperator):
    """
    Upload a batch of consecutive parts of one staged source (UploadReadSetPart), as a mapped task.

    Use it as ``.partial(sequence_store_id=..., upload_id=create.output).expand_kwargs(split.output)``. Re-checks
    the source's fingerprint and refuses a source that changed since split. Streams each part from its byte
    range, ``max_concurrency`` parts at a time, logs bytes and throughput per part, and returns
    ``[{"partNumber", "partSource", "checksum"}, ...]``. A retry re-uploads the same part numbers: the service
    replaces them, and the new checksums are returned.

    :param sequence_store_id: the sequence store's id. (templated)
    :param upload_id: the upload's id (``create.output``). (templated)
    :param source_uri: the staged source (from split). (templated)
    :param part_source: SOURCE1 or SOURCE2 (from split).
    :param first_part: first part number of the batch (from split).
    :param last_part: last part number of the batch (from split).
    :param total_parts: parts of this source in all (from split).
    :param part_size: bytes per part (from split).
    :param fingerprint: the source's fingerprint at split time (from split).
    :param upload_record: the create task's record (``XComArg(create, key="upload")``): when the create task
        found the read set already stored, or the upload already completed into its read set (a cleared task),
        the part task returns no parts instead of uploading. (templated)
    :param segments: instead of one source's batch, a sequencing run's batch (from the run's plan): ranges of
        parts of several samples and sources, each uploaded into its sample's upload. The task then returns
        ``{"parts": {sample: [...]}, "failed": {sample: reason}}``.
    :param upload_records: with ``segments``: the run's create output, sample -> its upload record. (templated)
    :param max_concurrency: parts in flight at once in this task.
    :param source_aws_conn_id: connection that reads ``s3://`` sources; default ``aws_conn_id``. (templated)
    :param map_index_template: how the UI names each mapped task (default: ``read 1 (SOURCE1) parts 9-16 of
        120``, or ``... part 4 of 4`` for one part).
    """

    aws_hook_class = OmicsHook
    template_fields: Sequence[str] = aws_template_fields(
        "sequence_store_id",
        "upload_id",
        "source_uri",
        "max_concurrency",
        "source_aws_conn_id",
        "upload_record",
        "upload_records",
    )
    ui_color = "#b9d7f0"

    def __init__(
        self,
        *,
        sequence_store_id: str,
        upload_id: str | None = None,
        source_uri: str = "",
        part_source: str = "",
        first_part: int = 0,
        last_part: int = -1,
        total_parts: int = 0,
        part_size: int = 0,
        fingerprint: dict[str, Any] | None = None,
        upload_record: Mapping[str, Any] | None = None,
        segments: Sequence[PartSegment] | None = None,
        upload_records: Mapping[str, Any] | None = None,
        max_concurrency: int | str = 4,
        source_aws_conn_id: str | None = None,
        allowed_local_roots: str | Sequence[str] | None = None,
        allowed_s3_prefixes: str | Sequence[str] | None = None,
        map_index_template: str | None = DEFAULT_MAP_INDEX_TEMPLATE,
        **kwargs: Any,
    ) -> None:
        # A default in the signature is what reaches `.partial()`: Airflow reads operator defaults from it.
        super().__init__(map_index_template=map_index_template, **kwargs)
        self.sequence_store_id = sequence_store_id
        self.upload_id = upload_id
        self.source_uri = source_uri
        self.part_source = part_source
        self.first_part = first_part
        self.last_part = last_part
        self.total_parts = total_parts
        self.part_size = part_size
        self.fingerprint = fingerprint or {}
        self.upload_record = upload_record
        self.segments = segments
        self.upload_records = upload_records
        self.max_concurrency = max_concurrency
        self.source_aws_conn_id = source_aws_conn_id
        self.allowed_local_roots = allowed_local_roots
        self.allowed_s3_prefixes = allowed_s3_prefixes

    def execute(self, context: Context) -> list[PartResult] | RunPartResults:
        if self.segments is not None:
            return upload_segments(
                self.hook,
                self.sequence_store_id,
                self.segments,
                self.upload_records or {},
                self.staging(),
                as_int("max_concurrency", self.max_concurrency),
                self.aws_conn_id,
                self.log,
            )
        record = UploadRecord.from_dict(self.upload_record)
        if not self.upload_id:
            if record is not None and record.read_set_id:
                self.log.info("Already stored as read set %s: nothing to upload.", record.read_set_id)
                return []
            raise AirflowFailException("No upload_id: the create task did not start an upload.")
        return self.upload_batch(
            self.upload_id,
            record,
            PartSegment(
                sample="",
                source_uri=self.source_uri,
                part_source=self.part_source,
                first_part=self.first_part,
                last_part=self.last_part,
                total_parts=self.total_parts,
                part_size=self.part_size,
                fingerprint=self.fingerprint,
            ),
        )

    def upload_batch(self, upload_id: str, record: UploadRecord | None, segment: PartSegment) -> list[PartResult]:
        return upload_segment(
            self.hook,
            self.sequence_store_id,
            upload_id,
            record,
            segment,
            self.staging(),
            as_int("max_concurrency", self.max_concurrency),
            self.aws_conn_id,
            self.log,
        )


class OmicsCompleteReadSetUploadOperator(AwsBaseOperator[OmicsHook]):
    """
    Complete the upload (CompleteMultipartReadSetUpload) with the parts the mapped tasks returned.

    Flattens the mapped XComs, checks that the set is whole (every source numbered 1..N, no duplicates, no
    gaps; the totals of the split plan where ``expected_parts`` is given), sorts and completes. Where parts are
    missing from XCom it reconciles with ListReadSetUploadParts before giving up. Returns the ``readSetId``.

    Converges on one read set: when Complete committed but its answer was lost (botocore's retry then finds the
    upload gone), when the task is cleared after it succeeded, or when the create task found the request
    already stored, it finds the read set by the request token of ``upload_record`` (see
    :meth:`~airflow_provider_omics.hooks.omics.OmicsHook.find_read_sets`) and returns it.

    :param sequence_store_id: the sequence store's id. (templated)
    :param upload_id: the upload's id (``create.output``). (templated)
    :param parts: the mapped upload tasks' output (``upload.output``). (templated)
    :param expected_parts: the split plan (its ``sources`` XCom) or a mapping source -> number of parts.
        (templated)
    :param upload_record: the create task's record (``XComArg(create, key="upload")``), to find the read set
        when Complete's answer was lost. (templated)
    """

    aws_hook_class = OmicsHook
    template_fields: Sequence[str] = aws_template_fields(
        "sequence_store_id", "upload_id", "parts", "expected_parts", "upload_record"
    )
    # The read set id first exists here: the console link too.
    operator_extra_links = (OmicsReadSetLink(),)
    ui_color = "#d7e8f7"

    def __init__(
        self,
        *,
        sequence_store_id: str,
        upload_id: str | None,
        parts: Iterable[Any],
        expected_parts: Mapping[str, Any] | None = None,
        upload_record: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        warn_single_read_set_operator(self, "OmicsCompleteRunUploadsOperator (operators.sequencing_run)")
        super().__init__(**kwargs)
        self.sequence_store_id = sequence_store_id
        self.upload_id = upload_id
        self.parts = parts
        self.expected_parts = expected_parts
        self.upload_record = upload_record

    def expected_totals(self) -> dict[str, int] | None:
        if not self.expected_parts:
            return None
        return {
            source: int(value["parts"] if isinstance(value, Mapping) else value)
            for source, value in self.expected_parts.items()
        }

    def reconcile(self, parts: list[dict[str, Any]], expected: Mapping[str, int] | None) -> list[dict[str, Any]]:
        """Fill parts missing from XCom with what the service holds: see :func:`reconcile_parts`."""
        assert self.upload_id
        return reconcile_parts(self.hook, self.sequence_store_id, self.upload_id, parts, expected, self.log)

    def complete(self) -> str:
        assert self.upload_id
        return complete_upload(
            self.hook, self.sequence_store_id, self.upload_id, self.parts or [], self.expected_totals(), self.log
        )

    def execute(self, context: Context) -> str:
        read_set_id = self.complete_or_find()
        persist_read_set_link(context, self, self.sequence_store_id, read_set_id)
        return read_set_id

    def complete_or_find(self) -> str:
        return complete_or_find(
            self.hook,
            self.sequence_store_id,
            self.upload_id,
            self.parts or [],
            self.expected_totals(),
            UploadRecord.from_dict(self.upload_record),
            self.aws_conn_id,
            self.log,
        )


class OmicsAbortReadSetUploadOperator(AwsBaseOperator[OmicsHook]):
    """
    Abort an upload that did not complete, so that a failed run leaves no orphaned upload behind.

    Meant as a teardown of split and create (``abort.as_teardown(setups=[split, create])``): it then also runs
    when create failed, possibly after the service created the upload (every answer lost, or the worker died):
    with ``upload_record`` it finds such uploads in progress by their request token and aborts them. Nothing is
    aborted once a read set came out of the request (``read_set_id`` set, or recorded by create); an upload
    that is already gone is not an error, and when it completed into a read set the log says which.

    :param sequence_store_id: the sequence store's id. (templated)
    :param upload_id: the upload's id (``create.output``); may be empty when create failed. (templated)
    :param read_set_id: the complete task's output; when set the upload completed and nothing is aborted.
        (templated)
    :param upload_record: the create task's record (``XComArg(create, key="upload")``). (templated)
    """

    aws_hook_class = OmicsHook
    template_fields: Sequence[str] = aws_template_fields(
        "sequence_store_id", "upload_id", "read_set_id", "upload_record"
    )
    ui_color = "#f7d7d7"

    def __init__(
        self,
        *,
        sequence_store_id: str,
        upload_id: str | None,
        read_set_id: str | None = None,
        upload_record: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        warn_single_read_set_operator(self, "OmicsAbortRunUploadsOperator (operators.sequencing_run)")
        super().__init__(**kwargs)
        self.sequence_store_id = sequence_store_id
        self.upload_id = upload_id
        self.read_set_id = read_set_id
        self.upload_record = upload_record

    def execute(self, context: Context) -> bool:
        return abort_request(
            self.hook,
            self.sequence_store_id,
            self.upload_id,
            self.read_set_id,
            UploadRecord.from_dict(self.upload_record),
            self.aws_conn_id,
            self.log,
        )


class OmicsDigestSourcesOperator(StagedSourceOperator):
    """
    Compute the digest of each staged FASTQ source in the sequence store's ETag algorithm (MD5up, SHA256up,
    SHA512up: the hash of the uncompressed source), while the parts upload.

    Reads each source once, sequentially (decompression and hashing overlap in two threads), pinned to the
    fingerprint taken by split: the same allow-lists and the same file identity as the part uploads, so a file
    replaced, rewritten or removed since split is refused with a clear message before anything is read. For BAM,
    CRAM and uBAM it reads nothing and says why: their ETags cannot be
    reproduced client-side. Returns ``{"family", "file_type", "sources": {"SOURCE1": {...}}, "skipped"}``.

    :param sequence_store_id: the sequence store's id, whose ``eTagAlgorithmFamily`` is used. (templated)
    :param sources: the split plan (``XComArg(split, key="sources")``). (templated)
    :param source_file_type: FASTQ, BAM, CRAM or UBAM. (templated)
    :param source_aws_conn_id: connection that reads ``s3://`` sources; default ``aws_conn_id``. (templated)
    :param allowed_local_roots: narrows ``[omics] allowed_local_roots``, as for split.
    :param allowed_s3_prefixes: narrows ``[omics] allowed_s3_prefixes``, as for split.
    """

    aws_hook_class = OmicsHook
    template_fields: Sequence[str] = aws_template_fields(
        "sequence_store_id", "sources", "source_file_type", "source_aws_conn_id"
    )
    ui_color = "#e8f0d7"

    def __init__(
        self,
        *,
        sequence_store_id: str,
        sources: Mapping[str, PlannedSource],
        source_file_type: str,
        source_aws_conn_id: str | None = None,
        allowed_local_roots: str | Sequence[str] | None = None,
        allowed_s3_prefixes: str | Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        warn_single_read_set_operator(self, "OmicsDigestRunSourcesOperator (operators.sequencing_run)")
        super().__init__(**kwargs)
        self.sequence_store_id = sequence_store_id
        self.sources = sources
        self.source_file_type = source_file_type
        self.source_aws_conn_id = source_aws_conn_id
        self.allowed_local_roots = allowed_local_roots
        self.allowed_s3_prefixes = allowed_s3_prefixes

    def execute(self, context: Context) -> DigestResult:
        file_type = check_file_type(self.source_file_type)
        reason = digest_skip_reason(file_type)
        if reason:
            self.log.info("Digest skipped: %s", reason)
            return DigestResult(family=None, file_type=file_type, sources={}, skipped=reason)
        store = check_store(self.hook, check_store_id(self.sequence_store_id), self.aws_conn_id)
        family = store.get("eTagAlgorithmFamily") or "MD5up"
        roots, prefixes = allow_lists(self.allowed_local_roots, self.allowed_s3_prefixes)
        digests = {
            part_source: digest_source(self.hook, part_source, planned, family, roots, prefixes, self.log)
            for part_source, planned in sorted(self.sources.items())
        }
        return DigestResult(family=family, file_type=file_type, sources=digests, skipped=None)


class OmicsVerifyReadSetOperator(AwsBaseOperator[OmicsHook]):
    """
    Prove that the stored read set is the staged data: compare its ETags with the staged sources' digests.

    For FASTQ, ``etag.source1``/``etag.source2`` must equal the digests computed by
    :class:`OmicsDigestSourcesOperator`; a mismatch fails the task and names the source. For BAM, CRAM and
    uBAM the ETag check is skipped (and the log says why); for every type the stored ``contentLength`` of each
    source must equal the staged size. Returns a summary of what was checked.

    :param sequence_store_id: the sequence store's id. (templated)
    :param read_set_id: the read set (``complete.output``). (templated)
    :param digests: the digest task's output. (templated)
    :param sources: the split plan (``XComArg(split, key="sources")``), for the staged sizes. (templated)
    :param emit_asset_event: emit an asset event for the verified read set on its store's asset
        (:mod:`airflow_provider_omics.assets.omics`), so that DAGs scheduled on the store run; a read set verified
        and announced before (its verified tag, :mod:`airflow_provider_omics.readsets.announce`) is not announced
        again. (default: True)
    :param request_task_ids: the tasks whose upload record (XCom ``upload``) says how the read set was found
        (create, the import task): one kept with ``on_existing="skip"`` is not verified, one adopted (another
        request's) must prove its content by its ETags.
    """

    aws_hook_class = OmicsHook
    template_fields: Sequence[str] = aws_template_fields("sequence_store_id", "read_set_id", "digests", "sources")
    operator_extra_links = (OmicsReadSetLink(),)
    ui_color = "#e8f0d7"

    def __init__(
        self,
        *,
        sequence_store_id: str,
        read_set_id: str,
        digests: DigestResult | None,
        sources: Mapping[str, PlannedSource],
        emit_asset_event: bool = True,
        request_task_ids: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        warn_single_read_set_operator(self, "OmicsVerifyRunReadSetsOperator (operators.sequencing_run)")
        super().__init__(**with_read_sets_alias(kwargs, emit_asset_event))
        self.sequence_store_id = sequence_store_id
        self.read_set_id = read_set_id
        self.digests = digests
        self.sources = sources
        self.request_task_ids = request_task_ids

    def execute(self, context: Context) -> dict[str, Any]:
        persist_read_set_link(context, self, self.sequence_store_id, self.read_set_id)
        records = [
            UploadRecord.from_dict(context["ti"].xcom_pull(task_ids=task_id, key=UPLOAD_RECORD_KEY))
            for task_id in self.request_task_ids
        ]
        record = next((r for r in records if r is not None and r.read_set_id == self.read_set_id), None)
        if record is not None and record.skip_verify:
            self.log.info("Read set %s was kept with on_existing=skip: not verified, not announced.", self.read_set_id)
            return {"read_set_id": self.read_set_id, "etag_verified": False, "skipped": "on_existing=skip"}
        verified = verify_read_set(
            self.hook,
            self.sequence_store_id,
            self.read_set_id,
            self.digests,
            self.sources,
            self.log,
            adopted=record is not None and record.adopted,
        )
        announce_read_sets(context, self, self.sequence_store_id, claim_announcements(self.hook, [verified], self.log))
        return verified


# -- the steps, shared by the operators of one read set and those of a sequencing run ----------------------------
