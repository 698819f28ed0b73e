"""The emulator's background work: the activation of read sets and read set import jobs, each in a thread of
its own, on the state of :class:`.models.OmicsBackend`.

After complete, a background thread waits ``activation_delay`` seconds, checks the content (see
:mod:`.content`) and moves the read set from PROCESSING_UPLOAD to ACTIVE or UPLOAD_FAILED
(:class:`ActivationWorker`). Tests that must see PROCESSING_UPLOAD (or must not) hold that move with the
activation gate of :mod:`.gates` (:meth:`.models.OmicsBackend.hold_activations`) instead of racing the delay.

A read set import job (StartReadSetImportJob) runs in a background thread of its own (:class:`ImportJobWorker`):
after ``import_job_delay`` seconds it moves from SUBMITTED to IN_PROGRESS, reads each source's objects from the
S3 endpoint the backend was given (``s3_endpoint_url``; boto3's own configuration without one;
:class:`S3Reader`), streaming them in 1 MiB reads into the parts of a new read set (100 MiB each, like the
parts of a direct upload), and hands each read set to the same activation as a completed upload: the same
content check, ETags, PROCESSING_UPLOAD -> ACTIVE / UPLOAD_FAILED, gated by
:meth:`.models.OmicsBackend.hold_activations`. Once every read set has settled, the job is COMPLETED,
COMPLETED_WITH_FAILURES (some sources FAILED) or FAILED (all of them). :meth:`.models.OmicsBackend.
hold_import_jobs` keeps jobs at SUBMITTED, or at IN_PROGRESS, until released (the import job gate of
:mod:`.gates`). A job interrupted by a stop carries on from its last persisted step on the next start.

The workers change the backend's records under its lock, persist them with its own save functions and notify
its condition after every change of status (:class:`BackendState`: what they are given of the backend).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_omics.testing.content import ContentError, Interrupted, SourceReport, check_source
from airflow_provider_omics.testing.gates import ActivationGate, ImportJobGate
from airflow_provider_omics.testing.shapes import (
    CHUNK_SIZE,
    IMPORT_JOB_STATUSES,
    S3_URI_PATTERN,
    ImportJob,
    ReadSet,
    ReadSetImportSource,
    SequenceStore,
    StoredPart,
    etag_algorithm,
    now,
)
from airflow_provider_omics.testing.validation import job_status_message

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendState:
    """What the workers use of the backend: its condition (on its lock), its stop event, the records they change
    (the backend's own dicts) and how to persist them.

    Every record is read and changed under ``condition``; ``stop`` is set when the emulator stops.
    """

    condition: threading.Condition
    stop: threading.Event
    stores: dict[str, SequenceStore]
    read_sets: dict[str, ReadSet]
    import_jobs: dict[str, ImportJob]
    new_id: Callable[[], str]
    read_set_dir: Callable[[str], Path]
    save_read_set: Callable[[ReadSet], None]
    save_import_job: Callable[[ImportJob], None]


class SourceUnreadable(Exception):
    """An S3 object of an import source cannot be read; the message names it."""


def _wait_for_threads(
    threads: dict[str, threading.Thread], lock: threading.Condition, timeout: float, what: str
) -> None:
    """Block until ``threads`` (read under ``lock``) is empty; :class:`TimeoutError` naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with lock:
            running = list(threads.values())
        if not running:
            return
        for thread in running:
            thread.join(max(0.0, deadline - time.monotonic()))
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} still running")


class ActivationWorker:
    """Moves read sets from PROCESSING_UPLOAD to ACTIVE or UPLOAD_FAILED, one thread each.

    :param delay: seconds a read set stays PROCESSING_UPLOAD, at least.
    """

    def __init__(self, state: BackendState, gate: ActivationGate, *, delay: float) -> None:
        self._state = state
        self._gate = gate
        self.delay = delay
        # The running activations, by read set id.
        self.threads: dict[str, threading.Thread] = {}

    def schedule(self, read_set_id: str) -> None:
        thread = threading.Thread(
            target=self._activate, args=(read_set_id,), name=f"omics-activate-{read_set_id}", daemon=True
        )
        # Registered and started under the lock: close() never sees a thread it cannot join yet.
        with self._state.condition:
            self.threads[read_set_id] = thread
            thread.start()

    def _activate(self, read_set_id: str) -> None:
        state = self._state
        try:
            if state.stop.wait(self.delay):
                return
            with state.condition:
                read_set = state.read_sets[read_set_id]
                family = state.stores[read_set.store_id].etag_family
                sources = {
                    source: [state.read_set_dir(read_set_id) / source / p.file for p in parts]
                    for source, parts in read_set.sources.items()
                }
                file_type = read_set.file_type
            reports: dict[str, SourceReport] = {}
            status, message = "ACTIVE", None
            try:
                for source, paths in sorted(sources.items()):
                    reports[source] = check_source(file_type, paths, family, source, state.stop)
                if file_type == "FASTQ" and len(reports) == 2:
                    first, second = reports["SOURCE1"].read_count, reports["SOURCE2"].read_count
                    if first != second:
                        raise ContentError(f"paired FASTQ: SOURCE1 has {first} records but SOURCE2 has {second}")
            except Interrupted:
                return
            except ContentError as exc:
                status, message = "UPLOAD_FAILED", str(exc)[:255]
            except OSError as exc:
                status, message = "UPLOAD_FAILED", f"could not read the uploaded parts: {exc}"[:255]
            with state.condition:
                # The status changes under the same lock as the gate's check: a hold taken before this point
                # keeps the read set PROCESSING_UPLOAD, whatever the content check has found.
                if not self._gate.wait(read_set_id):
                    return  # still PROCESSING_UPLOAD on disk: the activation resumes on the next start
                read_set = state.read_sets[read_set_id]
                read_set.status, read_set.status_message = status, message
                if status == "ACTIVE":
                    read_set.etags = {source.lower(): report.etag for source, report in reports.items()}
                    if file_type == "FASTQ":
                        read_set.read_count = sum(r.read_count or 0 for r in reports.values())
                        read_set.base_count = sum(r.base_count or 0 for r in reports.values())
                else:
                    read_set.etag_algorithm = None
                state.save_read_set(read_set)
                state.condition.notify_all()  # import jobs wait for their read sets to settle
        except Exception:  # a bug here must not kill the emulator silently
            log.exception("activation of read set %s failed", read_set_id)
        finally:
            with state.condition, contextlib.suppress(KeyError):
                if self.threads.get(read_set_id) is threading.current_thread():
                    del self.threads[read_set_id]

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Block until no read set is being activated; held activations count as running."""
        _wait_for_threads(self.threads, self._state.condition, timeout, "read set activations")


class S3Reader:
    """Reads the S3 objects of import sources into the parts of a read set, with one boto3 client made on first
    use.

    :param endpoint_url: the S3 endpoint (moto's server, MinIO, ...); ``None``: boto3's own configuration.
    :param access_key: with ``secret_key``, the client's keys; without them, boto3's credential chain.
    """

    def __init__(
        self,
        *,
        endpoint_url: str | None,
        region: str,
        access_key: str | None = None,
        secret_key: str | None = None,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self._keys = (access_key, secret_key)
        self._client: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                access_key, secret_key = self._keys
                # Path-style addressing: a local endpoint (moto, MinIO) has no per-bucket host names.
                config = Config(
                    retries={"mode": "standard", "max_attempts": 3},
                    s3={"addressing_style": "path"} if self.endpoint_url else None,
                )
                self._client = boto3.session.Session().client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    region_name=self.region,
                    aws_access_key_id=access_key,
                    aws_secret_access_key=secret_key,
                    config=config,
                )
            return self._client

    def download(self, uri: str, directory: Path, part_size: int, stop: threading.Event) -> list[StoredPart]:
        """Stream the object at ``uri`` into parts of at most ``part_size`` bytes under ``directory``.

        :class:`SourceUnreadable` if it cannot be read or is empty; :class:`.content.Interrupted` once ``stop``
        is set.
        """
        from botocore.exceptions import BotoCoreError, ClientError
        from urllib3.exceptions import HTTPError

        found = S3_URI_PATTERN.fullmatch(uri)
        assert found is not None  # checked by StartReadSetImportJob
        bucket, key = found[1], found[2]
        try:
            body = self.client().get_object(Bucket=bucket, Key=key)["Body"]
        except ClientError as exc:
            error = exc.response.get("Error", {})
            detail = f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
            raise SourceUnreadable(f"{uri}: {detail}") from None
        except (BotoCoreError, HTTPError, OSError) as exc:
            raise SourceUnreadable(f"could not read {uri}: {exc}") from None
        directory.mkdir()
        parts: list[StoredPart] = []
        handle = None
        try:
            while True:
                if stop.is_set():
                    raise Interrupted()
                try:
                    chunk = body.read(CHUNK_SIZE)
                except (BotoCoreError, HTTPError, OSError) as exc:
                    raise SourceUnreadable(f"could not read {uri}: {exc}") from None
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    if handle is None or parts[-1].size == part_size:
                        if handle is not None:
                            handle.close()
                        part = StoredPart(len(parts) + 1, 0, f"{len(parts) + 1}-{uuid.uuid4().hex[:12]}.part")
                        handle = open(directory / part.file, "wb")  # noqa: SIM115 - one per part, closed below
                        parts.append(part)
                    take = min(len(view), part_size - parts[-1].size)
                    handle.write(view[:take])
                    parts[-1].size += take
                    view = view[take:]
        finally:
            if handle is not None:
                handle.close()
            body.close()
        if not parts:
            raise SourceUnreadable(f"{uri}: the object is empty")
        return parts


class ImportJobWorker:
    """Runs read set import jobs, one thread each (see the module).

    :param activations: where the read sets a job writes are activated.
    :param reader: reads the sources' S3 objects.
    :param part_size: the size of the parts an object is cut into, asked at each source.
    :param delay: seconds a job stays SUBMITTED, at least.
    """

    def __init__(
        self,
        state: BackendState,
        gate: ImportJobGate,
        activations: ActivationWorker,
        reader: S3Reader,
        *,
        part_size: Callable[[], int],
        delay: float,
    ) -> None:
        self._state = state
        self._gate = gate
        self._activations = activations
        self.reader = reader
        self._part_size = part_size
        self.delay = delay
        # The running jobs, by job id.
        self.threads: dict[str, threading.Thread] = {}

    def schedule(self, job_id: str) -> None:
        thread = threading.Thread(target=self._run, args=(job_id,), name=f"omics-import-{job_id}", daemon=True)
        # Registered and started under the lock: close() never sees a thread it cannot join yet.
        with self._state.condition:
            self.threads[job_id] = thread
            thread.start()

    def _run(self, job_id: str) -> None:
        state = self._state
        try:
            if state.stop.wait(self.delay):
                return
            with state.condition:
                job = state.import_jobs[job_id]
                if job.status == "SUBMITTED":
                    if not self._gate.wait(job_id, "SUBMITTED"):
                        return
                    job.status = "IN_PROGRESS"
                    self._save_and_notify(job)
            # Read every source first, then wait for the read sets: their activations run side by side.
            for source in job.sources:
                if source.status in ("FINISHED", "FAILED") or source.read_set_id in state.read_sets:
                    continue
                if not self._fetch(job, source):
                    return
            for source in job.sources:
                if source.status not in ("FINISHED", "FAILED") and not self._settle(job, source):
                    return
            with state.condition:
                if not self._gate.wait(job_id, "IN_PROGRESS"):
                    return
                failed = sum(source.status == "FAILED" for source in job.sources)
                total = len(job.sources)
                if not failed:
                    job.status, job.status_message = "COMPLETED", None
                elif failed < total:
                    job.status = "COMPLETED_WITH_FAILURES"
                    job.status_message = f"{failed} of {total} sources failed"
                else:
                    job.status = "FAILED"
                    job.status_message = "the source failed" if total == 1 else f"all {total} sources failed"
                job.completion_time = now()
                self._save_and_notify(job)
        except Exception:  # a bug here must not kill the emulator silently
            log.exception("read set import job %s failed", job_id)
        finally:
            with state.condition, contextlib.suppress(KeyError):
                if self.threads.get(job_id) is threading.current_thread():
                    del self.threads[job_id]

    def _save_and_notify(self, job: ImportJob) -> None:
        """Under the lock: persist ``job`` and wake whoever waits for a change of it."""
        self._state.save_import_job(job)
        self._state.condition.notify_all()

    def _fetch(self, job: ImportJob, source: ReadSetImportSource) -> bool:
        """Copy the source's objects into a new read set and start its activation, or fail the source; False
        if the emulator is stopping (the source starts over on the next start)."""
        state = self._state
        with state.condition:
            if source.read_set_id is None:
                source.read_set_id = state.new_id()
            source.status = "IN_PROGRESS"
            self._save_and_notify(job)
            read_set_dir = state.read_set_dir(source.read_set_id)
            family = state.stores[job.store_id].etag_family
        shutil.rmtree(read_set_dir, ignore_errors=True)  # what an interrupted attempt left
        read_set_dir.mkdir()
        part_size = self._part_size()
        try:
            stored = {
                part_source: self.reader.download(uri, read_set_dir / part_source, part_size, state.stop)
                for part_source, uri in source.objects().items()
            }
        except Interrupted:
            return False
        except SourceUnreadable as exc:
            shutil.rmtree(read_set_dir, ignore_errors=True)
            with state.condition:
                source.status, source.status_message = "FAILED", job_status_message(str(exc))
                source.read_set_id = None
                self._save_and_notify(job)
            return True
        with state.condition:
            read_set = ReadSet(
                id=source.read_set_id,
                store_id=job.store_id,
                upload_id=job.id,
                file_type=source.source_file_type,
                subject_id=source.subject_id,
                sample_id=source.sample_id,
                name=source.name,
                creation_time=now(),
                generated_from=source.generated_from,
                reference_arn=source.reference_arn,
                description=source.description,
                tags=dict(source.tags),
                sources=stored,
                etag_algorithm=etag_algorithm(source.source_file_type, family),
                creation_type="IMPORT",
            )
            state.save_read_set(read_set)
            state.read_sets[read_set.id] = read_set
            state.condition.notify_all()
        self._activations.schedule(read_set.id)
        return True

    def _settle(self, job: ImportJob, source: ReadSetImportSource) -> bool:
        """Wait for the source's read set to leave PROCESSING_UPLOAD and give the source its outcome; False if
        the emulator is stopping."""
        state = self._state
        read_set_id = source.read_set_id
        assert read_set_id is not None
        with state.condition:
            state.condition.wait_for(
                lambda: state.stop.is_set() or state.read_sets[read_set_id].status != "PROCESSING_UPLOAD"
            )
            if state.stop.is_set():
                return False
            read_set = state.read_sets[read_set_id]
            if read_set.status == "ACTIVE":
                source.status, source.status_message = "FINISHED", None
            else:
                source.status = "FAILED"
                source.status_message = job_status_message(
                    read_set.status_message or f"read set {read_set_id} is {read_set.status}"
                )
            self._save_and_notify(job)
        return True

    def wait_for_status(self, job_id: str, statuses: str | Iterable[str], timeout: float = 30.0) -> dict[str, Any]:
        """Block until import job ``job_id`` has one of ``statuses``; returns its GetReadSetImportJob answer.

        Waits on the job's changes, not on a clock (``timeout`` only catches a hang, as :class:`TimeoutError`).
        """
        wanted = {statuses} if isinstance(statuses, str) else set(statuses)
        unknown = wanted - set(IMPORT_JOB_STATUSES)
        if unknown:
            raise ValueError(f"unknown import job statuses {sorted(unknown)}")
        state = self._state
        with state.condition:
            job = state.import_jobs[job_id]
            if not state.condition.wait_for(lambda: job.status in wanted, timeout):
                raise TimeoutError(f"import job {job_id} is {job.status}, not {' or '.join(sorted(wanted))}")
            return job.describe(state.read_sets)

    def wait_for_read_sets(self, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """Block until import job ``job_id`` has read every source: each one has its read set written (in
        whatever status its activation has reached) or has FAILED. Returns its GetReadSetImportJob answer.

        Waits on the job's changes, not on a clock (``timeout`` only catches a hang, as :class:`TimeoutError`).
        """
        state = self._state
        with state.condition:
            job = state.import_jobs[job_id]

            def read() -> bool:
                return all(source.status == "FAILED" or source.read_set_id in state.read_sets for source in job.sources)

            if not state.condition.wait_for(read, timeout):
                raise TimeoutError(f"import job {job_id} ({job.status}) has not read all its sources")
            return job.describe(state.read_sets)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Block until no import job is running; held jobs count as running."""
        _wait_for_threads(self.threads, self._state.condition, timeout, "read set import jobs")
