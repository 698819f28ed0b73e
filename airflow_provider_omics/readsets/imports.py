"""Import jobs (StartReadSetImportJob): the choice of path, the sources and tokens of a job, starting each request
exactly once, waiting for the jobs and reading their outcome."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_omics.hooks.omics import IMPORT_JOB_STATES, OmicsHook
from airflow_provider_omics.readsets import Logger
from airflow_provider_omics.readsets.identity import existing_read_sets, request_token, resolve_existing
from airflow_provider_omics.readsets.request import only_read_set
from airflow_provider_omics.utils.errors import OmicsInputError, service_errors
from airflow_provider_omics.utils.payloads import ManifestRow, PlannedSource, UploadRecord
from airflow_provider_omics.utils.tags import REQUEST_TAG

# StartReadSetImportJob takes 1 to 100 sources (service model: StartReadSetImportJobRequest.sources).
MAX_SOURCES_PER_JOB = 100
# The XCom key under which the operator pushes its job ids as soon as they exist, and its per-source outcome.
IMPORT_JOBS_KEY = "import_jobs"
IMPORTED_KEY = "read_sets"
# The AWS partitions with HealthOmics and IAM roles it can assume (commercial, China, GovCloud).
ROLE_ARN_PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
# The service model's RoleArn: 20 to 2048 characters. IAM: a role's path is "/" or "/.../" of printable ASCII, at
# most 512 characters; its name 1 to 64 of letters, digits and +=,.@_- (IAM's Role.Path and Role.RoleName).
ROLE_ARN_LENGTH = (20, 2048)
ROLE_PATH_MAX = 512
_ROLE_ARN = re.compile(
    rf"arn:(?P<partition>{'|'.join(map(re.escape, ROLE_ARN_PARTITIONS))}):iam::[0-9]{{12}}:role"
    r"(?P<path>/(?:[\x21-\x7e]+/)?)(?P<name>[A-Za-z0-9_+=,.@-]{1,64})"
)
# Import job statuses, from the waiter (see OmicsHook): ended badly, and ended at all.
JOB_FAILED = IMPORT_JOB_STATES.failure
JOB_DONE = IMPORT_JOB_STATES.done


def check_role_arn(role_arn: Any) -> str:
    """The import role's ARN, or an input error that says what one looks like and where to give it."""
    if not role_arn:
        raise OmicsInputError(
            "No import role: give role_arn, or set omics_import_role_arn in the AWS connection's extra. HealthOmics "
            "reads the S3 objects as this role (a role HealthOmics may assume, allowed to read the objects)."
        )
    low, high = ROLE_ARN_LENGTH
    matched = _ROLE_ARN.fullmatch(role_arn) if isinstance(role_arn, str) and low <= len(role_arn) <= high else None
    if matched is None or len(matched["path"]) > ROLE_PATH_MAX:
        shown = repr(role_arn) if len(repr(role_arn)) <= 200 else repr(role_arn)[:196] + "...'"
        raise OmicsInputError(
            f"role_arn={shown} is not an IAM role ARN: expected arn:aws:iam::<12-digit account>:role/<name> (or "
            f"role/<path>/<name>), the partition {', '.join(ROLE_ARN_PARTITIONS[:-1])} or {ROLE_ARN_PARTITIONS[-1]}, "
            f"the name 1 to 64 letters, digits and +=,.@_-, the path at most {ROLE_PATH_MAX} characters, the whole "
            f"{low} to {high}. Copy the role's ARN from the IAM console."
        )
    return role_arn


def import_sources(
    rows: Sequence[ManifestRow], planned: Sequence[Mapping[str, PlannedSource]] | None = None
) -> list[dict[str, Any]]:
    """The service's ``sources`` items for checked manifest rows, in their order.

    ``planned`` (per row, its sources as the plan checked them): the job reads exactly the objects that were
    checked, their canonical ``location`` (``s3://bucket/key`` rebuilt from the checked parts), not the URI as
    the manifest spelled it.
    """
    items = []
    for index, row in enumerate(rows):
        uris = list(row.sources)
        if planned is not None:
            checked = planned[index]
            uris = [checked[part_source]["location"] for part_source in sorted(checked)]
        files = {"source1": uris[0], **({"source2": uris[1]} if len(uris) > 1 else {})}
        item: dict[str, Any] = {
            "sourceFiles": files,
            "sourceFileType": row.file_type,
            "subjectId": row.subject_id,
            "sampleId": row.sample_id,
            "name": row.name,
        }
        optional = {
            "referenceArn": row.reference_arn,
            "generatedFrom": row.generated_from,
            "description": row.description,
            "tags": dict(row.tags) or None,
        }
        item.update({key: value for key, value in optional.items() if value})
        items.append(item)
    return items


def import_token(sources: Sequence[Mapping[str, Any]], scope: Any = None) -> str:
    """The clientToken of one job: its sources and ``scope``.

    The read set paths give no scope: their sources carry their request tokens, so the job token is their
    content, never the run, and a retry, a cleared task and another run asking for the same sources get back the
    job already started instead of starting a second one; the token that follows a job of the same sources that
    had ended is scoped by that job's id. :class:`OmicsStartReadSetImportJobOperator` scopes its jobs by its task
    instance and the job's index.
    """
    payload = json.dumps([list(sources), scope], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


# Jobs started for one set of sources at most, when every one found had already ended (see run_imports).
MAX_JOB_STARTS = 5
# How a read set gets into the store: ``upload`` (CreateMultipartReadSetUpload and parts sent by the workers),
# ``import`` (StartReadSetImportJob: the service reads S3 itself) or ``auto`` (import where it can).
METHODS = ("auto", "upload", "import")
# The XCom key under which split or plan pushes the path it chose: {"method", "role_arn", "reason"}.
METHOD_KEY = "method"


def choose_method(
    method: Any, uris: Sequence[str], role_arn: Any, hook: OmicsHook, aws_conn_id: str | None, log: Logger
) -> dict[str, Any]:
    """The path for sources ``uris``: ``{"method": "upload" | "import", "role_arn", "reason"}``, logged.

    ``auto`` imports when every source is on S3 and an import role is configured (``role_arn``, else
    ``omics_import_role_arn`` in the connection's extra), and uploads otherwise. ``import`` refuses sources that
    are not on S3 and a missing role, before anything exists on the service. A role that is given but is not an
    IAM role ARN is refused whatever the method, rather than silently ignored.
    """
    if method not in METHODS:
        raise OmicsInputError(f"method={method!r} is not one of {', '.join(METHODS)}.")
    role = role_arn or hook.import_role_arn() or None
    local = [uri for uri in uris if not str(uri).startswith("s3://")]
    if method == "upload":
        choice = {"method": "upload", "role_arn": None, "reason": "method=upload"}
    elif method == "import":
        if local:
            raise OmicsInputError(
                "method=import reads only S3 objects, and these are not: " + ", ".join(local) + ". Stage them on "
                "S3, or use method=upload (or auto)."
            )
        choice = {"method": "import", "role_arn": check_role_arn(role), "reason": "method=import"}
    elif local:
        shown = ", ".join(local[:3]) + (f" and {len(local) - 3} more" if len(local) > 3 else "")
        choice = {
            "method": "upload",
            "role_arn": None,
            "reason": f"{len(local)} of {len(uris)} source(s) are not on S3 ({shown}): an import job reads only S3",
        }
    elif not role:
        choice = {
            "method": "upload",
            "role_arn": None,
            "reason": (
                f"every source is on S3 but no import role is configured (role_arn, or omics_import_role_arn in "
                f"the extra of connection {aws_conn_id!r})"
            ),
        }
    else:
        choice = {
            "method": "import",
            "role_arn": check_role_arn(role),
            "reason": f"every source is on S3 and import role {role} is configured",
        }
    log.info("method=%s: %s the read set(s): %s.", method, choice["method"], choice["reason"])
    return choice


def chosen_method(ti: Any, task_id: str) -> str:
    """The path the task ``task_id`` chose (its ``method`` XCom); ``upload`` when it chose none (a split or plan
    of an earlier version of the provider, which only uploaded)."""
    choice = ti.xcom_pull(task_ids=task_id, key=METHOD_KEY)
    return str(choice["method"]) if isinstance(choice, Mapping) and choice.get("method") else "upload"


@dataclass
class ImportRequest:
    """One read set to import: its key in the caller's results, the service's ``sources`` item and the request
    token (the one the direct upload of the same request would carry, see
    :func:`~airflow_provider_omics.readsets.identity.request_token`)."""

    key: str
    item: dict[str, Any]
    token: str


def run_imports(
    hook: OmicsHook,
    store_id: str,
    role_arn: str,
    requests: Sequence[ImportRequest],
    *,
    aws_conn_id: str | None,
    log: Logger,
    waiter_delay: float,
    waiter_max_attempts: int,
    on_jobs: Callable[[list[str]], None] | None = None,
    known_jobs: Sequence[str] = (),
    before_wait: Callable[[list[str]], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Import each request exactly once, wait for the jobs, and return per key ``{"read_set_id", "status"
    (FINISHED or FAILED), "message", "job_id"}``.

    Each source is tagged with its request token (:data:`~airflow_provider_omics.hooks.omics.REQUEST_TAG`), as
    a direct upload is, and before anything starts each request is looked for, in this order: an import job
    still running that carries its token (an earlier try of this task: waited for, not started again), a read
    set with its token (imported or uploaded by an earlier try: reused), an upload in progress with its token
    (an earlier try uploaded directly: refused, naming it). What is left starts in jobs of at most 100 sources,
    each with a ``clientToken`` derived from its sources (their content, :func:`import_token`), so a retry whose
    answer was lost, and another run importing the same sources, get the same job. ``on_jobs`` is called with
    the ids of the jobs waited for (found running, or started) as they become known. ``known_jobs``: jobs this
    try already waited for (a task resumed after deferring): a request one of them carries is taken from it,
    whatever its status, so a source it failed is not imported again.
    ``before_wait`` is called with the jobs' ids before the wait (a deferrable task defers there).

    :raises AirflowException: the jobs did not finish within ``waiter_delay * waiter_max_attempts`` seconds
        (retryable: a retry waits for the same jobs).
    """
    outcome: dict[str, dict[str, Any]] = {}
    jobs: dict[str, str] = {}
    to_start: list[ImportRequest] = []
    with service_errors("Looking for the imports and uploads of these read sets", aws_conn_id):
        in_flight = hook.imports_in_flight(store_id)
        for job_id in known_jobs:
            for source in hook.get_read_set_import_job(store_id, str(job_id)).get("sources") or []:
                token = (source.get("tags") or {}).get(REQUEST_TAG)
                if token:
                    in_flight[token] = str(job_id)
        uploading = {
            (upload.get("tags") or {}).get(REQUEST_TAG): str(upload["uploadId"])
            for upload in hook.list_multipart_read_set_uploads(store_id)
        }
        for request in requests:
            item = request.item
            if request.token in in_flight:
                jobs[request.key] = in_flight[request.token]
                log.info("%s: import job %s of this request is running: waiting for it", request.key, jobs[request.key])
                continue
            found = hook.find_read_sets(
                store_id,
                request.token,
                name=item["name"],
                sample_id=item["sampleId"],
                subject_id=item["subjectId"],
                creation_type=None,
            )
            if found:
                read_set_id = only_read_set(found, request.token)
                log.info("%s: already stored by an earlier try of this run as read set %s", request.key, read_set_id)
                outcome[request.key] = {
                    "read_set_id": read_set_id,
                    "status": "FINISHED",
                    "message": "stored by an earlier try of this run: reused",
                    "job_id": None,
                }
            elif request.token in uploading:
                outcome[request.key] = {
                    "read_set_id": None,
                    "status": "FAILED",
                    "message": (
                        f"upload {uploading[request.token]} of this request is in progress (an earlier try, or "
                        "another run of the same files, uploads it directly): importing it too would store it twice. "
                        "Let that upload finish (or abort it), then clear the run"
                    ),
                    "job_id": None,
                }
            else:
                to_start.append(request)
    if jobs and on_jobs is not None:
        on_jobs(list(dict.fromkeys(jobs.values())))
    for index in range(0, len(to_start), MAX_SOURCES_PER_JOB):
        chunk = to_start[index : index + MAX_SOURCES_PER_JOB]
        items = [{**r.item, "tags": {**(r.item.get("tags") or {}), REQUEST_TAG: r.token}} for r in chunk]
        token = import_token(items)
        for _ in range(MAX_JOB_STARTS):
            with service_errors("StartReadSetImportJob", aws_conn_id):
                job = hook.start_read_set_import_job(store_id, role_arn, items, client_token=token)
            if job.get("status") not in JOB_DONE:
                break
            # The token gave back a job of the same sources that had ended (none of them is stored: see above):
            # an earlier attempt that failed. The next token, derived from it, starts a new one.
            log.info("Import job %s of these sources had ended (%s): starting a new one.", job["id"], job.get("status"))
            token = import_token(items, scope=f"after job {job['id']}")
        job_id = str(job["id"])
        jobs.update({r.key: job_id for r in chunk})
        log.info("Import job %s: %d source(s), %s", job_id, len(chunk), job.get("status"))
        if on_jobs is not None:
            on_jobs(list(dict.fromkeys(jobs.values())))
    job_ids = list(dict.fromkeys(jobs.values()))
    if before_wait is not None and job_ids:
        before_wait(job_ids)
    finished = wait_for_import_jobs(hook, store_id, job_ids, aws_conn_id, log, waiter_delay, waiter_max_attempts)
    tokens = {r.key: r.token for r in requests}
    for key, job_id in jobs.items():
        job = finished[job_id]
        source = next(
            (s for s in job.get("sources") or [] if (s.get("tags") or {}).get(REQUEST_TAG) == tokens[key]), None
        )
        if source is None:
            outcome[key] = {
                "read_set_id": None,
                "status": "FAILED",
                "message": f"import job {job_id} ({job.get('status')}) does not list this source",
                "job_id": job_id,
            }
            continue
        ok = source.get("status") == "FINISHED" and bool(source.get("readSetId"))
        outcome[key] = {
            "read_set_id": source.get("readSetId"),
            "status": "FINISHED" if ok else "FAILED",
            "message": None
            if ok
            else (
                f"import job {job_id} is {job.get('status')}, this source {source.get('status')}: "
                f"{source.get('statusMessage') or job.get('statusMessage') or 'no status message'}"
            ),
            "job_id": job_id,
        }
    return outcome


def import_read_set(
    hook: OmicsHook,
    request: Mapping[str, Any],
    sources: Mapping[str, PlannedSource],
    role_arn: str,
    on_existing: str,
    *,
    aws_conn_id: str | None,
    log: Logger,
    on_record: Callable[[UploadRecord], None],
    known_jobs: Sequence[str] = (),
    **waiting: Any,
) -> str:
    """Import one checked read set ``request`` (:func:`~airflow_provider_omics.readsets.request.check_request`) of
    the planned ``sources`` exactly once, under the token its direct upload would carry, and return its read set
    id. A read set of the sample already in the store is resolved as ``on_existing`` says
    (:func:`~airflow_provider_omics.readsets.identity.resolve_existing`): one kept or adopted is returned, its
    record given to ``on_record`` (verify reads how it was found). ``waiting``: :func:`run_imports`' keyword
    arguments about the wait.

    :raises AirflowFailException: a read set that ``on_existing`` refuses, or an import that failed.
    """
    store_id = request["sequenceStoreId"]
    token = request_token(request, sources)
    if not known_jobs:
        with service_errors("Looking for read sets of this sample already in the store", aws_conn_id):
            same, other = existing_read_sets(hook, store_id, request, token)
        found = resolve_existing(
            same, other, on_existing, request["sourceFileType"], f"{request['name']} (sample {request['sampleId']})"
        )
        if found.action == "fail":
            raise AirflowFailException(found.reason)
        if found.action != "upload" and found.read_set_id:
            record = UploadRecord.for_request(request, token)
            record.read_set_id, record.adopted, record.skip_verify = found.read_set_id, found.adopted, found.skip_verify
            on_record(record)
            log.info("Nothing is imported: %s.", found.reason)
            return found.read_set_id
    # The job reads the objects the plan checked: their canonical locations, not the URIs as they were spelled.
    item = {
        "sourceFiles": {part_source.lower(): planned["location"] for part_source, planned in sorted(sources.items())},
        **{key: request[key] for key in ("sourceFileType", "subjectId", "sampleId", "name")},
        **{key: request[key] for key in ("referenceArn", "generatedFrom", "description", "tags") if request.get(key)},
    }
    name = request["name"]
    outcome = run_imports(
        hook,
        store_id,
        role_arn,
        [ImportRequest(key=name, item=item, token=token)],
        aws_conn_id=aws_conn_id,
        log=log,
        known_jobs=known_jobs,
        **waiting,
    )[name]
    if outcome["status"] != "FINISHED" or not outcome["read_set_id"]:
        raise AirflowFailException(f"The import of {name} failed: {outcome['message']}")
    log.info("Imported %s as read set %s", name, outcome["read_set_id"])
    return str(outcome["read_set_id"])


def wait_for_import_jobs(
    hook: OmicsHook,
    store_id: str,
    job_ids: Sequence[str],
    aws_conn_id: str | None,
    log: Logger,
    waiter_delay: float,
    waiter_max_attempts: int,
) -> dict[str, dict[str, Any]]:
    """Each job once it ended (COMPLETED, COMPLETED_WITH_FAILURES, FAILED or CANCELLED), through the hook's waiter.

    :raises AirflowException: jobs still running after ``waiter_delay * waiter_max_attempts`` seconds (retryable).
    """
    with service_errors("GetReadSetImportJob", aws_conn_id):
        finished = hook.wait_for_import_jobs(store_id, job_ids, delay=waiter_delay, max_attempts=waiter_max_attempts)
    for job_id, job in finished.items():
        log.info("Import job %s is %s", job_id, job.get("status"))
    pending = [job_id for job_id in job_ids if job_id not in finished]
    if pending:
        raise AirflowException(
            f"Import jobs {', '.join(pending)} still running after {waiter_delay * waiter_max_attempts:.0f} s: a "
            "retry of this task waits for them again (it starts nothing new)."
        )
    return finished


def import_outcome(
    hook: OmicsHook,
    sequence_store_id: str,
    job_ids: Sequence[str],
    log: Logger,
    on_imported: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Each source of the jobs, in order: its sample, name, read set id (when imported), status and message.

    :param on_imported: before a failure is raised, given ``{"sample_id", "name", "read_set_id"}`` of each source
        that was imported, so that the read sets a partly failed job stored are not lost.
    :raises AirflowFailException: a job FAILED or was CANCELLED, or sources failed (COMPLETED_WITH_FAILURES):
        naming each failed source with the service's ``statusMessage`` and the read sets that were imported.
    """
    outcome: list[dict[str, Any]] = []
    problems: list[str] = []
    for job_id in job_ids:
        job = hook.get_read_set_import_job(sequence_store_id, job_id)
        status = job.get("status")
        if status in JOB_FAILED:
            problems.append(f"job {job_id} is {status}: {job.get('statusMessage') or 'no status message'}")
        for source in job.get("sources") or []:
            entry = {
                "job_id": job_id,
                "sample_id": source.get("sampleId"),
                "name": source.get("name"),
                "source1": (source.get("sourceFiles") or {}).get("source1"),
                "read_set_id": source.get("readSetId"),
                "status": source.get("status"),
                "status_message": source.get("statusMessage"),
            }
            outcome.append(entry)
            if entry["status"] != "FINISHED" and status not in JOB_FAILED:
                problems.append(
                    f"{entry['sample_id']}/{entry['name']} ({entry['source1']}): {entry['status']}: "
                    f"{entry['status_message'] or 'no status message'}"
                )
    imported = [entry for entry in outcome if entry["read_set_id"] and entry["status"] == "FINISHED"]
    for entry in imported:
        log.info("Imported %s/%s as read set %s", entry["sample_id"], entry["name"], entry["read_set_id"])
    if problems:
        if on_imported is not None:
            on_imported([{key: entry[key] for key in ("sample_id", "name", "read_set_id")} for entry in imported])
        raise AirflowFailException(
            f"The import failed for {len(outcome) - len(imported)} of {len(outcome)} source(s): "
            + "; ".join(problems)
            + (
                ". Imported: " + ", ".join(f"{e['sample_id']}/{e['name']} -> {e['read_set_id']}" for e in imported)
                if imported
                else ". Nothing was imported."
            )
        )
    return outcome
