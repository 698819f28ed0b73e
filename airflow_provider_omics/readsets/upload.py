"""The direct upload of one read set request, each step converging under retries, clears and lost answers:
create or reuse, the parts of a segment (one read set's, or a run's batch), complete or find, abort."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
)
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from airflow_provider_omics.hooks.omics import OmicsHook
from airflow_provider_omics.readsets import Logger, identity
from airflow_provider_omics.readsets.request import only_read_set, stored_read_set
from airflow_provider_omics.staging.sources import Fingerprint, reopen_source, source_errors
from airflow_provider_omics.utils.errors import error_code, is_transient, service_errors, service_failure
from airflow_provider_omics.utils.parts import (
    RUN_CHECKSUMS_LIMIT,
    PartPlanError,
    PartRange,
    check_complete_parts,
    compact_parts,
    fit_part_runs,
    flatten_part_results,
    missing_parts,
    part_range,
)
from airflow_provider_omics.utils.payloads import PartResult, PartSegment, RunPartResults, UploadRecord
from airflow_provider_omics.utils.progress import Progress
from airflow_provider_omics.utils.tags import REQUEST_TAG


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else (str(value) if value else None)


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
            record.read_set_id = only_read_set(stored, token)
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
        stored = stored_read_set(hook, record, upload_id, aws_conn_id)
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
        completed = stored_read_set(hook, record, one_upload, aws_conn_id)
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


def segment_bytes(segment: PartSegment) -> int:
    """The bytes of a segment's parts: its byte range of the source (the last part may be short)."""
    start = (segment["first_part"] - 1) * segment["part_size"]
    end = segment["last_part"] * segment["part_size"]
    size = segment["fingerprint"].get("size")
    return max(0, (end if size is None else min(end, int(size))) - start)


def upload_segments(
    hook: OmicsHook,
    sequence_store_id: str,
    segments: Sequence[PartSegment],
    upload_records: Mapping[str, Any],
    staging: tuple[Sequence[str], Sequence[str]],
    max_concurrency: int,
    aws_conn_id: str | None,
    log: Logger,
) -> RunPartResults:
    """A run's batch: each segment's parts into its sample's upload (``upload_records``: the create step's).

    A sample whose segment cannot be uploaded for good (its source changed or vanished, a permanent service
    error) is reported in ``failed`` and the other samples' segments carry on; complete aborts that sample.
    A transient failure fails the task after the other segments, so that Airflow retries it. The parts are
    returned compact (:class:`~airflow_provider_omics.utils.payloads.PartRun`).
    """
    results = RunPartResults(parts={}, failed={})
    transient: list[str] = []
    parts_in = sum(segment["last_part"] - segment["first_part"] + 1 for segment in segments)
    with Progress("upload_parts", "parts", parts_in, sum(segment_bytes(s) for s in segments), log) as progress:
        for segment in segments:
            # Told from the part threads as each part is stored.
            counted, lock = [0, 0], threading.Lock()

            def uploaded(part: PartRange, counted: list[int] = counted, lock: threading.Lock = lock) -> None:
                with lock:
                    counted[0] += 1
                    counted[1] += part.length
                progress.add(1, part.length)

            _upload_run_segment(
                hook,
                sequence_store_id,
                segment,
                upload_records,
                staging,
                max_concurrency,
                aws_conn_id,
                log,
                results,
                transient,
                uploaded,
            )
            # What was not uploaded here: failed, or already stored.
            rest = segment["last_part"] - segment["first_part"] + 1 - counted[0]
            if rest > 0:
                failed = segment["sample"] in results["failed"]
                progress.add(rest, max(0, segment_bytes(segment) - counted[1]), failed=failed)
    if transient:
        raise AirflowException("Parts of these samples failed and may succeed on a retry: " + "; ".join(transient))
    carried = fit_part_runs(results["parts"], RUN_CHECKSUMS_LIMIT)
    if carried > RUN_CHECKSUMS_LIMIT:
        log.info(
            "%d characters of checksums are more than XCom should carry (%d): complete reads them back from "
            "the service (ListReadSetUploadParts).",
            carried,
            RUN_CHECKSUMS_LIMIT,
        )
    return results


def _upload_run_segment(
    hook: OmicsHook,
    sequence_store_id: str,
    segment: PartSegment,
    upload_records: Mapping[str, Any],
    staging: tuple[Sequence[str], Sequence[str]],
    max_concurrency: int,
    aws_conn_id: str | None,
    log: Logger,
    results: RunPartResults,
    transient: list[str],
    on_uploaded: Callable[[PartRange], None],
) -> None:
    """One segment of a run's batch (:func:`upload_segments`), into ``results`` (its parts, or its sample failed)
    or, for a failure that a retry may mend, ``transient``."""
    sample = segment["sample"]
    if sample in results["failed"]:
        return
    entry = upload_records.get(sample) or {}
    record = UploadRecord.from_dict(entry.get("record", entry))
    if record is None or not record.upload_id:
        if record is not None and record.read_set_id:
            log.info("%s: already stored as read set %s: nothing to upload.", sample, record.read_set_id)
        else:
            results["failed"][sample] = "no upload was started for it (see the create task)"
        return
    try:
        parts = upload_segment(
            hook,
            sequence_store_id,
            record.upload_id,
            record,
            segment,
            staging,
            max_concurrency,
            aws_conn_id,
            log,
            on_uploaded,
        )
    except AirflowFailException as err:
        log.error("%s: %s", sample, err)
        results["failed"][sample] = str(err)
        results["parts"].pop(sample, None)
        return
    except AirflowException as err:
        log.error("%s: %s", sample, err)
        transient.append(f"{sample}: {err}")
        return
    results["parts"].setdefault(sample, []).extend(compact_parts(parts))


def upload_segment(
    hook: OmicsHook,
    sequence_store_id: str,
    upload_id: str,
    record: UploadRecord | None,
    segment: PartSegment,
    staging: tuple[Sequence[str], Sequence[str]],
    max_concurrency: int,
    aws_conn_id: str | None,
    log: Logger,
    on_uploaded: Callable[[PartRange], None] | None = None,
) -> list[PartResult]:
    """Upload one segment's parts (consecutive parts of one source) into ``upload_id``, the source reopened
    through the staging gateway within ``staging`` (the allow-lists: roots, prefixes) and pinned to the plan's
    fingerprint. ``on_uploaded`` is told of each part as it is stored."""
    part_source = segment["part_source"]
    fingerprint = Fingerprint.from_dict(segment["fingerprint"])
    roots, prefixes = staging
    with source_errors():
        source = reopen_source(lambda: hook.staged_source(segment["source_uri"]), roots, prefixes)
    ranges = [
        part_range(part_source, n, fingerprint.size, segment["part_size"])
        for n in range(segment["first_part"], segment["last_part"] + 1)
    ]
    total_bytes = sum(r.length for r in ranges)

    def log_part(part: PartRange, seconds: float) -> None:
        log.info(
            "%s part %d of %d: %d bytes in %.2f s (%.1f MB/s)",
            part.part_source,
            part.part_number,
            segment["total_parts"],
            part.length,
            seconds,
            part.length / max(seconds, 1e-9) / 1e6,
        )
        if on_uploaded is not None:
            on_uploaded(part)

    started = time.monotonic()
    try:
        with source_errors():
            parts = hook.upload_parts(
                sequence_store_id,
                upload_id,
                source,
                fingerprint,
                ranges,
                max_concurrency=max_concurrency,
                on_part=log_part,
            )
    except ClientError as err:
        if error_code(err) == "ResourceNotFoundException":
            # A cleared part task of an upload that completed: its parts are in the read set already.
            stored = stored_read_set(hook, record, upload_id, aws_conn_id)
            if stored:
                log.info("Upload %s already completed as read set %s: nothing to upload.", upload_id, stored)
                return []
        raise service_failure(err, f"UploadReadSetPart ({part_source} of upload {upload_id})", aws_conn_id) from None
    seconds = time.monotonic() - started
    log.info(
        "Uploaded %s parts %d-%d: %d bytes in %.2f s (%.1f MB/s)",
        part_source,
        segment["first_part"],
        segment["last_part"],
        total_bytes,
        seconds,
        total_bytes / max(seconds, 1e-9) / 1e6,
    )
    return parts
