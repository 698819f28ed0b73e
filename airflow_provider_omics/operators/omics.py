"""Operators of a HealthOmics direct upload: split, create, upload part (mapped), complete, abort; digest, verify.

Thin operators over :class:`~airflow_provider_omics.hooks.omics.OmicsHook`: they hold the parameters, the
templating, the checks of user input and the Airflow lifecycle; the hook holds every boto3 call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    conf,
)
from airflow.sdk import AssetAlias, BaseOperator
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError, NoCredentialsError

from airflow_provider_omics.assets.omics import (
    READ_SETS_ALIAS,
    emit_read_sets_event,
    read_set_entry,
    read_sets_alias,
    read_sets_event_extra,
)
from airflow_provider_omics.hooks.omics import REQUEST_TAG, OmicsHook, error_code, is_transient
from airflow_provider_omics.links.omics import OmicsReadSetLink
from airflow_provider_omics.readsets import Logger, identity
from airflow_provider_omics.readsets.announce import claim_announcements
from airflow_provider_omics.utils.errors import OmicsInputError, service_errors, service_failure, source_errors
from airflow_provider_omics.utils.inputs import (
    allow_lists,
    as_int,
    check_file_type,
    check_reference,
    check_store_id,
    check_text,
    normalize_sources,
)
from airflow_provider_omics.utils.parts import (
    MAX_PART_SIZE,
    PART_SOURCES,
    RUN_CHECKSUMS_LIMIT,
    PartPlanError,
    PartRange,
    batch_parts,
    check_complete_parts,
    check_part_count,
    check_part_size,
    compact_parts,
    fit_part_runs,
    flatten_part_results,
    missing_parts,
    part_range,
)
from airflow_provider_omics.utils.payloads import (
    UPLOAD_RECORD_KEY,
    DigestResult,
    PartBatch,
    PartResult,
    PartSegment,
    PlannedSource,
    RunPartResults,
    SourceDigest,
    UploadRecord,
)
from airflow_provider_omics.utils.sources import (
    Fingerprint,
    SourceError,
    StagedSource,
    reopen_source,
    same_source,
    stage_source,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


def _staged(
    hook: OmicsHook, uri: str, roots: Sequence[str], prefixes: Sequence[str]
) -> tuple[StagedSource, Fingerprint]:
    """A staged source and its fingerprint, through the one staging gateway (:func:`stage_source`)."""
    return stage_source(lambda: hook.staged_source(uri), roots, prefixes)


def _only_read_set(found: Sequence[Mapping[str, Any]], token: str) -> str:
    """The one read set a request produced; several cannot be told apart, and that is said, not guessed."""
    if len(found) > 1:
        ids = ", ".join(str(read_set["id"]) for read_set in found)
        raise AirflowFailException(
            f"Read sets {ids} all carry the request token {token}: which one this run stored cannot be told. "
            "Keep one (delete the others) and clear the task."
        )
    return str(found[0]["id"])


def _stored_read_set(
    hook: OmicsHook, record: UploadRecord | None, upload_id: str | None, aws_conn_id: str | None
) -> str | None:
    """The read set that the record's request produced (through ``upload_id`` when given), or None.

    Without a record (operators wired without ``upload_record``) there is nothing to look for by.
    """
    if record is None:
        return None
    with service_errors("Looking for the read set of this request", aws_conn_id):
        found = hook.find_read_sets(
            record.sequence_store_id,
            record.client_token,
            name=record.name,
            sample_id=record.sample_id,
            subject_id=record.subject_id,
            upload_id=upload_id,
            created_after=record.upload_created if upload_id == record.upload_id else None,
        )
    return _only_read_set(found, record.client_token) if found else None


def _check_store(hook: OmicsHook, store_id: str, aws_conn_id: str | None) -> dict[str, Any]:
    """GetSequenceStore, with the one clear message for a store that does not exist (or missing credentials)."""
    try:
        return hook.get_sequence_store(store_id)
    except ClientError as err:
        if error_code(err) in ("ResourceNotFoundException", "ValidationException"):
            raise OmicsInputError(
                f"Sequence store {store_id} does not exist in region {hook.conn_region_name} for connection "
                f"{aws_conn_id!r}. Check the id and the connection's region."
            ) from None
        raise service_failure(err, "GetSequenceStore", aws_conn_id) from None
    except NoCredentialsError:
        raise AirflowFailException(
            f"No AWS credentials were found for connection {aws_conn_id!r}: set its login/password, a role, or "
            "the workers' default credentials."
        ) from None


def _persist_read_set_link(
    context: Context, operator: AwsBaseOperator[OmicsHook], store_id: str, read_set_id: str
) -> None:
    OmicsReadSetLink.persist(
        context=context,
        operator=operator,
        region_name=operator.hook.conn_region_name,
        aws_partition=operator.hook.conn_partition,
        sequence_store_id=store_id,
        read_set_id=read_set_id,
    )


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else (str(value) if value else None)


def request_token(request: Mapping[str, Any], sources: Mapping[str, PlannedSource] | None) -> str:
    """A create request's idempotency token: its sample identity and staged content, never the run that asks
    (see :func:`~airflow_provider_omics.readsets.identity.request_token`)."""
    return identity.request_token(request, sources)


def create_or_reuse(
    hook: OmicsHook,
    request: Mapping[str, Any],
    record: UploadRecord,
    push: Callable[[], None],
    aws_conn_id: str | None,
    log: Logger,
    imports_in_flight: Mapping[str, str] | None = None,
    on_existing: str | None = None,
) -> UploadRecord:
    """Start the upload of ``request`` (CreateMultipartReadSetUpload), or find what its token already made.

    ``record`` carries the token and is filled in: ``read_set_id`` when the request is already stored (nothing is
    created), by any run or path (the token is the request's content: ``method="auto"`` tags both paths' read sets
    with it), else ``upload_id`` and ``upload_created``. ``push`` publishes the record before the request is sent
    and after every change, so that the abort teardown can find an upload whose creation committed although its
    answer was lost. ``imports_in_flight`` (token -> job id, see :meth:`OmicsHook.imports_in_flight`): an import
    job of this request still running refuses the upload, which would store the read set a second time.

    ``on_existing`` (``fail``, ``skip``, ``new``): also look at the read sets the store holds of the request's
    sample identity from other content, and act as :func:`~airflow_provider_omics.readsets.identity.
    resolve_existing` decides (a sequencing run's plan has done that already: None).
    """
    store_id, token = record.sequence_store_id, record.client_token
    if imports_in_flight and token in imports_in_flight:
        raise AirflowFailException(
            f"Import job {imports_in_flight[token]} of this request is still running (an earlier try or another run "
            "chose method=import): uploading it too would store the read set twice. Let the job finish, then clear "
            "the task: the read set it imports is reused."
        )
    # Before the request is sent: if its answer is lost, the teardown can still find the upload by its token.
    push()
    if on_existing is not None:
        with service_errors("Looking for read sets of this sample already in the store", aws_conn_id):
            same, other = identity.existing_read_sets(hook, store_id, request, token)
        resolution = identity.resolve_existing(
            same, other, on_existing, request["sourceFileType"], f"{request['name']} (sample {request['sampleId']})"
        )
        if resolution.action == "fail":
            raise AirflowFailException(resolution.reason)
        if resolution.action != "upload":
            record.read_set_id = resolution.read_set_id
            record.adopted = resolution.adopted
            record.skip_verify = resolution.skip_verify
            push()
            log.info("Nothing is uploaded: %s.", resolution.reason)
            return record
        if resolution.reason:
            log.info("%s.", resolution.reason)
    else:
        with service_errors("Looking for a read set this request already stored", aws_conn_id):
            stored = hook.find_read_sets(
                store_id,
                token,
                name=record.name,
                sample_id=record.sample_id,
                subject_id=record.subject_id,
                creation_type=None,
            )
        if stored:
            record.read_set_id = _only_read_set(stored, token)
            push()
            log.info(
                "This request (the same sample from the same staged files) was already stored as read set %s (%s): "
                "reusing it, nothing is uploaded again.",
                record.read_set_id,
                stored[0].get("status"),
            )
            return record
    tags = {**(request["tags"] or {}), REQUEST_TAG: token}
    try:
        response = hook.create_multipart_read_set_upload(
            store_id,
            request["sourceFileType"],
            request["name"],
            request["subjectId"],
            request["sampleId"],
            reference_arn=request["referenceArn"],
            generated_from=request["generatedFrom"],
            description=request["description"],
            tags=tags,
            client_token=token,
        )
    except ClientError as err:
        raise service_failure(err, "CreateMultipartReadSetUpload", aws_conn_id) from None
    except (ConnectionError, HTTPClientError) as err:
        # botocore retried with the same token and every answer was lost: the service may have created it.
        response = find_created_upload(hook, store_id, token, err, aws_conn_id, log)
    record.upload_id = response["uploadId"]
    record.upload_created = _iso(response.get("creationTime"))
    push()
    return record


def find_created_upload(
    hook: OmicsHook, store_id: str, token: str, err: Exception, aws_conn_id: str | None, log: Logger
) -> dict[str, Any]:
    """The upload a create whose every answer was lost made, found by its token; else a retryable error."""
    with service_errors("Looking for the upload of a create whose answer was lost", aws_conn_id):
        uploads = hook.find_uploads(store_id, token)
    if len(uploads) == 1:
        log.warning("CreateMultipartReadSetUpload's answer was lost (%s); found its upload by token.", err)
        return uploads[0]
    if len(uploads) > 1:
        ids = ", ".join(u["uploadId"] for u in uploads)
        raise AirflowFailException(
            f"CreateMultipartReadSetUpload's answer was lost and uploads {ids} carry its token {token}: "
            "the abort task aborts them; trigger a new run."
        )
    raise AirflowException(
        f"CreateMultipartReadSetUpload got no answer ({err}) and no upload carries its token: it did not "
        "reach the service. A retry of this task sends the same token."
    )


class _StagedSourceOperator(AwsBaseOperator[OmicsHook]):
    """An operator that reads staged sources, through ``source_aws_conn_id`` for S3 when it is set."""

    aws_hook_class = OmicsHook
    source_aws_conn_id: str | None

    @property
    def _hook_parameters(self) -> dict[str, Any]:
        return {**super()._hook_parameters, "source_aws_conn_id": self.source_aws_conn_id}


class OmicsSplitReadSetOperator(_StagedSourceOperator):
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
        (:func:`~airflow_provider_omics.operators.omics_import.choose_method`), log why, and push the choice
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
            from airflow_provider_omics.operators.omics_import import METHOD_KEY, choose_method

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
                source, fingerprint = _staged(self.hook, uri, roots, prefixes)
                if fingerprint.size == 0:
                    raise SourceError(f"Staged source {uri} is empty. Stage the complete file before uploading.")
                total = check_part_count(label, fingerprint.size, part_size)
            except (SourceError, PartPlanError) as err:
                raise OmicsInputError(str(err)) from None
            staged.append((source, fingerprint))
            planned[part_source] = PlannedSource(
                uri=uri,
                # What the later tasks open: the file that was opened here, not what the path may name later.
                location=source.location,
                size=fingerprint.size,
                parts=total,
                part_size=part_size,
                fingerprint=fingerprint.to_dict(),
            )
            self.log.info("%s: %d bytes in %d parts of %d bytes", label, fingerprint.size, total, part_size)
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
        """The create request's idempotency token: see :func:`request_token`."""
        return request_token(request, self.sources)

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
        if self.method_task_id:
            from airflow_provider_omics.operators.omics_import import chosen_method

            if chosen_method(ti, self.method_task_id) != "upload":
                # The record still goes to the abort teardown: an upload of this request that an earlier try
                # left in progress (it chose a direct upload then) is found by its token and aborted.
                ti.xcom_push(key=UPLOAD_RECORD_KEY, value=record.to_dict())
                raise AirflowSkipException(f"{self.method_task_id} chose an import job: nothing to upload.")
        store = _check_store(self.hook, store_id, self.aws_conn_id)
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


class OmicsUploadReadSetPartOperator(_StagedSourceOperator):
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
            return self.upload_segments()
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

    def upload_segments(self) -> RunPartResults:
        """A run's batch: each segment's parts into its sample's upload (from ``upload_records``).

        A sample whose segment cannot be uploaded for good (its source changed or vanished, a permanent service
        error) is reported in ``failed`` and the other samples' segments carry on; complete aborts that sample.
        A transient failure fails the task after the other segments, so that Airflow retries it. The parts are
        returned compact (:class:`~airflow_provider_omics.utils.payloads.PartRun`).
        """
        results = RunPartResults(parts={}, failed={})
        transient: list[str] = []
        for segment in self.segments or []:
            sample = segment["sample"]
            if sample in results["failed"]:
                continue
            entry = (self.upload_records or {}).get(sample) or {}
            record = UploadRecord.from_dict(entry.get("record", entry))
            if record is None or not record.upload_id:
                if record is not None and record.read_set_id:
                    self.log.info("%s: already stored as read set %s: nothing to upload.", sample, record.read_set_id)
                else:
                    results["failed"][sample] = "no upload was started for it (see the create task)"
                continue
            try:
                parts = self.upload_batch(record.upload_id, record, segment)
            except AirflowFailException as err:
                self.log.error("%s: %s", sample, err)
                results["failed"][sample] = str(err)
                results["parts"].pop(sample, None)
                continue
            except AirflowException as err:
                self.log.error("%s: %s", sample, err)
                transient.append(f"{sample}: {err}")
                continue
            results["parts"].setdefault(sample, []).extend(compact_parts(parts))
        if transient:
            raise AirflowException("Parts of these samples failed and may succeed on a retry: " + "; ".join(transient))
        carried = fit_part_runs(results["parts"], RUN_CHECKSUMS_LIMIT)
        if carried > RUN_CHECKSUMS_LIMIT:
            self.log.info(
                "%d characters of checksums are more than XCom should carry (%d): complete reads them back from "
                "the service (ListReadSetUploadParts).",
                carried,
                RUN_CHECKSUMS_LIMIT,
            )
        return results

    def upload_batch(self, upload_id: str, record: UploadRecord | None, segment: PartSegment) -> list[PartResult]:
        """Upload one segment's parts (consecutive parts of one source) into ``upload_id``."""
        part_source = segment["part_source"]
        fingerprint = Fingerprint.from_dict(segment["fingerprint"])
        roots, prefixes = allow_lists(self.allowed_local_roots, self.allowed_s3_prefixes)
        with source_errors():
            source = reopen_source(lambda: self.hook.staged_source(segment["source_uri"]), roots, prefixes)
        ranges = [
            part_range(part_source, n, fingerprint.size, segment["part_size"])
            for n in range(segment["first_part"], segment["last_part"] + 1)
        ]
        total_bytes = sum(r.length for r in ranges)

        def log_part(part: PartRange, seconds: float) -> None:
            self.log.info(
                "%s part %d of %d: %d bytes in %.2f s (%.1f MB/s)",
                part.part_source,
                part.part_number,
                segment["total_parts"],
                part.length,
                seconds,
                part.length / max(seconds, 1e-9) / 1e6,
            )

        started = time.monotonic()
        try:
            with source_errors():
                parts = self.hook.upload_parts(
                    self.sequence_store_id,
                    upload_id,
                    source,
                    fingerprint,
                    ranges,
                    max_concurrency=as_int("max_concurrency", self.max_concurrency),
                    on_part=log_part,
                )
        except ClientError as err:
            if error_code(err) == "ResourceNotFoundException":
                # A cleared part task of an upload that completed: its parts are in the read set already.
                stored = _stored_read_set(self.hook, record, upload_id, self.aws_conn_id)
                if stored:
                    self.log.info("Upload %s already completed as read set %s: nothing to upload.", upload_id, stored)
                    return []
            raise service_failure(
                err, f"UploadReadSetPart ({part_source} of upload {upload_id})", self.aws_conn_id
            ) from None
        seconds = time.monotonic() - started
        self.log.info(
            "Uploaded %s parts %d-%d: %d bytes in %.2f s (%.1f MB/s)",
            part_source,
            segment["first_part"],
            segment["last_part"],
            total_bytes,
            seconds,
            total_bytes / max(seconds, 1e-9) / 1e6,
        )
        return parts


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
        _persist_read_set_link(context, self, self.sequence_store_id, read_set_id)
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


# Read sets whose ETag a client can reproduce: the hash of the uncompressed FASTQ. BAM/CRAM ETags are computed
# by the service from the SAM representation against the reference (HealthOmics User Guide, "How ETags are
# calculated"), uBAM's likewise.
VERIFIABLE_FILE_TYPES = ("FASTQ",)


class OmicsDigestSourcesOperator(_StagedSourceOperator):
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
        store = _check_store(self.hook, check_store_id(self.sequence_store_id), self.aws_conn_id)
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
        super().__init__(**with_read_sets_alias(kwargs, emit_asset_event))
        self.sequence_store_id = sequence_store_id
        self.read_set_id = read_set_id
        self.digests = digests
        self.sources = sources
        self.request_task_ids = request_task_ids

    def execute(self, context: Context) -> dict[str, Any]:
        _persist_read_set_link(context, self, self.sequence_store_id, self.read_set_id)
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


# The operator attributes that make a read set's request (those of create, and of the import path's operator).
REQUEST_FIELDS = (
    "sequence_store_id",
    "source_file_type",
    "reference_arn",
    "name",
    "subject_id",
    "sample_id",
    "generated_from",
    "description",
    "tags",
)


def check_request(
    *,
    sequence_store_id: Any,
    source_file_type: Any,
    reference_arn: Any,
    name: Any,
    subject_id: Any,
    sample_id: Any,
    generated_from: Any = None,
    description: Any = None,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Every check of a create request that needs no service call; returns the request."""
    file_type = check_file_type(source_file_type)
    return {
        "sequenceStoreId": check_store_id(sequence_store_id),
        "sourceFileType": file_type,
        "referenceArn": check_reference(file_type, reference_arn),
        "name": check_text("name", name),
        "subjectId": check_text("subject_id", subject_id),
        "sampleId": check_text("sample_id", sample_id),
        "generatedFrom": check_text("generated_from", generated_from),
        "description": check_text("description", description),
        "tags": dict(tags) if tags else None,
    }


def reconcile_parts(
    hook: OmicsHook,
    sequence_store_id: str,
    upload_id: str,
    parts: list[dict[str, Any]],
    expected: Mapping[str, int] | None,
    log: Logger,
) -> list[dict[str, Any]]:
    """Fill parts missing from XCom with what the service holds (ListReadSetUploadParts)."""
    if expected is None:
        sources = {p["partSource"] for p in parts} | {"SOURCE1"}
        expected = {s: max([p["partNumber"] for p in parts if p["partSource"] == s], default=1) for s in sources}
    missing = missing_parts(parts, expected)
    if not missing:
        return parts
    log.warning("Parts missing from XCom, asking the service: %s", {s: len(n) for s, n in missing.items()})
    for source, numbers in missing.items():
        wanted = set(numbers)
        for held in hook.list_read_set_upload_parts(sequence_store_id, upload_id, source):
            if held["partNumber"] in wanted:
                parts.append({"partNumber": held["partNumber"], "partSource": source, "checksum": held["checksum"]})
    return parts


def complete_upload(
    hook: OmicsHook,
    sequence_store_id: str,
    upload_id: str,
    part_results: Iterable[Any],
    expected: Mapping[str, int] | None,
    log: Logger,
) -> str:
    """CompleteMultipartReadSetUpload with the parts, once they are checked to be a whole read set."""
    parts = flatten_part_results(part_results)
    parts = reconcile_parts(hook, sequence_store_id, upload_id, parts, expected, log)
    try:
        ordered = check_complete_parts(parts, expected)
    except PartPlanError as err:
        raise AirflowFailException(f"Upload {upload_id} cannot be completed: {err}") from None
    read_set_id = hook.complete_multipart_read_set_upload(sequence_store_id, upload_id, ordered)
    log.info("Completed upload %s with %d parts: read set %s", upload_id, len(ordered), read_set_id)
    return read_set_id


def complete_or_find(
    hook: OmicsHook,
    sequence_store_id: str,
    upload_id: str | None,
    part_results: Iterable[Any],
    expected: Mapping[str, int] | None,
    record: UploadRecord | None,
    aws_conn_id: str | None,
    log: Logger,
) -> str:
    """Complete the upload, or find the read set it (or an earlier attempt of its request) already became."""
    if record is not None and record.read_set_id:
        log.info("The request was already stored as read set %s: nothing to complete.", record.read_set_id)
        return record.read_set_id
    if not upload_id:
        raise AirflowFailException("No upload_id: the create task did not start an upload.")
    what = f"CompleteMultipartReadSetUpload of {upload_id}"
    try:
        return complete_upload(hook, sequence_store_id, upload_id, part_results, expected, log)
    except (ClientError, ConnectionError, HTTPClientError) as err:
        if error_code(err) != "ResourceNotFoundException" and not is_transient(err):
            raise service_failure(err, what, aws_conn_id) from None  # type: ignore[arg-type]
        # The upload is gone (Complete committed and its answer was lost, or this task was cleared after it
        # succeeded), or every answer was lost: its read set, if it exists, carries the request token.
        stored = _stored_read_set(hook, record, upload_id, aws_conn_id)
        if stored:
            log.warning("%s: %s; the upload had completed as read set %s.", what, err, stored)
            return stored
        if record is None:
            log.warning("Without upload_record the read set of a lost answer cannot be looked for.")
        if error_code(err) == "ResourceNotFoundException":
            raise AirflowFailException(
                f"Upload {upload_id} no longer exists and no read set carries its request token: it was "
                "aborted (by the abort task of an earlier attempt, or from outside). Trigger a new run."
            ) from None
        if isinstance(err, ClientError):
            raise service_failure(err, what, aws_conn_id) from None
        raise AirflowException(f"{what}: no answer ({err}); a retry of this task finds its result.") from err


def abort_request(
    hook: OmicsHook,
    sequence_store_id: str,
    upload_id: str | None,
    read_set_id: str | None,
    record: UploadRecord | None,
    aws_conn_id: str | None,
    log: Logger,
) -> bool:
    """Abort the upload ``upload_id`` and every upload in progress that carries the record's request token, and
    the uploads this provider left in progress for the same sample under other staged files (an earlier try's,
    before the files were staged again: :func:`abort_stale_uploads`).

    Nothing of the request itself is aborted once a read set came out of it. Returns whether anything was aborted.
    """
    stored = read_set_id or (record.read_set_id if record else None)
    upload_ids = [upload_id] if upload_id and not stored else []
    aborted = False
    if record is not None:
        with service_errors("Looking for uploads of this request", aws_conn_id):
            in_progress = hook.list_multipart_read_set_uploads(record.sequence_store_id)
        for upload in in_progress:
            mine = (upload.get("tags") or {}).get(REQUEST_TAG) == record.client_token
            if mine and not stored and upload["uploadId"] not in upload_ids:
                upload_ids.append(upload["uploadId"])
        aborted = bool(
            abort_stale_uploads(
                hook, record.sequence_store_id, in_progress, record.identity(), {record.client_token}, aws_conn_id, log
            )
        )
    if stored:
        log.info("The request was stored as read set %s: nothing of it to abort.", stored)
        return aborted
    return abort_uploads(hook, sequence_store_id, upload_ids, None, record, aws_conn_id, log) or aborted


def abort_stale_uploads(
    hook: OmicsHook,
    sequence_store_id: str,
    in_progress: Sequence[Mapping[str, Any]],
    sample: Mapping[str, Any],
    current_tokens: set[str],
    aws_conn_id: str | None,
    log: Logger,
) -> list[str]:
    """Abort the uploads in progress (``in_progress``: ListMultipartReadSetUploads) that this provider started for
    the sample identity ``sample`` under a request token not in ``current_tokens``: they hold files staged before
    (a try before the files were staged again), never what a run of the current files needs. Returns their ids."""
    aborted = []
    for upload in identity.uploads_of_identity(in_progress, sample):
        if (upload.get("tags") or {}).get(REQUEST_TAG) in current_tokens:
            continue
        with service_errors(f"AbortMultipartReadSetUpload of {upload['uploadId']}", aws_conn_id):
            if hook.abort_multipart_read_set_upload(sequence_store_id, str(upload["uploadId"])):
                log.warning(
                    "Aborted upload %s of %s (sample %s): an earlier try left it in progress for files staged "
                    "before the current ones.",
                    upload["uploadId"],
                    sample.get("name"),
                    sample.get("sampleId"),
                )
                aborted.append(str(upload["uploadId"]))
    return aborted


def abort_uploads(
    hook: OmicsHook,
    sequence_store_id: str,
    upload_ids: Sequence[str],
    read_set_id: str | None,
    record: UploadRecord | None,
    aws_conn_id: str | None,
    log: Logger,
) -> bool:
    """Abort these uploads of one request, unless a read set came out of it. Returns whether anything was
    aborted; an upload already gone is looked for as the request's read set and reported."""
    stored = read_set_id or (record.read_set_id if record else None)
    if stored:
        log.info("The request was stored as read set %s: nothing to abort.", stored)
        return False
    if not upload_ids:
        log.info("No upload was started: nothing to abort.")
        return False
    aborted = False
    for one_upload in upload_ids:
        with service_errors(f"AbortMultipartReadSetUpload of {one_upload}", aws_conn_id):
            if hook.abort_multipart_read_set_upload(sequence_store_id, one_upload):
                log.warning("Aborted upload %s: the run failed before it completed.", one_upload)
                aborted = True
                continue
        completed = _stored_read_set(hook, record, one_upload, aws_conn_id)
        if completed:
            log.warning(
                "Upload %s completed as read set %s, but the run failed before it reported it: clear the "
                "failed tasks (or the run) to carry on with that read set; nothing is uploaded again.",
                one_upload,
                completed,
            )
        else:
            log.info("Upload %s is already gone (aborted): nothing to abort.", one_upload)
    return aborted


def digest_skip_reason(file_type: str) -> str | None:
    """Why a file type's sources are not digested (their ETag cannot be reproduced), or None."""
    if file_type in VERIFIABLE_FILE_TYPES:
        return None
    return (
        f"{file_type} ETags are computed by HealthOmics from the alignment as SAM against the reference "
        "and cannot be reproduced client-side; only the stored size is checked."
    )


def digest_source(
    hook: OmicsHook,
    part_source: str,
    planned: PlannedSource,
    family: str,
    roots: Sequence[str],
    prefixes: Sequence[str],
    log: Logger,
) -> SourceDigest:
    """The digest of one staged FASTQ source in the store's ETag ``family``, pinned to its planned fingerprint."""
    from airflow_provider_omics.utils.digest import digest_stream

    fingerprint = Fingerprint.from_dict(planned["fingerprint"])
    started = time.monotonic()
    try:
        with source_errors():
            # Plans pushed before split recorded the location have only the URI.
            source = reopen_source(
                lambda: hook.staged_source(planned.get("location") or planned["uri"]), roots, prefixes
            )
            with source.pin(fingerprint) as pinned, pinned.open_stream() as stream:
                digest = digest_stream(stream, family)
    except ValueError as err:
        raise AirflowFailException(f"{part_source} ({planned['uri']}) is not readable as FASTQ: {err}") from None
    seconds = time.monotonic() - started
    log.info(
        "%s %s: %s %s (%d bytes uncompressed, %.1f MB/s)",
        part_source,
        planned["uri"],
        family,
        digest.hexdigest,
        digest.uncompressed_bytes,
        digest.uncompressed_bytes / max(seconds, 1e-9) / 1e6,
    )
    return SourceDigest(
        hexdigest=digest.hexdigest, compressed=digest.compressed, uncompressed_bytes=digest.uncompressed_bytes
    )


# What a verified read set's asset event tells about it (GetReadSetMetadata's names).
_EVENT_METADATA = ("id", "arn", "name", "sampleId", "subjectId", "fileType", "etag")


def verify_read_set(
    hook: OmicsHook,
    sequence_store_id: str,
    read_set_id: str,
    digests: Mapping[str, Any] | None,
    sources: Mapping[str, PlannedSource],
    log: Logger,
    adopted: bool = False,
) -> dict[str, Any]:
    """Check that the stored read set is the staged data: ACTIVE, each source's size, and the FASTQ ETags.

    ``adopted``: the read set was in the store already under another request (another tool's, or of files staged
    before): it counts only when its ETags prove it holds the staged content, and a mismatch says so.

    :raises AirflowFailException: naming every mismatch.
    """
    from airflow_provider_omics.utils.digest import family_of

    metadata = hook.get_read_set_metadata(sequence_store_id, read_set_id)
    if metadata.get("status") != "ACTIVE":
        raise AirflowFailException(
            f"Read set {read_set_id} is {metadata.get('status')}, not ACTIVE: "
            f"{metadata.get('statusMessage', 'no status message')}. Only an ACTIVE read set can be verified."
        )
    problems: list[str] = []
    checked: dict[str, Any] = {}
    files = metadata.get("files", {})
    for part_source, planned in sorted(sources.items()):
        stored = files.get(part_source.lower(), {}).get("contentLength")
        if stored is not None and int(stored) != int(planned["size"]):
            problems.append(
                f"{part_source} ({planned['uri']}): the service stored {stored} bytes, {planned['size']} were staged"
            )
        checked[part_source] = {"size": planned["size"], "stored_size": stored}
    digests = digests or {}
    etag = metadata.get("etag", {})
    if digests.get("family"):
        algorithm = etag.get("algorithm", "")
        if family_of(algorithm) != digests["family"]:
            problems.append(
                f"the read set's ETag algorithm {algorithm} is not the {digests['family']} family the sources "
                "were digested with"
            )
        for part_source, digest in sorted(digests["sources"].items()):
            stored_etag = etag.get(part_source.lower())
            checked[part_source].update(etag=stored_etag, digest=digest["hexdigest"])
            if stored_etag != digest["hexdigest"]:
                problems.append(
                    f"{part_source} ({sources[part_source]['uri']}): ETag {stored_etag} does not match "
                    f"the staged file's {digests['family']} digest {digest['hexdigest']}"
                )
    else:
        log.info("ETag check skipped: %s", digests.get("skipped") or "no digest was computed")
    if adopted and not digests.get("family"):
        problems.append("its content cannot be compared with the staged files (no ETag digest)")
    if problems and adopted:
        raise AirflowFailException(
            f"Read set {read_set_id} was already in the store for this sample with other content: "
            + "; ".join(problems)
            + ". Delete it to upload the staged files, or set on_existing='new' to store them as another read set "
            "(or 'skip' to keep it)."
        )
    if problems:
        raise AirflowFailException(
            f"Read set {read_set_id} does not match the staged data: " + "; ".join(problems) + ". "
            "The upload is not trustworthy: delete the read set and upload again."
        )
    log.info("Read set %s verified: %s", read_set_id, checked)
    return {
        "read_set_id": read_set_id,
        "etag_verified": bool(digests.get("family")),
        "sources": checked,
        "metadata": {key: metadata.get(key) for key in _EVENT_METADATA},
    }


def with_read_sets_alias(kwargs: dict[str, Any], emit: bool) -> dict[str, Any]:
    """An operator's keyword arguments with the read sets' asset alias added to its outlets when ``emit``."""
    if emit:
        outlets = kwargs.get("outlets") or []
        outlets = list(outlets) if isinstance(outlets, list | tuple) else [outlets]
        if not any(isinstance(o, AssetAlias) and o.name == READ_SETS_ALIAS for o in outlets):
            kwargs = {**kwargs, "outlets": [*outlets, read_sets_alias()]}
    return kwargs


def announce_read_sets(
    context: Context, task: BaseOperator, sequence_store_id: str, verified: Sequence[Mapping[str, Any]]
) -> None:
    """Emit one asset event on the store's asset for the read sets a task verified (``verify_read_set``'s results),
    when the task has the read sets' alias in its outlets (:mod:`airflow_provider_omics.assets.omics`)."""
    if not verified or not any(isinstance(o, AssetAlias) and o.name == READ_SETS_ALIAS for o in task.outlets or []):
        return
    if "outlet_events" not in context:
        task.log.info("No outlet events in this context (the task runs outside Airflow's task runner): no event.")
        return
    entries = [
        read_set_entry(result["metadata"], etag_verified=bool(result.get("etag_verified"))) for result in verified
    ]
    store_arn = str(verified[0]["metadata"].get("arn") or "").partition("/readSet/")[0]
    asset = emit_read_sets_event(context, store_arn, read_sets_event_extra(sequence_store_id, entries))
    task.log.info("Asset event on %s for %d read set(s)", asset.uri, len(entries))


# The operators of a sequencing run live in omics_run.py, which builds on this module; importing them here lazily
# keeps one place to import every operator from without an import cycle.
_RUN_OPERATORS = frozenset(
    {
        "OmicsAbortRunUploadsOperator",
        "OmicsCompleteRunUploadsOperator",
        "OmicsCreateRunUploadsOperator",
        "OmicsDigestRunSourcesOperator",
        "OmicsPlanSequencingRunOperator",
        "OmicsSequencingRunSummaryOperator",
        "OmicsVerifyRunReadSetsOperator",
        "OmicsWaitRunReadSetsOperator",
    }
)


def __getattr__(name: str) -> Any:
    if name in _RUN_OPERATORS:
        from airflow_provider_omics.operators import omics_run

        return getattr(omics_run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
