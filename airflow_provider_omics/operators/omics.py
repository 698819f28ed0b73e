"""Operators of one read set's direct upload: the mapped part upload every pipeline uses, and the single read set's
own steps (split, create, complete, abort, digest, verify), deprecated: ``upload_read_set`` builds a read set's
upload as a sequencing run of one sample (:mod:`airflow_provider_omics.operators.sequencing_run`).

Each deprecated operator takes its arguments, runs one step of :mod:`airflow_provider_omics.readsets` and returns
what it returned before, so that DAGs wired by hand keep working for one release.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

from airflow_provider_omics.hooks.omics import OmicsHook
from airflow_provider_omics.links.omics import OmicsReadSetLink
from airflow_provider_omics.operators.base import (
    DeprecatedReadSetOperator,
    ReadSetRequestOperator,
    StagedSourceOperator,
    persist_read_set_link,
)
from airflow_provider_omics.readsets import identity
from airflow_provider_omics.readsets.announce import announce_read_sets, claim_announcements, with_read_sets_alias
from airflow_provider_omics.readsets.imports import METHOD_KEY, choose_method, chosen_method
from airflow_provider_omics.readsets.request import REQUEST_FIELDS, check_store
from airflow_provider_omics.readsets.upload import (
    abort_request,
    complete_or_find,
    create_or_reuse,
    upload_segment,
    upload_segments,
)
from airflow_provider_omics.readsets.verify import digest_skip_reason, digest_source, verify_read_set
from airflow_provider_omics.staging.sources import allow_lists, plan_read_set_sources
from airflow_provider_omics.utils.errors import OmicsInputError, service_errors
from airflow_provider_omics.utils.inputs import as_int, check_file_type, check_store_id, normalize_sources, task_budget
from airflow_provider_omics.utils.parts import MAX_PART_SIZE, PartPlanError, batch_parts
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

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """As ``BaseOperator.partial``, with this operator's labels unless told otherwise: Airflow 3.3 reads the
        default from ``__init__``'s signature, earlier releases map with ``map_index_template=None``."""
        kwargs.setdefault("map_index_template", DEFAULT_MAP_INDEX_TEMPLATE)
        return super().partial(**kwargs)

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
        segment = PartSegment(
            sample="",
            source_uri=self.source_uri,
            part_source=self.part_source,
            first_part=self.first_part,
            last_part=self.last_part,
            total_parts=self.total_parts,
            part_size=self.part_size,
            fingerprint=self.fingerprint,
        )
        return upload_segment(
            self.hook,
            self.sequence_store_id,
            self.upload_id,
            record,
            segment,
            self.staging(),
            as_int("max_concurrency", self.max_concurrency),
            self.aws_conn_id,
            self.log,
        )


class OmicsSplitReadSetOperator(DeprecatedReadSetOperator, StagedSourceOperator):
    """
    Deprecated: use :class:`~airflow_provider_omics.operators.sequencing_run.OmicsPlanSequencingRunOperator`.
    Plan the parts of one read set's upload from its staged source(s) without reading their content
    (:func:`~airflow_provider_omics.staging.sources.plan_read_set_sources`: every check before anything exists on
    the service, each source fingerprinted), in at most ``max_tasks`` batches. Returns one kwargs per mapped
    :class:`OmicsUploadReadSetPartOperator` (``.expand_kwargs(split.output)``); pushes the plan per source under
    the XCom key ``sources``.

    :param sources: one path or URI (local, ``file://``, ``s3://``), or two for paired FASTQ. (templated)
    :param part_size: bytes per part, at most 100 MiB. (templated)
    :param max_tasks: at most this many mapped upload tasks (default: ``[core] max_map_length``). (templated)
    :param source_file_type: when given, two sources are refused unless FASTQ. (templated)
    :param source_aws_conn_id: connection that reads ``s3://`` sources; default ``aws_conn_id``. (templated)
    :param allowed_local_roots: narrows ``[omics] allowed_local_roots``.
    :param allowed_s3_prefixes: narrows ``[omics] allowed_s3_prefixes``.
    :param method: ``upload``, ``import`` or ``auto``: also choose the path and push it under the XCom key
        ``method`` (:func:`~airflow_provider_omics.readsets.imports.choose_method`). (templated)
    :param role_arn: the import role for ``method`` import or auto. (templated)
    """

    template_fields: Sequence[str] = aws_template_fields(
        "sources", "part_size", "max_tasks", "source_file_type", "source_aws_conn_id", "method", "role_arn"
    )
    ui_color = "#d7e8f7"
    instead = "OmicsPlanSequencingRunOperator"

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
        file_type = check_file_type(self.source_file_type) if self.source_file_type else None
        part_size = as_int("part_size", self.part_size)
        max_tasks = task_budget(self.max_tasks)
        planned = plan_read_set_sources(
            self.hook.staged_source, sources, part_size, *self.staging(), file_type=file_type, log=self.log
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


class OmicsCreateReadSetUploadOperator(ReadSetRequestOperator):
    """
    Deprecated: use :class:`~airflow_provider_omics.operators.sequencing_run.OmicsCreateRunUploadsOperator`.
    Start one read set's direct upload (CreateMultipartReadSetUpload, :func:`~airflow_provider_omics.readsets.
    upload.create_or_reuse`) and return its ``uploadId``, or ``None`` when the request's read set is already
    stored. Every check runs before the request; its token (:func:`~airflow_provider_omics.readsets.identity.
    request_token`: the request's content and the sources' fingerprints) makes every retry, clear and re-run
    converge on one read set. Pushes the :class:`~airflow_provider_omics.utils.payloads.UploadRecord` under the
    XCom key ``upload`` (for the part, complete and abort tasks' ``upload_record``).

    :param client_token: idempotency token; default derived from the request and the sources. (templated)
    :param sources: the split plan (``XComArg(split, key="sources")``): its fingerprints go into the token.
        (templated)
    :param method_task_id: the split task that chose the path (``method="auto"``): when it chose import, this
        task skips; when it chose upload, a running import job of this request refuses the upload.

    The read set's metadata and ``on_existing`` are :class:`~airflow_provider_omics.operators.base.
    ReadSetRequestOperator`'s.
    """

    template_fields: Sequence[str] = aws_template_fields(*REQUEST_FIELDS, "client_token", "sources", "on_existing")
    template_fields_renderers = {"tags": "json", "sources": "json"}
    ui_color = "#d7e8f7"
    instead = "OmicsCreateRunUploadsOperator"

    def __init__(
        self,
        *,
        client_token: str | None = None,
        sources: Mapping[str, PlannedSource] | None = None,
        method_task_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.client_token = client_token
        self.sources = sources
        self.method_task_id = method_task_id

    def execute(self, context: Context) -> str | None:
        ti = context["ti"]
        # Something under the key at once: the abort teardown reads it even when this task fails early.
        ti.xcom_push(key=UPLOAD_RECORD_KEY, value={})
        request = self.checked_request()
        on_existing = identity.check_on_existing(self.on_existing)
        store_id = request["sequenceStoreId"]
        record = UploadRecord.for_request(request, self.client_token or identity.request_token(request, self.sources))
        if self.method_task_id and chosen_method(ti, self.method_task_id) != "upload":
            # The abort teardown still gets the record: an upload an earlier try left in progress is aborted.
            ti.xcom_push(key=UPLOAD_RECORD_KEY, value=record.to_dict())
            raise AirflowSkipException(f"{self.method_task_id} chose an import job: nothing to upload.")
        store = check_store(self.hook, store_id, self.aws_conn_id)
        in_flight = None
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


class OmicsCompleteReadSetUploadOperator(DeprecatedReadSetOperator):
    """
    Deprecated: use :class:`~airflow_provider_omics.operators.sequencing_run.OmicsCompleteRunUploadsOperator`.
    Complete one read set's upload with the parts the mapped tasks returned, or find its read set by the request
    token when it was already completed (:func:`~airflow_provider_omics.readsets.upload.complete_or_find`: the
    part set checked whole, parts missing from XCom reconciled with the service). Returns the ``readSetId``.

    :param sequence_store_id: the sequence store's id. (templated)
    :param upload_id: the upload's id (``create.output``). (templated)
    :param parts: the mapped upload tasks' output (``upload.output``). (templated)
    :param expected_parts: the split plan (its ``sources`` XCom) or a mapping source -> number of parts.
        (templated)
    :param upload_record: the create task's record (``XComArg(create, key="upload")``). (templated)
    """

    template_fields: Sequence[str] = aws_template_fields(
        "sequence_store_id", "upload_id", "parts", "expected_parts", "upload_record"
    )
    # The read set id first exists here: the console link too.
    operator_extra_links = (OmicsReadSetLink(),)
    ui_color = "#d7e8f7"
    instead = "OmicsCompleteRunUploadsOperator"

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
        super().__init__(**kwargs)
        self.sequence_store_id = sequence_store_id
        self.upload_id = upload_id
        self.parts = parts
        self.expected_parts = expected_parts
        self.upload_record = upload_record

    def execute(self, context: Context) -> str:
        expected = None
        if self.expected_parts:
            expected = {
                source: int(value["parts"] if isinstance(value, Mapping) else value)
                for source, value in self.expected_parts.items()
            }
        read_set_id = complete_or_find(
            self.hook,
            self.sequence_store_id,
            self.upload_id,
            self.parts or [],
            expected,
            UploadRecord.from_dict(self.upload_record),
            self.aws_conn_id,
            self.log,
        )
        persist_read_set_link(context, self, self.sequence_store_id, read_set_id)
        return read_set_id


class OmicsAbortReadSetUploadOperator(DeprecatedReadSetOperator):
    """
    Deprecated: use :class:`~airflow_provider_omics.operators.sequencing_run.OmicsAbortRunUploadsOperator`.
    Abort one read set's upload that did not complete, also one a create whose answers were lost started (found
    by the request token of ``upload_record``): :func:`~airflow_provider_omics.readsets.upload.abort_request`.
    Meant as a teardown of split and create; nothing is aborted once a read set came out of the request.

    :param sequence_store_id: the sequence store's id. (templated)
    :param upload_id: the upload's id (``create.output``); may be empty when create failed. (templated)
    :param read_set_id: the complete task's output; when set nothing is aborted. (templated)
    :param upload_record: the create task's record (``XComArg(create, key="upload")``). (templated)
    """

    template_fields: Sequence[str] = aws_template_fields(
        "sequence_store_id", "upload_id", "read_set_id", "upload_record"
    )
    ui_color = "#f7d7d7"
    instead = "OmicsAbortRunUploadsOperator"

    def __init__(
        self,
        *,
        sequence_store_id: str,
        upload_id: str | None,
        read_set_id: str | None = None,
        upload_record: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
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


class OmicsDigestSourcesOperator(DeprecatedReadSetOperator, StagedSourceOperator):
    """
    Deprecated: use :class:`~airflow_provider_omics.operators.sequencing_run.OmicsDigestRunSourcesOperator`.
    Digest each staged FASTQ source of one read set in the store's ETag algorithm, pinned to split's fingerprint
    (:func:`~airflow_provider_omics.readsets.verify.digest_source`); for BAM, CRAM and uBAM it reads nothing and
    says why. Returns a :class:`~airflow_provider_omics.utils.payloads.DigestResult`.

    :param sequence_store_id: the sequence store's id, whose ``eTagAlgorithmFamily`` is used. (templated)
    :param sources: the split plan (``XComArg(split, key="sources")``). (templated)
    :param source_file_type: FASTQ, BAM, CRAM or UBAM. (templated)
    :param source_aws_conn_id: connection that reads ``s3://`` sources; default ``aws_conn_id``. (templated)
    :param allowed_local_roots: narrows ``[omics] allowed_local_roots``, as for split.
    :param allowed_s3_prefixes: narrows ``[omics] allowed_s3_prefixes``, as for split.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "sequence_store_id", "sources", "source_file_type", "source_aws_conn_id"
    )
    ui_color = "#e8f0d7"
    instead = "OmicsDigestRunSourcesOperator"

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


class OmicsVerifyReadSetOperator(DeprecatedReadSetOperator):
    """
    Deprecated: use :class:`~airflow_provider_omics.operators.sequencing_run.OmicsVerifyRunReadSetsOperator`.
    Prove that one stored read set is the staged data (:func:`~airflow_provider_omics.readsets.verify.
    verify_read_set`: each source's stored size, and for FASTQ its ETag against the digest) and announce it once
    on its store's asset. Returns what was checked.

    :param sequence_store_id: the sequence store's id. (templated)
    :param read_set_id: the read set (``complete.output``). (templated)
    :param digests: the digest task's output. (templated)
    :param sources: the split plan (``XComArg(split, key="sources")``), for the staged sizes. (templated)
    :param emit_asset_event: emit an asset event for the verified read set on its store's asset. (default: True)
    :param request_task_ids: the tasks whose upload record (XCom ``upload``) says how the read set was found: one
        kept with ``on_existing="skip"`` is not verified, one adopted must prove its content by its ETags.
    """

    template_fields: Sequence[str] = aws_template_fields("sequence_store_id", "read_set_id", "digests", "sources")
    operator_extra_links = (OmicsReadSetLink(),)
    ui_color = "#e8f0d7"
    instead = "OmicsVerifyRunReadSetsOperator"

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
