"""A sequencing run of many samples: the batches of its parts, what the store already holds of each sample, the wait
for its read sets and its summary table."""

from __future__ import annotations

import csv
import io
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_omics.hooks.omics import OmicsHook
from airflow_provider_omics.readsets import Logger, identity
from airflow_provider_omics.readsets.imports import ImportRequest, import_sources, run_imports
from airflow_provider_omics.readsets.request import check_store, sample_request, stored_read_set
from airflow_provider_omics.readsets.upload import (
    abort_request,
    abort_stale_uploads,
    abort_uploads,
    complete_or_find,
    create_or_reuse,
)
from airflow_provider_omics.readsets.verify import digest_skip_reason, digest_source, verify_read_set
from airflow_provider_omics.staging.manifests import INLINE_MANIFEST
from airflow_provider_omics.staging.sources import allow_lists
from airflow_provider_omics.utils.errors import OmicsInputError, service_errors
from airflow_provider_omics.utils.parts import PartPlanError, expand_parts, mapped_values
from airflow_provider_omics.utils.payloads import (
    DigestResult,
    PartResult,
    PartSegment,
    PlannedSample,
    PlannedSource,
    RunSample,
    UploadRecord,
    run_samples,
    sample_key,
)
from airflow_provider_omics.utils.progress import Progress
from airflow_provider_omics.utils.tags import REQUEST_TAG

# How often the run's create step publishes its upload records while it works (seconds).
RECORDS_PUSH_INTERVAL = 10.0


def pack_run_parts(samples: Sequence[RunSample], max_tasks: int) -> list[list[PartSegment]]:
    """Cut the parts of every source of ``samples`` into at most ``max_tasks`` batches of about equal size.

    The parts are laid end to end (sample after sample, SOURCE1 before SOURCE2) and cut every ``per_batch``
    parts, so a batch may hold the end of one source and the start of the next, of the same sample or another:
    the task count is set by the run's parts, never by its number of samples.
    """
    if max_tasks < 1:
        raise PartPlanError(f"max_tasks={max_tasks} must be at least 1.")
    total = sum(planned["parts"] for sample in samples for planned in sample.sources.values())
    if total == 0:
        return []
    per_batch = math.ceil(total / max_tasks)
    batches: list[list[PartSegment]] = []
    room = 0
    for sample in samples:
        for part_source, planned in sorted(sample.sources.items()):
            first = 1
            while first <= planned["parts"]:
                if room == 0:
                    batches.append([])
                    room = per_batch
                last = min(planned["parts"], first + room - 1)
                batches[-1].append(
                    PartSegment(
                        sample=sample.key,
                        source_uri=planned["location"],
                        part_source=part_source,
                        first_part=first,
                        last_part=last,
                        total_parts=planned["parts"],
                        part_size=planned["part_size"],
                        fingerprint=planned["fingerprint"],
                    )
                )
                room -= last - first + 1
                first = last + 1
    return batches


# The samples whose sources the digest step hashes: to upload ("planned"; "created" once create ran), or reused
# from the store ("completed" at plan), which verify must prove against the staged files before they count.
DIGESTED_STATUSES = ("planned", "created", "completed")


def pack_run_digests(samples: Sequence[RunSample], max_tasks: int) -> list[list[list[str]]]:
    """The FASTQ sources of ``samples`` to digest, as ``[sample key, part source]`` pairs, in at most ``max_tasks``
    batches of about equal bytes: the largest source first, each into the lightest batch (a source is one
    sequential hash, so it is never cut). Always one batch at least, empty when there is nothing to digest, so that
    the mapped digest step runs (and verify after it) whatever the plan holds.
    """
    if max_tasks < 1:
        raise PartPlanError(f"max_digest_tasks={max_tasks} must be at least 1.")
    jobs = sorted(
        (
            (int(planned["size"]), sample.key, part_source)
            for sample in samples
            if sample.status in DIGESTED_STATUSES and digest_skip_reason(sample.row.file_type) is None
            for part_source, planned in sample.sources.items()
        ),
        key=lambda job: (-job[0], job[1], job[2]),
    )
    batches: list[list[list[str]]] = [[] for _ in range(max(1, min(max_tasks, len(jobs))))]
    loads = [0] * len(batches)
    for size, key, part_source in jobs:
        lightest = loads.index(min(loads))
        batches[lightest].append([key, part_source])
        loads[lightest] += size
    return batches


def merge_digests(outputs: Any, samples: Mapping[str, RunSample] | None = None) -> dict[str, Any]:
    """The mapped digest tasks' outputs (or one digest output) as one: per sample, the digests of its sources from
    whichever task hashed them, and every failure. Given the run's ``samples``, a source's digest counts only when it
    was taken of the file the plan pinned (its fingerprint), so that none left by a digest task of an earlier plan
    of the run (a cleared plan after a restaged file) stands in for it."""
    if outputs is None:
        return {"digests": {}, "failed": {}}
    digests: dict[str, DigestResult] = {}
    failed: dict[str, str] = {}
    for output in [outputs] if isinstance(outputs, Mapping) else mapped_values(outputs):
        for key, result in ((output or {}).get("digests") or {}).items():
            sample = (samples or {}).get(key)
            if sample is not None:
                result = {
                    **result,
                    "sources": {
                        part_source: digest
                        for part_source, digest in (result.get("sources") or {}).items()
                        if part_source in sample.sources
                        and digest.get("fingerprint", sample.sources[part_source]["fingerprint"])
                        == sample.sources[part_source]["fingerprint"]
                    },
                }
            merged = digests.setdefault(
                key,
                DigestResult(
                    family=result.get("family"),
                    file_type=result.get("file_type", ""),
                    sources={},
                    skipped=result.get("skipped"),
                ),
            )
            merged["sources"].update(result.get("sources") or {})
        for key, reason in ((output or {}).get("failed") or {}).items():
            failed[key] = f"{failed[key]}; {reason}" if key in failed else reason
    return {"digests": digests, "failed": failed}


def resolve_stored(
    hook: OmicsHook,
    store_id: str,
    sample: RunSample,
    on_existing: str,
    listed: Sequence[Mapping[str, Any]] | None = None,
) -> identity.Resolution:
    """What the store already holds of this sample, and what the run does about it
    (:func:`~airflow_provider_omics.readsets.identity.resolve_existing`).

    A read set counts as this sample's stored read set only when it is proven to hold the staged files: it
    carries this request's token (the same sample identity and staged fingerprints), or, for FASTQ, its ETags
    equal the staged files' digests (verify proves it). Who uploaded it does not matter (another run, another DAG,
    another deployment, another tool). ``listed``: the store's read sets, listed once for the whole run.
    """
    request, token = sample_request(store_id, sample)
    same, other = identity.existing_read_sets(hook, store_id, request, token, listed)
    return identity.resolve_existing(
        same, other, on_existing, request["sourceFileType"], f"{sample.row.name} (sample {sample.row.sample_id})"
    )


def fail_sample(sample: RunSample, step: str, reason: str, log: Logger) -> None:
    """Mark ``sample`` failed at ``step`` for ``reason``, and say so in the task's log."""
    log.error("%s failed in %s: %s", sample.key, step, reason)
    sample.fail(step, reason)


def wait_until_active(
    hook: OmicsHook,
    store_id: str,
    samples: Mapping[str, RunSample],
    delay: float,
    attempts: int,
    aws_conn_id: str | None,
    log: Logger,
    *,
    fail_pending: bool = True,
) -> dict[str, str | None]:
    """Wait until every ``completed`` sample's read set is ACTIVE (then ``active``) or failed (then the sample
    fails with the service's ``statusMessage``), through the hook's wait over many read sets
    (:meth:`~airflow_provider_omics.hooks.omics.OmicsHook.wait_for_read_sets`). With ``attempts=1`` it looks
    once. Returns the read sets still on their way (id -> created no earlier than), when not ``fail_pending``.

    :raises AirflowException: with ``fail_pending``, some are still on their way after ``delay * attempts``
        seconds (retryable).
    """
    waited = pending_read_sets(samples)
    with service_errors("Looking at the read sets' status", aws_conn_id):
        pending = hook.wait_for_read_sets(
            store_id,
            waited,
            delay=delay,
            max_attempts=attempts,
            on_end=lambda read_set_id, status: read_set_ended(samples, read_set_id, status, log),
            on_round=lambda still: log.info("wait_active: %s", wait_progress(samples, waited)),
        )
    if waited:
        log.info("wait_active: %s", wait_progress(samples, waited))
    if pending and fail_pending:
        raise AirflowException(
            f"Read sets still not ACTIVE after {delay * attempts:.0f} s: "
            + ", ".join(f"{key} ({s.read_set_id})" for key, s in samples.items() if s.read_set_id in pending)
        )
    return pending


def wait_progress(samples: Mapping[str, RunSample], waited: Mapping[str, Any]) -> str:
    """Where the wait stands, in samples: ``31 of 48 ACTIVE, 2 failed, 15 processing``."""
    mine = [s for s in samples.values() if s.read_set_id in waited]
    active = sum(s.status == "active" for s in mine)
    failed = sum(s.status == "failed" for s in mine)
    return f"{active} of {len(mine)} ACTIVE, {failed} failed, {len(mine) - active - failed} processing"


def pending_read_sets(samples: Mapping[str, RunSample]) -> dict[str, str | None]:
    """The read sets to wait for: of every ``completed`` sample, its read set and a time it was created no earlier
    than (its upload's creation, when the run created it)."""
    return {
        str(s.read_set_id): (s.record.upload_created if s.record is not None else None)
        for s in samples.values()
        if s.status == "completed" and s.read_set_id
    }


def read_set_ended(samples: Mapping[str, RunSample], read_set_id: str, status: Mapping[str, Any], log: Logger) -> None:
    """A read set the run waits for ended: its samples become ``active``, or fail with the service's message."""
    for key, sample in samples.items():
        if sample.read_set_id != read_set_id or sample.status != "completed":
            continue
        if status.get("status") == "ACTIVE":
            sample.status = "active"
            log.info("%s: read set %s is ACTIVE", key, read_set_id)
        else:
            fail_sample(
                sample,
                "wait_active",
                f"read set {read_set_id} is {status.get('status')}: "
                f"{status.get('statusMessage') or 'no status message'}",
                log,
            )


# The columns of the summary CSV, in order.
SUMMARY_COLUMNS = ("sample", "read_set_id", "status", "outcome", "verified", "bytes", "seconds", "reason")
# OWASP's CSV injection rule: a cell that starts with one of these is run as a formula by spreadsheet programs.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """``value`` as a CSV cell no spreadsheet runs: text starting with a formula character gets a leading ``'``
    (OWASP's rule); numbers, booleans and None stay as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def summary_csv(table: Sequence[Mapping[str, Any]]) -> bytes:
    """The summary table as CSV (UTF-8, the columns of :data:`SUMMARY_COLUMNS`), every text cell through
    :func:`csv_cell`: sample names, reasons and ids come from the manifest and the service."""
    out = io.StringIO()
    # RFC 4180's CRLF: the csv module quotes a field holding a character of its line terminator, and with "\n"
    # alone a carriage return in a reason would be written bare and split the row for every reader.
    writer = csv.DictWriter(out, fieldnames=list(SUMMARY_COLUMNS), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({column: csv_cell(row.get(column)) for column in SUMMARY_COLUMNS} for row in table)
    return out.getvalue().encode()


def _file_name_part(text: str, default: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or default


def write_summary(
    hook: OmicsHook,
    manifest: Mapping[str, Any] | None,
    table: Sequence[Mapping[str, Any]],
    run_id: str,
    dag_id: str,
    allowed_local_roots: str | Sequence[str] | None,
    allowed_s3_prefixes: str | Sequence[str] | None,
    log: Logger,
) -> str | None:
    """Write the run's ``table`` as CSV next to the ``manifest`` the plan read (:func:`summary_location`), judged
    where it is written: within the allow-lists (``[omics]``'s, narrowed by the task's), never through a symlink
    (:meth:`~airflow_provider_omics.hooks.omics.OmicsHook.write_next_to_manifest`). Returns where, or ``None`` when
    it could not be written (the warning says why): the read sets are what the run is for."""
    location = (manifest or {}).get("location")
    if not location:
        if (manifest or {}).get("uri") == INLINE_MANIFEST:
            log.warning("The manifest was given inline: no summary CSV (it goes next to a manifest file).")
        else:
            log.warning("The plan did not say where the manifest is: no summary CSV written.")
        return None
    target = summary_location(str(location), run_id, dag_id=dag_id)
    try:
        # Judged now, where it is written: the manifest's directory may have changed since the plan read it.
        roots, prefixes = allow_lists(allowed_local_roots, allowed_s3_prefixes)
        written = hook.write_next_to_manifest(
            target, summary_csv(table), allowed_local_roots=roots, allowed_s3_prefixes=prefixes
        )
    except Exception as err:
        log.warning("Could not write the summary CSV %s: %s", target, err)
        return None
    log.info("Summary written to %s", written)
    return written


def summary_location(manifest_location: str, run_id: str, *, dag_id: str) -> str:
    """Where a run's summary CSV goes: next to the manifest, named after it, the DAG and the run
    (``runs/SampleSheet.csv`` -> ``runs/SampleSheet.summary.<dag id>.<run id>.csv``), so that two DAGs with one
    run id (the scheduled runs of one logical date) write two files."""
    directory, _, name = manifest_location.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return f"{directory}/{stem}.summary.{_file_name_part(dag_id, 'dag')}.{_file_name_part(run_id, 'run')}.csv"


def resolve_samples(
    hook: OmicsHook,
    store_id: str,
    samples: Sequence[RunSample],
    on_existing: str,
    aws_conn_id: str | None,
    log: Logger,
) -> None:
    """Decide for each planned sample what the store already holds of it (:func:`resolve_stored`): failed (a
    conflict ``on_existing`` refuses), ``stored`` (skipped), ``completed`` (reused: waited for, digested, verified
    and announced once before it counts), or left ``planned`` (uploaded)."""
    with service_errors("Looking for read sets already in the store", aws_conn_id):
        # The store's read sets in one listing when it takes fewer calls than a question per sample (ListReadSets
        # shares a 5 TPS quota with every run of the account); else one filtered ListReadSets per sample.
        listed = hook.list_store_read_sets(store_id, max_calls=len(samples)) if len(samples) > 1 else None
        for sample in samples:
            try:
                found = resolve_stored(hook, store_id, sample, on_existing, listed)
            except AirflowFailException as err:
                found = identity.Resolution("fail", reason=str(err))
            if found.action == "fail":
                fail_sample(sample, "plan", found.reason, log)
            elif found.action == "stored":
                sample.status, sample.read_set_id = "stored", found.read_set_id
                sample.verified, sample.reason = found.verified, f"{found.reason}: skipped"
                log.info("%s: %s: skipped.", sample.key, found.reason)
            elif found.action == "reuse":
                # Wait for it (it may still be PROCESSING_UPLOAD), digest and verify it, announce it once.
                sample.status, sample.read_set_id, sample.adopted = "completed", found.read_set_id, found.adopted
                sample.reason = found.reason
                log.info("%s: %s: verified before it counts.", sample.key, found.reason)
            elif found.reason:
                log.info("%s: %s.", sample.key, found.reason)


def plan_samples(
    hook: OmicsHook,
    store_id: str,
    planned: Sequence[PlannedSample],
    on_existing: str,
    max_tasks: int,
    upload: bool,
    aws_conn_id: str | None,
    log: Logger,
    manifest_uri: str = "",
) -> tuple[list[RunSample], list[list[PartSegment]]]:
    """The run's samples from the checked manifest rows, each resolved against what the store holds
    (:func:`resolve_samples`), and the parts of those to upload in at most ``max_tasks`` batches
    (:func:`pack_run_parts`; none when ``upload`` is false: the run imports)."""
    check_store(hook, store_id, aws_conn_id)
    samples = [RunSample(key=sample_key(p.row), row=p.row, sources=p.sources) for p in planned]
    resolve_samples(hook, store_id, samples, on_existing, aws_conn_id, log)
    to_upload = [sample for sample in samples if sample.status == "planned"] if upload else []
    try:
        batches = pack_run_parts(to_upload, max_tasks)
    except PartPlanError as err:
        raise OmicsInputError(str(err)) from None
    log.info(
        "Manifest %s: %d sample(s), %d to upload, %d parts in %d upload tasks (budget %d)",
        manifest_uri,
        len(samples),
        len(to_upload),
        sum(b["last_part"] - b["first_part"] + 1 for batch in batches for b in batch),
        len(batches),
        max_tasks,
    )
    return samples, batches


def staged_bytes(sample: RunSample) -> int:
    """The bytes of a sample's staged files, as the plan found them."""
    return sum(int(planned["size"]) for planned in sample.sources.values())


def create_samples(
    hook: OmicsHook,
    samples: Mapping[str, RunSample],
    store_id: str,
    records: dict[str, Any],
    publish: Callable[[], None],
    imports_in_flight: Mapping[str, str] | None,
    aws_conn_id: str | None,
    log: Logger,
) -> None:
    """Start the upload of every ``planned`` sample (:func:`~airflow_provider_omics.readsets.upload.
    create_or_reuse`), or find what its token already made. ``records`` gets each sample's upload record as it
    changes; ``publish`` pushes them every ``RECORDS_PUSH_INTERVAL`` seconds (the caller pushes them once more at
    the end). A sample the service refuses for good fails alone.

    :raises AirflowException: creates that may succeed on a retry, after the other samples (a retry finds what
        was created by the tokens).
    """
    # Not after every change: each push writes the whole dict, and the abort step finds an upload without them (by
    # the token it derives from the plan), so they only save it a lookup.
    pushed = time.monotonic()
    transient: list[str] = []
    planned = [sample for sample in samples.values() if sample.status == "planned"]
    with Progress("create", "samples", len(planned), sum(staged_bytes(s) for s in planned), log) as progress:
        for sample in planned:
            sample.start()
            try:
                request, token = sample_request(store_id, sample)
                record = UploadRecord.for_request(request, token)

                def push(key: str = sample.key, record: UploadRecord = record) -> None:
                    nonlocal pushed
                    records[key] = record.to_dict()
                    if time.monotonic() - pushed >= RECORDS_PUSH_INTERVAL:
                        publish()
                        pushed = time.monotonic()

                create_or_reuse(hook, request, record, push, aws_conn_id, log, imports_in_flight=imports_in_flight)
            except AirflowFailException as err:
                fail_sample(sample, "create", str(err), log)
            except AirflowException as err:
                log.error("%s: %s", sample.key, err)
                transient.append(f"{sample.key}: {err}")
            else:
                sample.record = record
                sample.status = "created"
                if record.read_set_id:
                    sample.read_set_id = record.read_set_id
                else:
                    log.info("%s: started upload %s", sample.key, record.upload_id)
            finally:
                progress.add(nbytes=staged_bytes(sample), failed=sample.status == "failed")
    if transient:
        raise AirflowException("Creating these uploads may succeed on a retry: " + "; ".join(transient))


def complete_samples(
    hook: OmicsHook, samples: Mapping[str, RunSample], part_results: Any, aws_conn_id: str | None, log: Logger
) -> None:
    """Complete the upload of every ``created`` sample whose parts all arrived (or find the read set it became,
    :func:`~airflow_provider_omics.readsets.upload.complete_or_find`); fail and abort the others.

    ``part_results``: the part tasks' outputs (:class:`~airflow_provider_omics.utils.payloads.RunPartResults`).
    The parts of a task that failed are not trusted (its source may have changed after some were sent), so its
    samples are aborted, not reconciled from the service.
    """
    runs: dict[str, list[Mapping[str, Any]]] = {}
    part_failures: dict[str, str] = {}
    for result in mapped_values(part_results):
        if not isinstance(result, Mapping):
            continue
        for key, sample_runs in (result.get("parts") or {}).items():
            runs.setdefault(key, []).extend(sample_runs)
        part_failures.update(result.get("failed") or {})
    for sample in samples.values():
        if sample.status != "created" or sample.record is None:
            continue
        record = sample.record
        if record.read_set_id:
            sample.status, sample.read_set_id = "completed", record.read_set_id
            continue
        expected = {source: planned["parts"] for source, planned in sample.sources.items()}
        reason = part_failures.get(sample.key)
        parts: list[PartResult] = []
        if reason is None:
            try:
                parts, covered = expand_parts(runs.get(sample.key, []))
            except PartPlanError as err:
                reason = f"the part tasks' results are malformed: {err}"
                covered = {}
            missing = {
                source: total - len(covered.get(source, set()) & set(range(1, total + 1)))
                for source, total in expected.items()
            }
            if reason is None and any(missing.values()):
                # The part tasks found the upload completed (another run of the same staged files, which shares
                # this request's upload, completed it first): its read set is this sample's.
                with service_errors("Looking for the read set of this request", aws_conn_id):
                    stored = stored_read_set(hook, record, record.upload_id, aws_conn_id)
                if stored:
                    log.info("%s: upload %s already completed as read set %s.", sample.key, record.upload_id, stored)
                    sample.status, sample.read_set_id = "completed", stored
                    continue
                reason = "parts did not arrive (an upload task failed: see upload_parts): " + ", ".join(
                    f"{source} {count} of {expected[source]}" for source, count in missing.items() if count
                )
        if reason is None:
            try:
                # Parts whose checksums were left with the service are read back from it by complete.
                sample.read_set_id = complete_or_find(
                    hook, record.sequence_store_id, record.upload_id, [parts], expected, record, aws_conn_id, log
                )
                sample.status = "completed"
                log.info(
                    "%s: upload %s completed as read set %s (%s)",
                    sample.key,
                    record.upload_id,
                    sample.read_set_id,
                    ", ".join(f"{source} {count} parts" for source, count in sorted(expected.items())),
                )
                continue
            except AirflowFailException as err:
                reason = str(err)
        fail_sample(sample, "upload", reason, log)
        abort_request(hook, record.sequence_store_id, record.upload_id, None, record, aws_conn_id, log)


def import_samples(
    hook: OmicsHook,
    samples: Mapping[str, RunSample],
    store_id: str,
    role_arn: str,
    aws_conn_id: str | None,
    log: Logger,
    **waiting: Any,
) -> None:
    """Import every ``planned`` sample exactly once (:func:`~airflow_provider_omics.readsets.imports.run_imports`,
    each under the token its direct upload would carry) and wait for the jobs: a sample imported becomes
    ``completed``, one the job could not import fails alone with the service's message. ``waiting``: the keyword
    arguments of ``run_imports`` about the wait (``waiter_delay``, ``waiter_max_attempts``, ``on_jobs``,
    ``known_jobs``, ``before_wait``)."""
    requests: list[ImportRequest] = []
    for sample in samples.values():
        if sample.status != "planned":
            continue
        sample.start()
        try:
            _, token = sample_request(store_id, sample)
        except AirflowFailException as err:
            fail_sample(sample, "import", str(err), log)
            continue
        requests.append(
            ImportRequest(key=sample.key, item=import_sources([sample.row], [sample.sources])[0], token=token)
        )
    outcome = run_imports(hook, store_id, role_arn, requests, aws_conn_id=aws_conn_id, log=log, **waiting)
    for key, result in outcome.items():
        sample = samples[key]
        if result["read_set_id"]:
            sample.read_set_id = str(result["read_set_id"])
        if result["status"] == "FINISHED":
            sample.status = "completed"
        else:
            fail_sample(sample, "import", str(result["message"]), log)


def digest_samples(
    hook: OmicsHook,
    samples: Mapping[str, RunSample],
    family: str,
    roots: Sequence[str],
    prefixes: Sequence[str],
    workers: int,
    log: Logger,
    only: Sequence[Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Digest the staged FASTQ sources of ``samples`` in the ETag ``family``, ``workers`` sources at once, each
    pinned to the plan's fingerprint (:func:`~airflow_provider_omics.readsets.verify.digest_source`): every source,
    or ``only`` these ``[sample key, part source]`` pairs (one batch of :func:`pack_run_digests`).

    Returns ``{"digests": {sample: DigestResult}, "failed": {sample: reason}}`` with the sources digested here
    (:func:`merge_digests` joins the batches): a source that cannot be digested (changed, removed, not FASTQ) is
    reported for its sample alone.
    """
    wanted = None if only is None else {(str(key), str(part_source)) for key, part_source in only}
    digests: dict[str, DigestResult] = {}
    jobs: list[tuple[str, str, PlannedSource]] = []
    for key, sample in samples.items():
        reason = digest_skip_reason(sample.row.file_type)
        mine = [
            (key, part_source, planned)
            for part_source, planned in sorted(sample.sources.items())
            if wanted is None or (key, part_source) in wanted
        ]
        if wanted is not None and not mine:
            continue
        digests[key] = DigestResult(
            family=None if reason else family, file_type=sample.row.file_type, sources={}, skipped=reason
        )
        if not reason:
            jobs.extend(mine)
    failed: dict[str, str] = {}
    if wanted is not None and len(jobs) != len(wanted):
        # A batch names a source the plan does not hold, or one not to digest: the plan and this task disagree.
        missing = sorted(wanted - {(key, part_source) for key, part_source, _ in jobs})
        for key, part_source in missing:
            log.error("%s: %s is not a FASTQ source of the plan to digest", key, part_source)
            failed[key] = f"{part_source} is not a FASTQ source of the plan to digest"
    log.info(
        "Digesting %d source(s) of %d sample(s), %.1f MB staged, %d at once",
        len(jobs),
        len({key for key, _, _ in jobs}),
        sum(int(planned["size"]) for _, _, planned in jobs) / 1e6,
        max(1, workers),
    )

    def digest_one(job: tuple[str, str, PlannedSource]) -> None:
        key, part_source, planned = job
        try:
            digest = digest_source(hook, part_source, planned, family, roots, prefixes, log)
            digests[key]["sources"][part_source] = {**digest, "fingerprint": planned["fingerprint"]}
        except AirflowFailException as err:
            log.error("%s: %s", key, err)
            failed[key] = str(err)
            progress.add(nbytes=int(planned["size"]), failed=True)
        else:
            progress.add(nbytes=int(planned["size"]))

    staged = sum(int(planned["size"]) for _, _, planned in jobs)
    with (
        Progress("digest", "sources", len(jobs), staged, log) as progress,
        ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="omics-digest") as pool,
    ):
        list(pool.map(digest_one, jobs))
    return {"digests": digests, "failed": failed}


def verify_samples(
    hook: OmicsHook, store_id: str, samples: Mapping[str, RunSample], digested: Any, log: Logger
) -> list[dict[str, Any]]:
    """Verify every ``active`` sample's read set against its staged data
    (:func:`~airflow_provider_omics.readsets.verify.verify_read_set` with the digest step's output ``digested``:
    one output, or the mapped tasks' outputs, :func:`merge_digests`): a mismatch, or a FASTQ source whose digest
    failed or is missing, fails that sample alone. Returns the verified results, to announce."""
    merged = merge_digests(digested, samples)
    digests: Mapping[str, Any] = merged["digests"]
    digest_failures: Mapping[str, str] = merged["failed"]
    verified: list[dict[str, Any]] = []
    todo = [(key, sample) for key, sample in samples.items() if sample.status == "active" and sample.read_set_id]
    with Progress("verify", "samples", len(todo), 0, log) as progress:
        for key, sample in todo:
            result = _verify_sample(hook, store_id, key, sample, digests, digest_failures, log)
            if result is not None:
                verified.append(result)
            progress.add(failed=result is None)
    return verified


def _verify_sample(
    hook: OmicsHook,
    store_id: str,
    key: str,
    sample: RunSample,
    digests: Mapping[str, Any],
    digest_failures: Mapping[str, str],
    log: Logger,
) -> dict[str, Any] | None:
    """Verify one ``active`` sample that has a read set (:func:`verify_samples`): its result, or None when it
    failed."""
    if not sample.read_set_id:
        return None
    if key in digest_failures:
        fail_sample(sample, "digest", digest_failures[key], log)
        return None
    skipped = digest_skip_reason(sample.row.file_type)
    if skipped:
        # Its ETag cannot be reproduced: only the stored sizes are checked, whatever a digest task said.
        digest = DigestResult(family=None, file_type=sample.row.file_type, sources={}, skipped=skipped)
    else:
        # Every source of a FASTQ read set, or it is not verified: a source left out would go unchecked.
        digest = digests.get(key) or DigestResult(family=None, file_type="FASTQ", sources={}, skipped=None)
        missing = sorted(set(sample.sources) - set(digest["sources"]))
        if missing or not digest.get("family"):
            fail_sample(
                sample,
                "digest",
                f"no digest was computed for {', '.join(missing) or 'its sources'} (see the digest tasks)",
                log,
            )
            return None
    try:
        result = verify_read_set(
            hook, store_id, sample.read_set_id, digest, sample.sources, log, adopted=sample.adopted
        )
    except AirflowFailException as err:
        fail_sample(sample, "verify", str(err), log)
        return None
    sample.verified = True
    sample.finish("verified")
    return result


def sample_outcome(sample: RunSample) -> str:
    """What happened to a sample, in the words of the summary: ``uploaded and verified``, ``already stored,
    verified before``, ``failed at wait_active: <the reason's first line>``..."""
    if sample.status == "failed":
        reason = (sample.reason or "no reason given").strip().splitlines()[0]
        return f"failed at {sample.failed_step or 'run'}: {reason}"
    if sample.status == "stored":
        return "already stored, verified before" if sample.verified else "already stored, not verified"
    # Taken up by this run's create or import step, or found in the store and proven by this run.
    stored_now = sample.started_at is not None
    how = "uploaded" if sample.record is not None else "imported"
    if sample.status == "verified":
        return f"{how} and verified" if stored_now else "already stored, verified now"
    if sample.status == "active":
        return f"{how}, ACTIVE, not verified" if stored_now else "already stored, ACTIVE, not verified"
    return f"stopped at {sample.status}"


# What a sample not at an end yet is doing, in the words of the run so far (:func:`run_so_far`).
ON_ITS_WAY = {
    "planned": "not started",
    "created": "uploading",
    "completed": "upload completed, waiting for ACTIVE",
    "active": "ACTIVE, to be verified",
}


def run_so_far(samples: Mapping[str, RunSample], step: str) -> dict[str, Any]:
    """Where the run stands after ``step``, for a user to read before the summary: a totals line (``after wait_active:
    3 verified, 5 already stored, 1 failed, 3 on their way (of 12 samples)``) and each sample's outcome in the
    summary's words, or what it is doing (:data:`ON_ITS_WAY`) when it is not at an end yet."""
    counts = dict.fromkeys(("verified", "already stored", "failed", "on their way"), 0)
    outcomes: dict[str, str] = {}
    for key, sample in samples.items():
        if sample.status in ("verified", "stored", "failed"):
            outcomes[key] = sample_outcome(sample)
            counts["already stored" if sample.status == "stored" else sample.status] += 1
        else:
            outcomes[key] = ON_ITS_WAY.get(sample.status, sample.status)
            counts["on their way"] += 1
    shown = ", ".join(f"{count} {word}" for word, count in counts.items() if count or word != "on their way")
    total = f"{len(samples)} sample{'s' if len(samples) != 1 else ''}"
    return {"step": step, "totals": f"after {step}: {shown} (of {total})", "samples": outcomes}


def reported_samples(outputs: Sequence[Any] | None, plan: Mapping[str, Any] | None) -> dict[str, RunSample] | None:
    """The run's samples as the last step that finished left them (``outputs``: the steps' outputs, latest first,
    with the plan's samples for the rows and sources); when a step after that one did not finish, a sample not at
    an end stopped there and fails, saying so. None when no step after the plan finished."""
    listed = list(outputs or [])
    latest = next((i for i, output in enumerate(listed) if output), None)
    if latest is None:
        return None
    samples = run_samples(listed[latest], plan)
    if latest > 0:
        for sample in samples.values():
            if sample.status not in ("verified", "stored", "failed"):
                sample.fail("run", f"stopped at {sample.status}: a later step of the run did not finish")
    return samples


def summary_table(samples: Mapping[str, RunSample]) -> list[dict[str, Any]]:
    """The run's table, one row per sample (:data:`SUMMARY_COLUMNS`)."""
    table: list[dict[str, Any]] = []
    for key, sample in samples.items():
        table.append(
            {
                "sample": key,
                "read_set_id": sample.read_set_id,
                "status": "skipped (already stored)" if sample.status == "stored" else sample.status,
                "outcome": sample_outcome(sample),
                "verified": sample.verified,
                "bytes": sum(planned["size"] for planned in sample.sources.values()),
                "seconds": sample.seconds(),
                "reason": sample.reason or "",
            }
        )
    return table


def summary_totals(table: Sequence[Mapping[str, Any]]) -> str:
    """The table's totals in one line: ``2 uploaded and verified, 5 already stored, 1 failed (of 8 samples,
    13.2 MB staged)``."""
    counts = dict.fromkeys(("uploaded and verified", "imported and verified", "already stored", "failed"), 0)
    other = 0
    for row in table:
        outcome = str(row.get("outcome") or "")
        word = next((w for w in counts if outcome.startswith(w)), None)
        if word is None:
            other += 1
        else:
            counts[word] += 1
    shown = {w: n for w, n in counts.items() if n or w in ("uploaded and verified", "already stored", "failed")}
    parts = [f"{count} {word}" for word, count in shown.items()] + ([f"{other} not verified"] if other else [])
    staged = sum(int(row.get("bytes") or 0) for row in table)
    return f"{', '.join(parts)} (of {len(table)} sample{'s' if len(table) != 1 else ''}, {staged / 1e6:.1f} MB staged)"


def summary_text(table: Sequence[Mapping[str, Any]]) -> str:
    """The run's table as the task log shows it, in aligned columns, and its totals line."""
    width = max([len(row["sample"]) for row in table] + [6])
    # The outcome last: a failure's reason is as long as it is, and the columns before it stay aligned.
    lines = [f"{'sample':<{width}}  {'read set':<12}  {'bytes':>12}  seconds  outcome"]
    lines += [
        f"{row['sample']:<{width}}  {row['read_set_id'] or '-':<12}  {row['bytes']:>12}  "
        f"{'-' if row['seconds'] is None else format(row['seconds'], '.1f'):>7}  {row.get('outcome') or row['status']}"
        for row in table
    ]
    lines.append(summary_totals(table))
    return "\n".join(lines)


# At most this many tasks show a run's failed samples in the grid; the last of them also carries the rest.
MAX_FAILURE_TASKS = 10
# A failure's first line, as the log view shows it without wrapping; the detail goes on the lines after it.
FIRST_LINE_CHARS = 100


def first_line(text: str, limit: int = FIRST_LINE_CHARS) -> str:
    """The first line of ``text``, cut to ``limit`` characters (ending in "...") when longer."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."


def run_failures(samples: Mapping[str, RunSample], max_tasks: int = MAX_FAILURE_TASKS) -> list[dict[str, Any]]:
    """The run's failed samples, one entry each (``sample``, ``step``, ``reason``), at most ``max_tasks``: the
    last entry then also names the other failed samples (``more``). Empty when none failed."""
    failed = [
        {"sample": key, "step": sample.failed_step or "run", "reason": sample.reason or "no reason given"}
        for key, sample in samples.items()
        if sample.status == "failed"
    ]
    if len(failed) <= max_tasks:
        return failed
    shown, rest = failed[: max_tasks - 1], failed[max_tasks - 1 :]
    return [*shown, {**rest[0], "more": [f["sample"] for f in rest[1:]]}]


def failure_message(failure: Mapping[str, Any]) -> str:
    """What the task of a failed sample fails with: ``S5/run1-S5 failed at wait_active: <reason>`` on a first line
    of at most :data:`FIRST_LINE_CHARS`, then the whole reason, and the other samples it stands for."""
    head = first_line(f"{failure['sample']} failed at {failure['step']}: {failure['reason']}")
    lines = [head, f"  reason: {failure['reason'].strip()}"]
    more = failure.get("more") or []
    if more:
        lines.append(f"  and {len(more)} more failed sample(s), listed in the run's summary: {', '.join(more)}")
    return "\n".join(lines)


def abort_samples(
    hook: OmicsHook,
    store_id: str,
    records: Mapping[str, UploadRecord],
    completed: Mapping[str, str],
    plan: Mapping[str, Any] | None,
    plan_tokens: bool,
    aws_conn_id: str | None,
    log: Logger,
) -> list[str]:
    """Abort every upload of a run that did not complete; returns the samples whose uploads were aborted.

    The uploads in progress are listed once. An upload is aborted when it carries the request token of a sample
    that did not complete (``completed``: sample -> read set): the tokens of create's ``records``, and, with
    ``plan_tokens``, the token of every ``planned`` sample of ``plan`` derived as create derives it
    (:func:`~airflow_provider_omics.readsets.request.sample_request`), so that an upload is found even when
    create's records are gone. So is every upload this provider left in progress for one of the plan's samples
    under another token (files staged before the current ones), whatever the sample's outcome.
    """
    tokens = {key: {record.client_token} for key, record in records.items()}
    identities: dict[str, dict[str, Any]] = {}
    # Per sample, the token of its current staged files: an upload under it is this run's (or one it shares with
    # another run of the same files), never stale.
    current: dict[str, set[str]] = {}
    for key, sample in run_samples(plan).items() if plan else ():
        try:
            request, planned_token = sample_request(store_id, sample)
        except AirflowFailException:
            continue  # create refused it too: nothing was started
        identities[key] = request
        current[key] = {planned_token}
        if sample.status == "planned" and plan_tokens:
            tokens.setdefault(key, set()).add(planned_token)
        else:
            tokens.setdefault(key, set())
    with service_errors("ListMultipartReadSetUploads", aws_conn_id):
        in_progress = hook.list_multipart_read_set_uploads(store_id)
    by_token: dict[str, list[str]] = {}
    for upload in in_progress:
        token = (upload.get("tags") or {}).get(REQUEST_TAG)
        if token:
            by_token.setdefault(token, []).append(upload["uploadId"])
    aborted = []
    for key in sorted(tokens):
        record = records.get(key)
        upload_ids = [record.upload_id] if record is not None and record.upload_id else []
        upload_ids += [u for token in sorted(tokens[key]) for u in by_token.get(token, []) if u not in upload_ids]
        if abort_uploads(hook, store_id, upload_ids, completed.get(key), record, aws_conn_id, log):
            aborted.append(key)
        # What an earlier try left for files staged before the current ones (another token): never needed.
        keep = tokens[key] | current.get(key, set()) | ({record.client_token} if record is not None else set())
        sample_identity = identities.get(key) or (record.identity() if record is not None else None)
        stale = sample_identity is not None and abort_stale_uploads(
            hook, store_id, in_progress, sample_identity, keep, aws_conn_id, log
        )
        if stale and key not in aborted:
            aborted.append(key)
    if aborted:
        log.warning("Aborted the uploads of %s.", ", ".join(aborted))
    return aborted
