"""OmicsHook: the boto3 ``omics`` client on the user's AWS connection, and every call of a direct upload.

Operators hold parameters and the Airflow lifecycle; this hook holds the boto3 calls, the staged-source readers
and the part-upload loop that the mapped tasks (and the benchmark) run.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import botocore.config
from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore.exceptions import ClientError, HTTPClientError, WaiterError

from airflow_provider_omics.hooks.pacing import HostPacer, host_pacers, pace_client, quotas_from_extra
from airflow_provider_omics.staging.reports import write_report
from airflow_provider_omics.staging.sources import (
    Fingerprint,
    SourceError,
    StagedSource,
    parse_source,
)
from airflow_provider_omics.utils.errors import error_code, is_transient
from airflow_provider_omics.utils.parts import PartRange
from airflow_provider_omics.utils.payloads import PartResult
from airflow_provider_omics.utils.tags import REQUEST_TAG

if TYPE_CHECKING:
    from os import PathLike

    from mypy_boto3_omics.client import OmicsClient

# The provider's custom waiters (loaded by AwsBaseHook through ``waiter_path``) and the one source of the statuses.
WAITERS_PATH = Path(__file__).parents[1].joinpath("waiters", "omics.json")


@dataclass(frozen=True)
class WaiterStates:
    """The statuses a waiter of ``waiters/omics.json`` ends on (success, failure) and waits through (retry)."""

    success: frozenset[str]
    failure: frozenset[str]
    retry: frozenset[str]

    @property
    def done(self) -> frozenset[str]:
        """The statuses that end the wait, well or not."""
        return self.success | self.failure

    def outcome(self, status: str | None) -> str:
        """``success``, ``failure`` or ``retry`` for ``status``. A status the waiter does not name is waited
        through, as botocore's waiter does (a status the service adds later must not fail a good upload)."""
        if status in self.success:
            return "success"
        if status in self.failure:
            return "failure"
        return "retry"


def waiter_states(waiter_name: str) -> WaiterStates:
    """The statuses of the waiter ``waiter_name`` (its path acceptors on ``status``)."""
    acceptors = json.loads(WAITERS_PATH.read_text())["waiters"][waiter_name]["acceptors"]
    by_state: dict[str, set[str]] = {"success": set(), "failure": set(), "retry": set()}
    for acceptor in acceptors:
        if acceptor.get("matcher") == "path" and acceptor.get("argument") == "status":
            by_state[acceptor["state"]].add(acceptor["expected"])
    return WaiterStates(**{state: frozenset(values) for state, values in by_state.items()})


# Read set statuses (GetReadSetMetadata, ListReadSets): ACTIVE; on the way (PROCESSING_UPLOAD, ACTIVATING); failed.
READ_SET_STATES = waiter_states("read_set_active")
# Import job statuses (GetReadSetImportJob): ended well (COMPLETED, COMPLETED_WITH_FAILURES), failed, running.
IMPORT_JOB_STATES = waiter_states("read_set_import_job_complete")
# Read sets that no longer count as stored.
GONE_READ_SET_STATUSES = frozenset({"DELETING", "DELETED"})
# How much earlier than a read set's known creation time a ListReadSets looks (createdAfter), so that clocks and
# the service's rounding of timestamps never hide it.
CREATED_AFTER_MARGIN = timedelta(minutes=5)


@dataclass
class ReadSetsWait:
    """A wait for many read sets of one store to leave PROCESSING_UPLOAD / ACTIVATING, with no I/O of its own:
    the hook's blocking wait and the trigger's asynchronous one feed it the same way.

    ``pending``: read set id -> a time (ISO 8601) it was created no earlier than, or None when unknown (then it is
    looked at by id once, and its ``creationTime`` kept for the rounds after).
    """

    pending: dict[str, str | None]

    def created_after(self) -> datetime | None:
        """The ``createdAfter`` filter of one ListReadSets that shows every pending read set with a known time."""
        times = [datetime.fromisoformat(t) for t in self.pending.values() if t]
        return min(times) - CREATED_AFTER_MARGIN if times else None

    def listed(self, read_sets: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """Of ListReadSets items, the pending read sets' ``{"status", "statusMessage"}``."""
        return {str(rs["id"]): _status_of(rs) for rs in read_sets if rs.get("id") in self.pending}

    def observe(self, statuses: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """Take one round's statuses; returns the read sets that ended (ACTIVE, or failed), no longer pending."""
        ended: dict[str, dict[str, Any]] = {}
        for read_set_id, status in statuses.items():
            if read_set_id not in self.pending:
                continue
            if READ_SET_STATES.outcome(status.get("status")) != "retry":
                ended[read_set_id] = dict(status)
                del self.pending[read_set_id]
            elif status.get("creationTime") and not self.pending[read_set_id]:
                self.pending[read_set_id] = str(status["creationTime"])
        return ended


def _status_of(read_set: Mapping[str, Any]) -> dict[str, Any]:
    created = read_set.get("creationTime")
    return {
        "status": read_set.get("status"),
        "statusMessage": read_set.get("statusMessage"),
        "creationTime": created.isoformat() if isinstance(created, datetime) else created,
    }


# botocore's default (legacy, 5 attempts) gives up too soon under sustained throttling of a busy store; used
# only when the connection's botocore config sets no retries of its own.
DEFAULT_RETRIES: Any = {"mode": "standard", "max_attempts": 8}
# Rounds of the part loop's own retry of transient failures, after botocore's retries are spent.
PART_ATTEMPTS = 3
# Seconds before the part loop's second round; doubled each round, capped at 10 s.
PART_RETRY_DELAY = 2.0
# Bytes per read of a part body and per send() on the socket. botocore has urllib3 send a file-like body in
# 128 KiB blocks; with 1 MiB blocks, 10 parts in flight on 2 cores went from 2.6 to 3.0 GB/s with a quarter
# less kernel CPU in the uploading process (benchmarks/README.md). 2 and 4 MiB blocks were not faster.
SEND_BLOCK_SIZE = 1024 * 1024


def _set_send_block_size(client: Any, block_size: int) -> None:
    """Have ``client`` send file-like bodies in ``block_size`` blocks.

    botocore has no setting for it: the block size is a keyword of its urllib3 pool manager, read when a
    connection pool is created, so it applies to the pools created from now on. Left alone when botocore's
    internals are not the expected ones, or when the client goes through a proxy (its managers are built apart).
    """
    session = getattr(getattr(client, "_endpoint", None), "http_session", None)
    pool_kw = getattr(getattr(session, "_manager", None), "connection_pool_kw", None)
    if isinstance(pool_kw, dict) and "blocksize" in pool_kw:
        pool_kw["blocksize"] = block_size


def source_error_of(err: BaseException) -> SourceError | None:
    """The staged-source error behind ``err``: botocore wraps whatever a request body raises in HTTPClientError."""
    if isinstance(err, SourceError):
        return err
    wrapped = getattr(err, "kwargs", {}).get("error") if isinstance(err, HTTPClientError) else None
    return wrapped if isinstance(wrapped, SourceError) else None


def _no_retry_of_source_errors(caught_exception: BaseException | None = None, **kwargs: Any) -> bool | None:
    """A botocore ``needs-retry`` handler: a part body that failed (the staged file changed) is not retried.

    botocore retries any HTTPClientError, and would read the changed file again eight times with backoff;
    False stops the retry, None leaves the decision to the retry mode.
    """
    return False if caught_exception is not None and source_error_of(caught_exception) else None


class OmicsHook(AwsBaseHook):
    """
    Interact with AWS HealthOmics sequence stores through the boto3 ``omics`` client.

    Takes the same arguments as :class:`~airflow.providers.amazon.aws.hooks.base_aws.AwsBaseHook`
    (``aws_conn_id``, ``region_name``, ``verify``, ``config``). When the connection configures an endpoint URL
    (its extra's ``endpoint_url``, or ``service_config.omics.endpoint_url``) clients are built with
    ``inject_host_prefix=False``: botocore would otherwise prepend ``storage-``/``control-storage-`` to the
    endpoint's host name.

    Its clients pace their calls within the service's API quotas, shared with every process of the host
    (:mod:`~airflow_provider_omics.hooks.pacing`); the connection's extra ``omics_quotas`` gives raised quotas
    (``{"UploadReadSetPart": 50}``) or turns the pacing off (``"off"``).

    :param source_aws_conn_id: connection used to read ``s3://`` staged sources; defaults to ``aws_conn_id``.
    """

    def __init__(self, *args: Any, source_aws_conn_id: str | None = None, **kwargs: Any) -> None:
        kwargs["client_type"] = "omics"
        super().__init__(*args, **kwargs)
        self.source_aws_conn_id = source_aws_conn_id
        self._s3_conn: Any = None
        self._s3_client_lock = threading.Lock()

    @property
    def conn(self) -> OmicsClient:
        return super().conn

    @cached_property
    def waiter_path(self) -> PathLike[str] | None:
        return WAITERS_PATH

    @property
    def endpoint_url(self) -> str | None:
        return self.conn_config.get_service_endpoint_url(service_name="omics")

    def _get_config(self, config: botocore.config.Config | None = None) -> botocore.config.Config:
        config = super()._get_config(config)
        if "retries" not in getattr(config, "_user_provided_options", {}):
            config = config.merge(botocore.config.Config(retries=DEFAULT_RETRIES))
        if self.endpoint_url:
            config = config.merge(botocore.config.Config(inject_host_prefix=False))
        return config

    def get_client_type(
        self, region_name: str | None = None, config: botocore.config.Config | None = None, deferrable: bool = False
    ) -> Any:
        """The client :class:`AwsBaseHook` builds, its calls paced (not a trigger's asynchronous client)."""
        pacers = self.pacers
        client = super().get_client_type(region_name=region_name, config=config, deferrable=deferrable)
        if not deferrable:
            pace_client(client, pacers)
        return client

    @cached_property
    def pacers(self) -> dict[str, HostPacer]:
        """The host's pacer of each operation with a quota, by the connection's ``omics_quotas`` (none when
        ``"off"``). A bad ``omics_quotas`` raises ValueError here, before any call."""
        quotas = quotas_from_extra(self.conn_config.extra_config)
        if quotas is None:
            return {}
        return host_pacers(self.endpoint_url or f"omics.{self.region_name}", quotas)

    def get_upload_client(self, max_concurrency: int) -> OmicsClient:
        """A client whose connection pool fits ``max_concurrency`` parts in flight at once.

        The hook's own client serves when its pool is large enough, and a larger one is built once per hook:
        building a client (the Airflow connection, a session, the service model and endpoint rules) costs 0.1 to
        0.2 s of CPU, as much as streaming a few hundred MB, and a second client would hold its own connections.
        Part bodies are sent in :data:`SEND_BLOCK_SIZE` blocks.
        """
        pool = max(10, max_concurrency)
        if max_concurrency <= getattr(self.conn.meta.config, "max_pool_connections", 10):
            client = self.conn
        elif pool in self._upload_clients:
            client = self._upload_clients[pool]
        else:
            config = self.config.merge(botocore.config.Config(max_pool_connections=pool))
            client = self._upload_clients[pool] = self.get_client_type(region_name=self.region_name, config=config)
        # Only file-like bodies are sent in blocks: the JSON bodies of the other calls are sent whole.
        _set_send_block_size(client, SEND_BLOCK_SIZE)
        client.meta.events.register_first(
            "needs-retry.omics.UploadReadSetPart",
            _no_retry_of_source_errors,  # type: ignore[arg-type]  # the stubs type handlers as returning None
            unique_id="omics-source-errors",
        )
        return client

    @cached_property
    def _upload_clients(self) -> dict[int, OmicsClient]:
        return {}

    # -- sequence stores -------------------------------------------------------------------------------------

    def get_sequence_store(self, sequence_store_id: str) -> dict[str, Any]:
        """The store's description (its ``eTagAlgorithmFamily`` decides how FASTQ sources are digested).

        .. seealso::
            - :external+boto3:py:meth:`Omics.Client.get_sequence_store`
        """
        return dict(self.conn.get_sequence_store(id=sequence_store_id))

    # -- the direct upload -----------------------------------------------------------------------------------

    def create_multipart_read_set_upload(
        self,
        sequence_store_id: str,
        source_file_type: str,
        name: str,
        subject_id: str,
        sample_id: str,
        *,
        reference_arn: str | None = None,
        generated_from: str | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        client_token: str | None = None,
    ) -> dict[str, Any]:
        """Start a direct upload. Returns the response (``uploadId``, ``creationTime`` and the metadata echoed).

        .. seealso::
            - :external+boto3:py:meth:`Omics.Client.create_multipart_read_set_upload`
        """
        request: dict[str, Any] = {
            "sequenceStoreId": sequence_store_id,
            "sourceFileType": source_file_type,
            "name": name,
            "subjectId": subject_id,
            "sampleId": sample_id,
            "referenceArn": reference_arn,
            "generatedFrom": generated_from,
            "description": description,
            "tags": tags,
            "clientToken": client_token,
        }
        return dict(self.conn.create_multipart_read_set_upload(**{k: v for k, v in request.items() if v}))

    def upload_read_set_part(
        self,
        sequence_store_id: str,
        upload_id: str,
        part_source: str,
        part_number: int,
        payload: Any,
        client: OmicsClient | None = None,
    ) -> str:
        """UploadReadSetPart; ``payload`` is bytes or a seekable stream. Returns the part's checksum.

        .. seealso::
            - :external+boto3:py:meth:`Omics.Client.upload_read_set_part`
        """
        response = (client or self.conn).upload_read_set_part(
            sequenceStoreId=sequence_store_id,
            uploadId=upload_id,
            partSource=part_source,  # type: ignore[arg-type]
            partNumber=part_number,
            payload=payload,
        )
        return response["checksum"]

    def complete_multipart_read_set_upload(
        self, sequence_store_id: str, upload_id: str, parts: Sequence[PartResult]
    ) -> str:
        """CompleteMultipartReadSetUpload with parts sorted as the service wants them. Returns readSetId.

        .. seealso::
            - :external+boto3:py:meth:`Omics.Client.complete_multipart_read_set_upload`
        """
        response = self.conn.complete_multipart_read_set_upload(
            sequenceStoreId=sequence_store_id,
            uploadId=upload_id,
            parts=list(parts),  # type: ignore[arg-type]
        )
        return response["readSetId"]

    def abort_multipart_read_set_upload(self, sequence_store_id: str, upload_id: str) -> bool:
        """Abort the upload. Returns False when it is already gone (completed or aborted).

        .. seealso::
            - :external+boto3:py:meth:`Omics.Client.abort_multipart_read_set_upload`
        """
        try:
            self.conn.abort_multipart_read_set_upload(sequenceStoreId=sequence_store_id, uploadId=upload_id)
        except ClientError as err:
            if error_code(err) == "ResourceNotFoundException":
                return False
            raise
        return True

    def list_read_set_upload_parts(
        self, sequence_store_id: str, upload_id: str, part_source: str
    ) -> list[dict[str, Any]]:
        """Every part uploaded so far to one source of the upload (all pages).

        .. seealso::
            - :external+boto3:py:meth:`Omics.Client.list_read_set_upload_parts`
        """
        paginator = self.conn.get_paginator("list_read_set_upload_parts")
        pages = paginator.paginate(
            sequenceStoreId=sequence_store_id,
            uploadId=upload_id,
            partSource=part_source,  # type: ignore[arg-type]
        )
        return [dict(part) for page in pages for part in page.get("parts", [])]

    def list_multipart_read_set_uploads(self, sequence_store_id: str) -> list[dict[str, Any]]:
        """Every upload in progress in the store (all pages).

        .. seealso::
            - :external+boto3:py:meth:`Omics.Client.list_multipart_read_set_uploads`
        """
        paginator = self.conn.get_paginator("list_multipart_read_set_uploads")
        pages = paginator.paginate(sequenceStoreId=sequence_store_id)
        return [dict(upload) for page in pages for upload in page.get("uploads", [])]

    def start_read_set_import_job(
        self,
        sequence_store_id: str,
        role_arn: str,
        sources: Sequence[Mapping[str, Any]],
        client_token: str | None = None,
    ) -> dict[str, Any]:
        """Start a job in which HealthOmics reads up to 100 read sets from S3 itself, as ``role_arn``.

        :param sources: the service's ``sources`` items (``sourceFiles``, ``sourceFileType``, ``sampleId``, ...).
        :param client_token: the idempotency token: the same token and request give back the same job.
        :return: the job (``id``, ``status``, ``creationTime``, ...).

        .. seealso::
            - :external+boto3:py:meth:`Omics.Client.start_read_set_import_job`
        """
        kwargs: dict[str, Any] = {
            "sequenceStoreId": sequence_store_id,
            "roleArn": role_arn,
            "sources": [dict(source) for source in sources],
        }
        if client_token:
            kwargs["clientToken"] = client_token
        return dict(self.conn.start_read_set_import_job(**kwargs))

    def get_read_set_import_job(self, sequence_store_id: str, job_id: str) -> dict[str, Any]:
        """The job, its status and each source's status, ``statusMessage`` and ``readSetId``.

        .. seealso::
            - :external+boto3:py:meth:`Omics.Client.get_read_set_import_job`
        """
        return dict(self.conn.get_read_set_import_job(sequenceStoreId=sequence_store_id, id=job_id))

    def list_read_set_import_jobs(
        self,
        sequence_store_id: str,
        *,
        status: str | None = None,
        created_after: Any = None,
        created_before: Any = None,
    ) -> list[dict[str, Any]]:
        """The store's import jobs that match every filter given (all pages).

        .. seealso::
            - :external+boto3:py:meth:`Omics.Client.list_read_set_import_jobs`
        """
        filters = {"status": status, "createdAfter": created_after, "createdBefore": created_before}
        kwargs: dict[str, Any] = {"sequenceStoreId": sequence_store_id}
        if any(value is not None for value in filters.values()):
            kwargs["filter"] = {key: value for key, value in filters.items() if value is not None}
        paginator = self.conn.get_paginator("list_read_set_import_jobs")
        return [dict(job) for page in paginator.paginate(**kwargs) for job in page.get("importJobs", [])]

    def imports_in_flight(self, sequence_store_id: str) -> dict[str, str]:
        """The request tokens (:data:`REQUEST_TAG` of their sources) of the store's import jobs that are still
        SUBMITTED or IN_PROGRESS, each with its job's id."""
        tokens: dict[str, str] = {}
        for status in ("SUBMITTED", "IN_PROGRESS"):
            for job in self.list_read_set_import_jobs(sequence_store_id, status=status):
                for source in self.get_read_set_import_job(sequence_store_id, str(job["id"])).get("sources") or []:
                    token = (source.get("tags") or {}).get(REQUEST_TAG)
                    if token:
                        tokens[token] = str(job["id"])
        return tokens

    def import_role_arn(self) -> str | None:
        """The import role the connection names in its extra (``omics_import_role_arn``), if any."""
        value = self.conn_config.extra_config.get("omics_import_role_arn")
        return str(value) if value else None

    def get_read_set_metadata(self, sequence_store_id: str, read_set_id: str) -> dict[str, Any]:
        """.. seealso:: :external+boto3:py:meth:`Omics.Client.get_read_set_metadata`"""
        return dict(self.conn.get_read_set_metadata(sequenceStoreId=sequence_store_id, id=read_set_id))

    def list_read_sets(
        self,
        sequence_store_id: str,
        *,
        name: str | None = None,
        sample_id: str | None = None,
        subject_id: str | None = None,
        creation_type: str | None = None,
        created_after: Any = None,
    ) -> list[dict[str, Any]]:
        """Read sets of the store that match every filter given (all pages).

        .. seealso::
            - :external+boto3:py:meth:`Omics.Client.list_read_sets`
        """
        filters = {
            "name": name,
            "sampleId": sample_id,
            "subjectId": subject_id,
            "creationType": creation_type,
            "createdAfter": created_after,
        }
        paginator = self.conn.get_paginator("list_read_sets")
        pages = paginator.paginate(
            sequenceStoreId=sequence_store_id,
            filter={k: v for k, v in filters.items() if v is not None},  # type: ignore[arg-type]
        )
        return [dict(read_set) for page in pages for read_set in page.get("readSets", [])]

    def list_store_read_sets(
        self, sequence_store_id: str, max_calls: int, page_size: int = 100
    ) -> list[dict[str, Any]] | None:
        """Every read set of the store, ``page_size`` (at most 100) per ListReadSets call, when that takes at most
        ``max_calls`` calls; None when the store holds more (the caller then asks by filter instead, one call per
        question).

        .. seealso::
            - :external+boto3:py:meth:`Omics.Client.list_read_sets`
        """
        paginator = self.conn.get_paginator("list_read_sets")
        pages = paginator.paginate(sequenceStoreId=sequence_store_id, PaginationConfig={"PageSize": page_size})
        read_sets: list[dict[str, Any]] = []
        for calls, page in enumerate(pages, start=1):
            read_sets.extend(dict(read_set) for read_set in page.get("readSets", []))
            if page.get("nextToken") and calls >= max_calls:
                return None
        return read_sets

    def read_set_statuses(self, sequence_store_id: str, wait: ReadSetsWait) -> dict[str, dict[str, Any]]:
        """The ``status``, ``statusMessage`` and ``creationTime`` of each read set ``wait`` waits for, many per call:
        one ListReadSets of those created after the earliest known time (all pages), GetReadSetMetadata for the
        others (a time not known yet); a read set that no longer exists is DELETED."""
        statuses: dict[str, dict[str, Any]] = {}
        created_after = wait.created_after()
        if created_after is not None:
            statuses = wait.listed(self.list_read_sets(sequence_store_id, created_after=created_after))
        for read_set_id in wait.pending:
            if read_set_id in statuses:
                continue
            try:
                statuses[read_set_id] = _status_of(self.get_read_set_metadata(sequence_store_id, read_set_id))
            except ClientError as err:
                if error_code(err) != "ResourceNotFoundException":
                    raise
                statuses[read_set_id] = {"status": "DELETED", "statusMessage": "the read set no longer exists"}
        return statuses

    async def read_set_statuses_async(
        self, client: Any, sequence_store_id: str, wait: ReadSetsWait
    ) -> dict[str, dict[str, Any]]:
        """:meth:`read_set_statuses` through an asynchronous client (``get_async_conn``), for a trigger."""
        statuses: dict[str, dict[str, Any]] = {}
        created_after = wait.created_after()
        if created_after is not None:
            pages = client.get_paginator("list_read_sets").paginate(
                sequenceStoreId=sequence_store_id, filter={"createdAfter": created_after}
            )
            async for page in pages:
                statuses.update(wait.listed(page.get("readSets", [])))
        for read_set_id in list(wait.pending):
            if read_set_id in statuses:
                continue
            try:
                metadata = await client.get_read_set_metadata(sequenceStoreId=sequence_store_id, id=read_set_id)
            except ClientError as err:
                if error_code(err) != "ResourceNotFoundException":
                    raise
                statuses[read_set_id] = {"status": "DELETED", "statusMessage": "the read set no longer exists"}
                continue
            statuses[read_set_id] = _status_of(metadata)
        return statuses

    def wait_for_read_sets(
        self,
        sequence_store_id: str,
        read_sets: Mapping[str, str | None],
        *,
        delay: float,
        max_attempts: int,
        on_end: Callable[[str, Mapping[str, Any]], None],
        on_round: Callable[[Mapping[str, str | None]], None] | None = None,
    ) -> dict[str, str | None]:
        """Wait until each of ``read_sets`` (id -> created no earlier than, see :class:`ReadSetsWait`) is ACTIVE or
        failed, calling ``on_end(read_set_id, status)`` as each one ends; all of them looked at each round
        (:meth:`read_set_statuses`), at most ``max_attempts`` rounds ``delay`` seconds apart. ``on_round(pending)``
        is called after each round that leaves some on their way (the wait's progress).

        Returns the read sets still pending when the rounds ran out (empty when all ended).
        """
        wait = ReadSetsWait(dict(read_sets))
        for attempt in range(max_attempts):
            for read_set_id, status in wait.observe(self.read_set_statuses(sequence_store_id, wait)).items():
                on_end(read_set_id, status)
            if wait.pending and on_round is not None:
                on_round(wait.pending)
            if not wait.pending or attempt + 1 == max_attempts:
                break
            time.sleep(delay)
        return wait.pending

    def wait_for_import_jobs(
        self, sequence_store_id: str, job_ids: Sequence[str], *, delay: float, max_attempts: int
    ) -> dict[str, dict[str, Any]]:
        """Wait with the ``read_set_import_job_complete`` waiter until each job has ended (COMPLETED,
        COMPLETED_WITH_FAILURES, FAILED or CANCELLED), one after the other, within ``delay * max_attempts``
        seconds in all; returns each job (GetReadSetImportJob) that ended. A job still running when the time is up
        is left out."""
        deadline = time.monotonic() + delay * max_attempts
        ended: dict[str, dict[str, Any]] = {}
        for job_id in job_ids:
            attempts = max(1, int((deadline - time.monotonic()) // max(delay, 1e-3)) + 1)
            try:
                self.get_waiter("read_set_import_job_complete").wait(
                    sequenceStoreId=sequence_store_id,
                    id=job_id,
                    WaiterConfig={"Delay": delay, "MaxAttempts": attempts},
                )
            except WaiterError as err:
                # A failure acceptor (FAILED, CANCELLED) ended the job: its outcome is read below like any other.
                if "Max attempts exceeded" in str(err):
                    continue
                if not isinstance(err.last_response, dict) or "status" not in err.last_response:
                    raise
            job = self.get_read_set_import_job(sequence_store_id, job_id)
            if job.get("status") in IMPORT_JOB_STATES.done:
                ended[job_id] = job
        return ended

    def list_tags_for_resource(self, resource_arn: str) -> dict[str, str]:
        """.. seealso:: :external+boto3:py:meth:`Omics.Client.list_tags_for_resource`"""
        return dict(self.conn.list_tags_for_resource(resourceArn=resource_arn).get("tags", {}))

    def tag_resource(self, resource_arn: str, tags: Mapping[str, str]) -> None:
        """Add (or overwrite) ``tags`` on a sequence store or read set.

        .. seealso:: :external+boto3:py:meth:`Omics.Client.tag_resource`
        """
        self.conn.tag_resource(resourceArn=resource_arn, tags=dict(tags))

    # -- finding the result of a request whose answer was lost -------------------------------------------

    def find_uploads(self, sequence_store_id: str, client_token: str) -> list[dict[str, Any]]:
        """The uploads in progress that carry ``client_token`` in their :data:`REQUEST_TAG`."""
        return [
            upload
            for upload in self.list_multipart_read_set_uploads(sequence_store_id)
            if (upload.get("tags") or {}).get(REQUEST_TAG) == client_token
        ]

    def find_read_sets(
        self,
        sequence_store_id: str,
        client_token: str,
        *,
        name: str,
        sample_id: str,
        subject_id: str,
        upload_id: str | None = None,
        created_after: Any = None,
        creation_type: str | None = "UPLOAD",
    ) -> list[dict[str, Any]]:
        """The read sets that the request ``client_token`` produced (normally none or one).

        No single field identifies the read set an upload became, so several must agree: ListReadSets narrows to
        read sets of this name, sample and subject made by ``creation_type`` (UPLOAD, IMPORT, or None for either:
        a request of ``method="auto"`` is tagged the same way on both paths), created after the upload when that
        is known;
        each must carry ``client_token`` in its :data:`REQUEST_TAG` (ListTagsForResource); and when
        ``upload_id`` is given, a ``creationJobId`` that the service reports must be that upload. Deleted read
        sets do not count.
        """
        found = []
        candidates = self.list_read_sets(
            sequence_store_id,
            name=name,
            sample_id=sample_id,
            subject_id=subject_id,
            creation_type=creation_type,
            created_after=created_after,
        )
        for read_set in candidates:
            if read_set.get("status") in GONE_READ_SET_STATUSES:
                continue
            if self.list_tags_for_resource(read_set["arn"]).get(REQUEST_TAG) != client_token:
                continue
            if upload_id is not None:
                job = self.get_read_set_metadata(sequence_store_id, read_set["id"]).get("creationJobId")
                if job and job != upload_id:
                    continue
            found.append(read_set)
        return found

    # -- staged sources --------------------------------------------------------------------------------------

    def _s3_client(self) -> Any:
        """The S3 client that reads staged sources: built once per hook (a client costs about 0.2 s to build,
        a run's plan may name hundreds of S3 sources; boto3 clients are safe to share between threads)."""
        with self._s3_client_lock:
            if self._s3_conn is None:
                from airflow.providers.amazon.aws.hooks.s3 import S3Hook

                self._s3_conn = S3Hook(
                    aws_conn_id=self.source_aws_conn_id or self.aws_conn_id,
                    region_name=None if self.source_aws_conn_id else self._region_name,
                    verify=self._verify,
                ).get_conn()
            return self._s3_conn

    def staged_source(self, uri: str) -> StagedSource:
        """A reader for a local path, ``file://`` or ``s3://`` staged source."""
        return parse_source(uri, s3_client_factory=self._s3_client)

    def write_next_to_manifest(
        self,
        location: str,
        data: bytes,
        *,
        allowed_local_roots: Sequence[str] = (),
        allowed_s3_prefixes: Sequence[str] = (),
    ) -> str:
        """Write a small report (a run's summary CSV) at ``location``, judged where it is written, not where the
        manifest was read at plan time.

        An ``s3://`` URI must be a canonical object URI (:func:`~airflow_provider_omics.staging.sources.parse_source`
        refuses every other spelling) within ``allowed_s3_prefixes``; it is written with PutObject through the
        sources' connection. A local path must be canonical (absolute, no ``.`` or ``..``), within
        ``allowed_local_roots`` and outside the never-read locations; its directory is opened one name at a time
        from ``/`` without following any symlink, and the report is written to a new file in that open directory
        and renamed into place there: a directory swapped for a symlink since the plan is refused, not followed.

        :param location: where to write, from :func:`~airflow_provider_omics.readsets.run.summary_location`.
        :param data: the report's bytes.
        :param allowed_local_roots: the effective local roots (``allow_lists``); empty allows any directory.
        :param allowed_s3_prefixes: the effective S3 prefixes (``allow_lists``); empty allows any bucket.
        :returns: where it was written (for S3, the canonical URI).
        :raises SourceError: a target outside the allow-lists, in a denied location, or reached through a symlink.
        """
        return write_report(
            location,
            data,
            s3_client_factory=self._s3_client,
            allowed_local_roots=allowed_local_roots,
            allowed_s3_prefixes=allowed_s3_prefixes,
        )

    def upload_parts(
        self,
        sequence_store_id: str,
        upload_id: str,
        source: StagedSource,
        fingerprint: Fingerprint,
        ranges: Iterable[PartRange],
        max_concurrency: int = 4,
        on_part: Callable[[PartRange, float], None] | None = None,
    ) -> list[PartResult]:
        """Stream byte ranges of a staged source to UploadReadSetPart, ``max_concurrency`` at a time.

        The source is pinned to its fingerprint once (:meth:`StagedSource.pin`): a local file is opened once and
        every part reads that file, not whatever its path names meanwhile; after the last part the source is
        checked again, so a file rewritten during the upload fails the task instead of being completed. Each
        part streams from a window onto its range (never the whole part in memory). A transient failure that
        outlives botocore's retries is retried here a few rounds; anything else cancels the parts not yet
        started and is raised. Returns ``{"partNumber", "partSource", "checksum"}`` per part, in order.
        """
        client = self.get_upload_client(max_concurrency)
        with source.pin(fingerprint) as pinned:

            def upload_one(part: PartRange) -> PartResult:
                for attempt in range(1, PART_ATTEMPTS + 1):
                    started = time.monotonic()
                    try:
                        with pinned.open_range(part.offset, part.length) as body:
                            checksum = self.upload_read_set_part(
                                sequence_store_id, upload_id, part.part_source, part.part_number, body, client
                            )
                    except Exception as err:
                        if source_error := source_error_of(err):
                            raise source_error from None
                        if attempt == PART_ATTEMPTS or not is_transient(err):
                            raise
                        self.log.warning(
                            "%s part %d failed (%s); retrying, attempt %d of %d",
                            part.part_source,
                            part.part_number,
                            err,
                            attempt + 1,
                            PART_ATTEMPTS,
                        )
                        time.sleep(min(PART_RETRY_DELAY * 2 ** (attempt - 1), 10))
                        continue
                    if on_part:
                        on_part(part, time.monotonic() - started)
                    return PartResult(partNumber=part.part_number, partSource=part.part_source, checksum=checksum)
                raise AssertionError("unreachable")

            parts = list(ranges)
            with ThreadPoolExecutor(max_workers=max(1, max_concurrency), thread_name_prefix="omics-part") as pool:
                futures = [pool.submit(upload_one, part) for part in parts]
                wait(futures, return_when=FIRST_EXCEPTION)
                failed = [f for f in futures if f.done() and f.exception() is not None]
                if failed:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise failed[0].exception()  # type: ignore[misc]
                results = [f.result() for f in futures]
            pinned.check_unchanged()
            return results


# -- reports written next to a manifest ----------------------------------------------------------------------------
