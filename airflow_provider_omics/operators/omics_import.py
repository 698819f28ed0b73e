"""Import read sets from S3 with StartReadSetImportJob: HealthOmics reads the objects itself, as a role the user
gives, up to 100 read sets per job, and no byte passes through an Airflow worker."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.amazon.aws.utils.waiter_with_logging import wait
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, AirflowSkipException, conf

from airflow_provider_omics.hooks.omics import REQUEST_TAG, OmicsHook
from airflow_provider_omics.links.omics import OmicsReadSetImportJobLink
from airflow_provider_omics.operators.omics import Logger, _check_store, _only_read_set
from airflow_provider_omics.triggers.omics import OmicsReadSetImportJobCompleteTrigger, waiter_settings
from airflow_provider_omics.utils.errors import OmicsInputError, service_errors
from airflow_provider_omics.utils.inputs import check_store_id
from airflow_provider_omics.utils.manifest import check_manifest_sources, parse_manifest, read_manifest
from airflow_provider_omics.utils.payloads import ManifestRow, PlannedSample, PlannedSource

if TYPE_CHECKING:
    from airflow.sdk import Context

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
JOB_FAILED = frozenset({"FAILED", "CANCELLED"})
JOB_DONE = frozenset({"COMPLETED", "COMPLETED_WITH_FAILURES", *JOB_FAILED})


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
    :func:`~airflow_provider_omics.operators.omics.request_token`)."""

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
                read_set_id = _only_read_set(found, request.token)
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


def defer_while_running(
    task: Any, store_id: str, job_ids: Sequence[str], waiter_delay: float, waiter_max_attempts: int
) -> None:
    """Defer ``task`` (to its ``execute_complete``) on the first of the jobs that has not ended; return when
    all have."""
    for job_id in job_ids:
        if task.hook.get_read_set_import_job(store_id, job_id).get("status") in JOB_DONE:
            continue
        task.defer(
            trigger=OmicsReadSetImportJobCompleteTrigger(
                sequence_store_id=store_id,
                job_id=job_id,
                **waiter_settings(
                    task, waiter_delay=max(1, int(waiter_delay)), waiter_max_attempts=int(waiter_max_attempts)
                ),
            ),
            method_name="execute_complete",
        )


def resumed_import(task: Any, context: Context, event: dict[str, Any] | None) -> list[str]:
    """After a deferral: the jobs this try waits for (XCom ``import_jobs``); a trigger that gave up on a job that
    has not ended fails the task (retryable: its retry finds the job again)."""
    validated = validate_execute_complete_event(event)
    ti = context["ti"]
    job_ids = [str(j) for j in ti.xcom_pull(task_ids=task.task_id, key=IMPORT_JOBS_KEY, map_indexes=ti.map_index) or []]
    if validated.get("status") != "success":
        job_id = str(validated.get("job_id"))
        store_id = check_store_id(task.sequence_store_id)
        if task.hook.get_read_set_import_job(store_id, job_id).get("status") not in JOB_DONE:
            raise AirflowException(f"Waiting for import job {job_id} failed: {validated.get('message')}")
    return job_ids


def wait_for_import_jobs(
    hook: OmicsHook,
    store_id: str,
    job_ids: Sequence[str],
    aws_conn_id: str | None,
    log: Logger,
    waiter_delay: float,
    waiter_max_attempts: int,
) -> dict[str, dict[str, Any]]:
    """Each job once it ended (COMPLETED, COMPLETED_WITH_FAILURES, FAILED or CANCELLED), all of them each round."""
    finished: dict[str, dict[str, Any]] = {}
    pending = list(job_ids)
    for attempt in range(waiter_max_attempts):
        with service_errors("GetReadSetImportJob", aws_conn_id):
            for job_id in list(pending):
                job = hook.get_read_set_import_job(store_id, job_id)
                if job.get("status") in JOB_DONE:
                    log.info("Import job %s is %s", job_id, job.get("status"))
                    finished[job_id] = job
                    pending.remove(job_id)
        if not pending:
            return finished
        if attempt + 1 < waiter_max_attempts:
            time.sleep(waiter_delay)
    raise AirflowException(
        f"Import jobs {', '.join(pending)} still running after {waiter_delay * waiter_max_attempts:.0f} s: a retry "
        "of this task waits for them again (it starts nothing new)."
    )


def import_outcome(
    hook: OmicsHook, sequence_store_id: str, job_ids: Sequence[str], log: Logger
) -> list[dict[str, Any]]:
    """Each source of the jobs, in order: its sample, name, read set id (when imported), status and message.

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
        _check_store(self.hook, store_id, self.aws_conn_id)
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
        from airflow_provider_omics.operators.omics import REQUEST_FIELDS, check_request, request_token
        from airflow_provider_omics.readsets import identity
        from airflow_provider_omics.utils.payloads import UPLOAD_RECORD_KEY, UploadRecord

        ti = context["ti"]
        choice = ti.xcom_pull(task_ids=self.method_task_id, key=METHOD_KEY) or {}
        if choice.get("method") != "import":
            raise AirflowSkipException(f"{self.method_task_id} chose a direct upload: nothing to import.")
        request = check_request(**{field: getattr(self, field) for field in REQUEST_FIELDS})
        on_existing = identity.check_on_existing(self.on_existing)
        store_id = request["sequenceStoreId"]
        _check_store(self.hook, store_id, self.aws_conn_id)
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


__all__ = [
    "IMPORTED_KEY",
    "IMPORT_JOBS_KEY",
    "MAX_SOURCES_PER_JOB",
    "METHODS",
    "METHOD_KEY",
    "ImportRequest",
    "OmicsImportReadSetOperator",
    "OmicsStartReadSetImportJobOperator",
    "check_role_arn",
    "choose_method",
    "chosen_method",
    "import_outcome",
    "import_sources",
    "import_token",
    "run_imports",
    "wait_for_import_jobs",
]
