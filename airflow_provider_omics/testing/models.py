"""State and rules of the emulated HealthOmics sequence store API, without HTTP (the moto ``models.py``).

:class:`OmicsBackend` holds sequence stores, multipart uploads, their parts and read sets, enforces the
service's validation rules (raising the modelled errors of :mod:`.exceptions`) and persists everything under
one data directory, so that an emulator restarted on the same directory carries on:

```
<data_dir>/stores/<storeId>.json
<data_dir>/uploads/<uploadId>/upload.json
<data_dir>/uploads/<uploadId>/SOURCE1/<partNumber>.json        part metadata (checksum, size, data file)
<data_dir>/uploads/<uploadId>/SOURCE1/<partNumber>-<token>.part part bytes
<data_dir>/readsets/<readSetId>/readset.json                   (parts moved here on complete)
<data_dir>/importjobs/<jobId>.json                              read set import jobs and their sources
<data_dir>/tmp/                                                 parts being received
```

One emulator at a time may use a data directory. Part bodies stream from the caller's file object to a
temporary file in 1 MiB reads, outside the lock, and are moved into place with ``os.replace`` under the lock:
concurrent uploads of parts to one upload (even of the same part number) are safe, the last one to finish
wins. Every JSON file is written to a temporary name and renamed, so a crash never leaves half a file behind.

The background work runs in :mod:`.workers`, on the state held here: after complete, the read set's activation
(the content check of :mod:`.content`, then PROCESSING_UPLOAD -> ACTIVE / UPLOAD_FAILED), and each read set
import job (StartReadSetImportJob), which reads its sources from S3 into new read sets. Tests hold either at a
gate of :mod:`.gates` (:meth:`OmicsBackend.hold_activations`, :meth:`OmicsBackend.hold_import_jobs`) instead of
racing their delays; the holds are not persisted. An activation or a job interrupted by a stop carries on from
its last persisted step on the next start.

Facts the service does not document and the emulator chooses:

- for paired FASTQ ``totalReadCount``/``totalBaseCount`` count the reads of both sources and the two sources
  must hold the same number of records;
- GetReadSet streams back the parts as uploaded (``files.*.partSize`` is the size of the first part) and
  answers ConflictException until the read set is ACTIVE;
- ``creationJobId`` of a read set made by a direct upload is the ``uploadId`` of that upload; that of an
  imported read set is the id of its import job (``creationType`` IMPORT);
- an import job does not assume its ``roleArn`` (which must still be an IAM role ARN): the emulator reads the
  objects with its own S3 credentials. A source that cannot be read (no such bucket or object, access denied,
  an empty object, a connection error) is FAILED with a ``statusMessage`` naming the object and gets no read
  set; a source whose content fails the check gets a read set in UPLOAD_FAILED and is FAILED with the read
  set's message (and its ``readSetId``). ``readSetId`` shows once the read set exists. A source's ``name`` is
  optional in the model: a read set imported without one has no ``name``;
- like CreateMultipartReadSetUpload, an import source may name a ``referenceArn`` for FASTQ and uBAM too, and
  keeps it;
- a ``clientToken`` of StartReadSetImportJob is scoped to the sequence store and never expires: reused with
  the same ``roleArn`` and sources it returns the same job (its status now), with different ones it is refused
  (ValidationException);
- CreateMultipartReadSetUpload and ListMultipartReadSetUploads leave out ``referenceArn`` and ``generatedFrom``
  when the upload was created without them, although the model marks them required in those answers: no value
  fits their patterns and means "none", and a client that copes with their absence copes with the service;
- a ``clientToken`` of CreateMultipartReadSetUpload is scoped to the sequence store and to uploads in
  progress: reused with the same parameters it returns the same upload, with different parameters it is
  refused (ValidationException), and once that upload was completed or aborted it starts a new upload;
- ListTagsForResource and TagResource know the ARNs of this emulator's sequence stores and read sets: an ARN
  that is not a HealthOmics ARN, or names a sequence store or read set with a malformed id, is a
  ValidationException; any other HealthOmics ARN (another region or account, a resource type the emulator
  does not model, an unknown id) is a ResourceNotFoundException. A resource holds at most 50 tags.

The backend's methods take the members of a request as named, typed arguments (:mod:`.responses` parses the
HTTP request into them); what those values may be, their lengths, patterns, enums and ranges, is checked here,
with the checks of :mod:`.validation`. The limits and enums of the service model (``MAX_PART_SIZE``,
``FILE_TYPES``, ``OPERATIONS``, ...), the request structures and the records live in :mod:`.shapes`; the
constants and records are importable from here too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from airflow_provider_omics.testing.exceptions import (
    ConflictException,
    OmicsError,
    RequestTimeoutException,
    ResourceNotFoundException,
    ValidationException,
)
from airflow_provider_omics.testing.gates import IMPORT_HOLD_STATUSES, ActivationGate, ImportJobGate
from airflow_provider_omics.testing.shapes import (
    ACCOUNT_ID,
    ARN_PATTERN,
    CHUNK_SIZE,
    ETAG_FAMILIES,
    FILE_TYPES,
    ID_PATTERN,
    IMPORT_JOB_STATUSES,
    IMPORT_SOURCE_STATUSES,
    JOB_STATUS_MESSAGE_LENGTH,
    MAX_IMPORT_SOURCES,
    MAX_PART_NUMBER,
    MAX_PART_SIZE,
    MAX_RESULTS,
    MAX_TAG_ARN_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    MAX_TAGS_PER_RESOURCE,
    OPERATIONS,
    PART_SOURCES,
    READ_SET_FILES,
    ROLE_ARN_LENGTH,
    S3_URI_PATTERN,
    TAG_KEY_LENGTH,
    CompletedPart,
    ImportJob,
    ImportReadSetFilter,
    Part,
    ReadSet,
    ReadSetFilter,
    ReadSetImportSource,
    ReadSetUploadPartFilter,
    SequenceStore,
    SequenceStoreFilter,
    StoredPart,
    Upload,
    etag_algorithm,
    now,
)
from airflow_provider_omics.testing.validation import (
    check_enum,
    check_id,
    check_reference_arn,
    check_role_arn,
    check_s3_uri,
    check_tags,
    check_text,
    created_within,
    job_status_message,
    paginate,
)
from airflow_provider_omics.testing.workers import ActivationWorker, BackendState, ImportJobWorker, S3Reader

try:  # ISA-L's checksums run at memory speed; isal is a dependency of the provider.
    from isal import isal_zlib as _checksums
except ImportError:  # pragma: no cover - isal ships wheels for every supported platform
    import zlib as _checksums  # type: ignore[no-redef]

# A HealthOmics ARN: arn:<partition>:omics:<region>:<account>:<resource>.
_OMICS_ARN_RE = re.compile(r"arn:(?P<partition>[^:]+):omics:(?P<region>[^:]*):(?P<account>[^:]*):(?P<resource>.+)")
_SEQUENCE_STORE_RESOURCE_RE = re.compile(r"sequenceStore/(?P<store>[^/]*)(?:/readSet/(?P<read_set>[^/]*))?")
_FALLBACK_RE = re.compile(r"$|^s3://([a-z0-9][a-z0-9-.]{1,61}[a-z0-9])/?((.{1,1024})/)?")


class BodyReader(Protocol):
    """What UploadReadSetPart reads a part from: a file object with ``readinto`` (``rfile``, ``BytesIO``)."""

    def readinto(self, buffer: Any, /) -> int | None: ...


# --- the backend ----------------------------------------------------------------------------------------


def _write_json(path: Path, data: Any) -> None:
    """Write ``path`` atomically: a reader (or a restart after a crash) sees the old or the new file."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


class _PartHash:
    """The opaque per-part checksum: CRC-32 and Adler-32 of the bytes, and their size.

    64 check bits computed at memory speed (ISA-L: tens of GB/s), so that hashing never limits ingest; a
    cryptographic hash such as SHA-1 (about 2 GB/s) measured as a third of the emulator's time per byte. Two
    parts with different content get the same checksum with a probability of about 2**-64.
    """

    def __init__(self) -> None:
        self._crc = 0
        self._adler = 1
        self.size = 0

    def update(self, data: memoryview) -> None:
        self._crc = _checksums.crc32(data, self._crc)
        self._adler = _checksums.adler32(data, self._adler)
        self.size += len(data)

    def hexdigest(self) -> str:
        return f"{self._crc:08x}{self._adler:08x}-{self.size:x}"


def _import_part_size() -> int:
    """The size of the parts an import job cuts an S3 object into: ``MAX_PART_SIZE``, the largest part of a
    direct upload, looked up at each source (so that a test can make it smaller)."""
    return MAX_PART_SIZE


class OmicsBackend:
    """The sequence-store service: stores, uploads, parts, read sets, import jobs, persisted under ``data_dir``.

    :param activation_delay: seconds a completed (or imported) read set stays PROCESSING_UPLOAD, at least.
    :param import_job_delay: seconds an import job stays SUBMITTED, at least.
    :param s3_endpoint_url: the S3 endpoint import jobs read their sources from (moto's server, MinIO, ...);
        ``None``: boto3's own configuration (``AWS_ENDPOINT_URL_S3``, ... or AWS itself).
    :param s3_region: the region of that S3 client (default: ``region``).
    :param s3_access_key: with ``s3_secret_key``, the keys of that S3 client; without them, boto3's credential
        chain (environment variables, profile, ...).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        region: str = "us-east-1",
        activation_delay: float = 0.2,
        import_job_delay: float = 0.2,
        s3_endpoint_url: str | None = None,
        s3_region: str | None = None,
        s3_access_key: str | None = None,
        s3_secret_key: str | None = None,
    ) -> None:
        if (s3_access_key is None) != (s3_secret_key is None):
            raise ValueError("give both s3_access_key and s3_secret_key, or neither")
        self.data_dir = Path(data_dir).resolve()
        self.region = region
        self.activation_delay = activation_delay
        self.import_job_delay = import_job_delay
        self.s3_endpoint_url = s3_endpoint_url
        self.s3_region = s3_region or region
        self._lock = threading.RLock()
        # Notified whenever a read set or an import job changes status, or a gate may have opened.
        self._condition = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._rng = random.SystemRandom()
        self.stores: dict[str, SequenceStore] = {}
        self.uploads: dict[str, Upload] = {}
        self.read_sets: dict[str, ReadSet] = {}
        self.import_jobs: dict[str, ImportJob] = {}
        # The test gates (see hold_activations, hold_import_jobs) and the background work (see .workers).
        self.activation_gate = ActivationGate(self._condition, self._stop)
        self.import_job_gate = ImportJobGate(self._condition, self._stop)
        state = BackendState(
            condition=self._condition,
            stop=self._stop,
            stores=self.stores,
            read_sets=self.read_sets,
            import_jobs=self.import_jobs,
            new_id=self._new_id,
            read_set_dir=self._read_set_dir,
            save_read_set=self._save_read_set,
            save_import_job=self._save_import_job,
        )
        self.activation_worker = ActivationWorker(state, self.activation_gate, delay=activation_delay)
        reader = S3Reader(
            endpoint_url=s3_endpoint_url, region=self.s3_region, access_key=s3_access_key, secret_key=s3_secret_key
        )
        self.import_job_worker = ImportJobWorker(
            state,
            self.import_job_gate,
            self.activation_worker,
            reader,
            part_size=_import_part_size,
            delay=import_job_delay,
        )
        # The running activations and import jobs, by read set and job id.
        self._activations = self.activation_worker.threads
        self._import_threads = self.import_job_worker.threads
        for sub in ("stores", "uploads", "readsets", "importjobs", "tmp"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        self._load()

    # -- paths ---------------------------------------------------------------------------------------------

    def _path(self, *parts: str) -> Path:
        path = self.data_dir.joinpath(*parts).resolve()
        # Ids are validated digit strings; this guards against any path that would leave the data dir anyway.
        if path != self.data_dir and self.data_dir not in path.parents:
            raise AssertionError(f"refusing a path outside the data directory: {path}")
        return path

    def _upload_dir(self, upload_id: str) -> Path:
        return self._path("uploads", check_id(upload_id, "uploadId"))

    def _read_set_dir(self, read_set_id: str) -> Path:
        return self._path("readsets", check_id(read_set_id, "readSetId"))

    # -- persistence ---------------------------------------------------------------------------------------

    def _load(self) -> None:
        shutil.rmtree(self._path("tmp"), ignore_errors=True)
        self._path("tmp").mkdir()
        for path in sorted(self._path("stores").glob("*.json")):
            store = SequenceStore(**_read_json(path))
            self.stores[store.id] = store
        for upload_json in sorted(self._path("uploads").glob("*/upload.json")):
            upload = Upload(**_read_json(upload_json))
            for source in PART_SOURCES:
                source_dir = upload_json.parent / source
                if not source_dir.is_dir():
                    continue
                referenced: set[str] = set()
                for meta in source_dir.glob("*.json"):
                    part = Part(**_read_json(meta))
                    if (source_dir / part.file).exists():
                        upload.parts[(source, part.part_number)] = part
                        referenced.add(part.file)
                # Data files no metadata refers to were being replaced when the emulator stopped.
                for data in source_dir.glob("*.part"):
                    if data.name not in referenced:
                        data.unlink(missing_ok=True)
            self.uploads[upload.upload_id] = upload
        for readset_json in sorted(self._path("readsets").glob("*/readset.json")):
            read_set = ReadSet.from_json(_read_json(readset_json))
            self.read_sets[read_set.id] = read_set
        for job_json in sorted(self._path("importjobs").glob("*.json")):
            job = ImportJob.from_json(_read_json(job_json))
            self.import_jobs[job.id] = job

    def start(self) -> None:
        """Resume the activation of read sets that were still PROCESSING_UPLOAD when the emulator stopped, and
        the import jobs that had not finished."""
        self._stop.clear()
        with self._lock:
            pending = [rs.id for rs in self.read_sets.values() if rs.status == "PROCESSING_UPLOAD"]
            jobs = [job.id for job in self.import_jobs.values() if job.status in IMPORT_HOLD_STATUSES]
        for read_set_id in pending:
            self.activation_worker.schedule(read_set_id)
        for job_id in jobs:
            self.import_job_worker.schedule(job_id)

    def close(self, timeout: float = 10.0) -> None:
        """Stop background activations and import jobs (they resume on the next start) and wait for them."""
        self._stop.set()
        with self._condition:  # wakes activations and jobs held at a gate: they end without changing anything
            self._condition.notify_all()
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = [*self._activations.values(), *self._import_threads.values()]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _save_store(self, store: SequenceStore) -> None:
        _write_json(self._path("stores", f"{check_id(store.id, 'id')}.json"), dataclasses.asdict(store))

    def _save_upload(self, upload: Upload) -> None:
        _write_json(self._upload_dir(upload.upload_id) / "upload.json", upload.to_json())

    def _save_read_set(self, read_set: ReadSet) -> None:
        _write_json(self._read_set_dir(read_set.id) / "readset.json", dataclasses.asdict(read_set))

    def _save_import_job(self, job: ImportJob) -> None:
        _write_json(self._path("importjobs", f"{check_id(job.id, 'id')}.json"), dataclasses.asdict(job))

    def _new_id(self) -> str:
        """A new id of a store, upload, read set or job (ids are unique across all of them)."""
        reserved = {source.read_set_id for job in self.import_jobs.values() for source in job.sources}
        while True:
            candidate = str(self._rng.randrange(10**9, 10**10))
            if not any(
                candidate in taken for taken in (self.stores, self.uploads, self.read_sets, self.import_jobs, reserved)
            ):
                return candidate

    # -- lookups -------------------------------------------------------------------------------------------

    def _store(self, store_id: str) -> SequenceStore:
        check_id(store_id, "sequenceStoreId")
        try:
            return self.stores[store_id]
        except KeyError:
            raise ResourceNotFoundException(f"sequence store {store_id} not found") from None

    def _upload(self, store_id: str, upload_id: str) -> Upload:
        self._store(store_id)
        check_id(upload_id, "uploadId")
        upload = self.uploads.get(upload_id)
        if upload is None or upload.store_id != store_id:
            raise ResourceNotFoundException(
                f"upload {upload_id} not found in sequence store {store_id} (unknown, aborted or completed)"
            )
        return upload

    def _read_set(self, store_id: str, read_set_id: str) -> ReadSet:
        self._store(store_id)
        check_id(read_set_id, "id")
        read_set = self.read_sets.get(read_set_id)
        if read_set is None or read_set.store_id != store_id:
            raise ResourceNotFoundException(f"read set {read_set_id} not found in sequence store {store_id}")
        return read_set

    # -- sequence stores -----------------------------------------------------------------------------------

    def create_sequence_store(
        self,
        *,
        name: str,
        description: str | None = None,
        etag_algorithm_family: str | None = None,
        fallback_location: str | None = None,
        client_token: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """CreateSequenceStore; ``etag_algorithm_family`` is ``eTagAlgorithmFamily`` (MD5up by default)."""
        check_text("name", name)
        check_text("description", description, high=255)
        check_enum("eTagAlgorithmFamily", etag_algorithm_family, ETAG_FAMILIES)
        check_text("clientToken", client_token)
        if fallback_location is not None and not _FALLBACK_RE.match(fallback_location):
            raise ValidationException("fallbackLocation must be an S3 URI")
        checked_tags = check_tags(tags)
        with self._lock:
            if client_token is not None:
                for store in self.stores.values():
                    if store.client_token == client_token:
                        return store.describe(self.region)
            store = SequenceStore(
                id=self._new_id(),
                name=name,
                creation_time=now(),
                etag_family=etag_algorithm_family or "MD5up",
                description=description,
                fallback_location=fallback_location or None,
                client_token=client_token,
                tags=checked_tags,
            )
            self._save_store(store)
            self.stores[store.id] = store
            return store.describe(self.region)

    def get_sequence_store(self, store_id: str) -> dict[str, Any]:
        with self._lock:
            return self._store(store_id).describe(self.region)

    def list_sequence_stores(
        self,
        *,
        filters: SequenceStoreFilter | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        filt = filters or SequenceStoreFilter()
        with self._lock:
            stores = sorted(self.stores.values(), key=lambda s: (s.creation_time, s.id))
            stores = [
                s
                for s in stores
                if filt.name in (None, s.name)
                and filt.status in (None, "ACTIVE")
                and created_within(s.creation_time, filt.created_after, filt.created_before)
            ]
            page, token = paginate(stores, max_results, next_token)
            out: dict[str, Any] = {"sequenceStores": [s.describe(self.region) for s in page]}
        if token:
            out["nextToken"] = token
        return out

    # -- multipart uploads ---------------------------------------------------------------------------------

    def create_multipart_read_set_upload(
        self,
        store_id: str,
        *,
        source_file_type: str,
        subject_id: str,
        sample_id: str,
        name: str,
        generated_from: str | None = None,
        reference_arn: str | None = None,
        description: str | None = None,
        client_token: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        check_enum("sourceFileType", source_file_type, FILE_TYPES)
        check_text("subjectId", subject_id)
        check_text("sampleId", sample_id)
        check_text("name", name)
        check_text("generatedFrom", generated_from)
        check_text("description", description, high=255)
        check_text("clientToken", client_token)
        check_reference_arn(reference_arn)
        checked_tags = check_tags(tags)
        if source_file_type in ("BAM", "CRAM") and reference_arn is None:
            raise ValidationException(
                f"a {source_file_type} read set must be linked to a reference: referenceArn is required"
            )
        requested = {
            "sourceFileType": source_file_type,
            "subjectId": subject_id,
            "sampleId": sample_id,
            "name": name,
            "generatedFrom": generated_from,
            "referenceArn": reference_arn,
            "description": description,
            "tags": checked_tags,
        }
        with self._lock:
            self._store(store_id)
            if client_token is not None:
                for upload in self.uploads.values():
                    if upload.store_id != store_id or upload.client_token != client_token:
                        continue
                    stored = upload.parameters()
                    differing = sorted(key for key, value in requested.items() if stored[key] != value)
                    if differing:
                        # AWS refuses a reused idempotency token rather than guess which request was meant.
                        raise ValidationException(
                            f"the clientToken {client_token!r} was already used with different parameters "
                            f"({', '.join(differing)}) for an upload in progress in this sequence store"
                        )
                    # An idempotent retry of a create whose response was lost.
                    return upload.describe()
            upload = Upload(
                upload_id=self._new_id(),
                store_id=store_id,
                source_file_type=source_file_type,
                subject_id=subject_id,
                sample_id=sample_id,
                name=name,
                creation_time=now(),
                generated_from=generated_from,
                reference_arn=reference_arn,
                description=description,
                client_token=client_token,
                tags=checked_tags,
            )
            self._upload_dir(upload.upload_id).mkdir()
            self._save_upload(upload)
            self.uploads[upload.upload_id] = upload
            return upload.describe()

    def check_part_request(
        self, store_id: str, upload_id: str, *, part_source: str, part_number: int, content_length: int | None
    ) -> None:
        """Validate an UploadReadSetPart before its body is read."""
        check_enum("partSource", part_source, PART_SOURCES)
        if not 1 <= part_number <= MAX_PART_NUMBER:
            raise ValidationException(f"partNumber must be between 1 and {MAX_PART_NUMBER}, got {part_number}")
        if content_length is None:
            raise ValidationException("the part must be sent with a Content-Length")
        if content_length > MAX_PART_SIZE:
            raise ValidationException(
                f"part of {content_length} bytes is larger than the maximum part size of {MAX_PART_SIZE} bytes"
            )
        if content_length <= 0:
            raise ValidationException("the part is empty")
        with self._lock:
            upload = self._upload(store_id, upload_id)
            if part_source == "SOURCE2" and upload.source_file_type != "FASTQ":
                raise ValidationException(f"SOURCE2 is only for paired FASTQ, not {upload.source_file_type}")

    def upload_read_set_part(
        self,
        store_id: str,
        upload_id: str,
        *,
        part_source: str,
        part_number: int,
        body: BodyReader,
        content_length: int | None,
    ) -> dict[str, Any]:
        """Store one part, streaming exactly ``content_length`` bytes from ``body``; returns its checksum.

        Any error ``body.readinto`` raises (an :class:`OmicsError` from a signature check on the last
        chunk, say) discards the part.
        """
        self.check_part_request(
            store_id, upload_id, part_source=part_source, part_number=part_number, content_length=content_length
        )
        assert content_length is not None
        tmp = self._path("tmp", f"{uuid.uuid4().hex}.tmp")
        checksum = _PartHash()
        buffer = memoryview(bytearray(CHUNK_SIZE))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                remaining = content_length
                while remaining:
                    got = body.readinto(buffer[: min(remaining, CHUNK_SIZE)])
                    if not got:
                        raise RequestTimeoutException(
                            f"the request body ended after {content_length - remaining} of {content_length} bytes"
                        )
                    chunk = buffer[:got]
                    checksum.update(chunk)
                    written = 0
                    while written < got:
                        written += os.write(fd, chunk[written:])
                    remaining -= got
            finally:
                os.close(fd)
            return self._commit_part(store_id, upload_id, part_source, part_number, tmp, checksum)
        finally:
            tmp.unlink(missing_ok=True)

    def _commit_part(
        self, store_id: str, upload_id: str, source: str, number: int, tmp: Path, checksum: _PartHash
    ) -> dict[str, Any]:
        with self._lock:
            upload = self._upload(store_id, upload_id)  # it may have been aborted or completed meanwhile
            source_dir = self._upload_dir(upload_id) / source
            source_dir.mkdir(exist_ok=True)
            received = now()
            previous = upload.parts.get((source, number))
            part = Part(
                part_source=source,
                part_number=number,
                size=checksum.size,
                checksum=checksum.hexdigest(),
                file=f"{number}-{uuid.uuid4().hex[:12]}.part",
                creation_time=previous.creation_time if previous else received,
                last_updated_time=received,
            )
            os.replace(tmp, source_dir / part.file)
            _write_json(source_dir / f"{number}.json", dataclasses.asdict(part))
            upload.parts[(source, number)] = part
            if previous is not None:
                (source_dir / previous.file).unlink(missing_ok=True)
            return {"checksum": part.checksum}

    def list_read_set_upload_parts(
        self,
        store_id: str,
        upload_id: str,
        *,
        part_source: str,
        filters: ReadSetUploadPartFilter | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        check_enum("partSource", part_source, PART_SOURCES)
        filt = filters or ReadSetUploadPartFilter()
        with self._lock:
            upload = self._upload(store_id, upload_id)
            parts = sorted(
                (
                    p
                    for (source, _), p in upload.parts.items()
                    if source == part_source
                    and created_within(p.creation_time, filt.created_after, filt.created_before)
                ),
                key=lambda p: p.part_number,
            )
            page, token = paginate(parts, max_results, next_token)
            out: dict[str, Any] = {"parts": [p.describe() for p in page]}
        if token:
            out["nextToken"] = token
        return out

    def list_multipart_read_set_uploads(
        self, store_id: str, *, max_results: int | None = None, next_token: str | None = None
    ) -> dict[str, Any]:
        with self._lock:
            self._store(store_id)
            uploads = sorted(
                (u for u in self.uploads.values() if u.store_id == store_id),
                key=lambda u: (u.creation_time, u.upload_id),
            )
            page, token = paginate(uploads, max_results, next_token)
            out: dict[str, Any] = {"uploads": [u.describe() for u in page]}
        if token:
            out["nextToken"] = token
        return out

    def abort_multipart_read_set_upload(self, store_id: str, upload_id: str) -> dict[str, Any]:
        with self._lock:
            self._upload(store_id, upload_id)
            del self.uploads[upload_id]
            upload_dir = self._upload_dir(upload_id)
            # Remove the metadata first: a crash half-way leaves no upload behind, only orphaned bytes.
            (upload_dir / "upload.json").unlink(missing_ok=True)
            shutil.rmtree(upload_dir, ignore_errors=True)
        return {}

    def _check_complete_parts(self, upload: Upload, parts: Sequence[CompletedPart]) -> None:
        if not parts:
            raise ValidationException("parts is required and must list the uploaded parts")
        seen: dict[tuple[str, int], str] = {}
        for part in parts:
            source, number, checksum = part.part_source, part.part_number, part.checksum
            if source not in PART_SOURCES:
                raise ValidationException(f"partSource must be SOURCE1 or SOURCE2, got {source!r}")
            if not 1 <= number <= MAX_PART_NUMBER:
                raise ValidationException(f"partNumber must be an integer from 1 to {MAX_PART_NUMBER}, got {number!r}")
            if not checksum:
                raise ValidationException(f"part {source} {number} has no checksum")
            if (source, number) in seen:
                raise ValidationException(f"part {source} {number} is listed more than once")
            seen[(source, number)] = checksum
        for key, checksum in seen.items():
            uploaded = upload.parts.get(key)
            if uploaded is None:
                raise ValidationException(f"part {key[0]} {key[1]} is listed but was never uploaded")
            if uploaded.checksum != checksum:
                raise ValidationException(
                    f"the checksum of part {key[0]} {key[1]} is not the one UploadReadSetPart returned for it"
                )
        missing = sorted(set(upload.parts) - set(seen))
        if missing:
            names = ", ".join(f"{s} {n}" for s, n in missing[:10])
            raise ValidationException(f"uploaded parts are missing from the list: {names}")
        sources = {s for s, _ in seen}
        if "SOURCE1" not in sources:
            raise ValidationException("the parts must include SOURCE1")
        for source in sorted(sources):
            numbers = sorted(n for s, n in seen if s == source)
            if numbers != list(range(1, len(numbers) + 1)):
                gap = next(i for i, n in enumerate(numbers, start=1) if n != i)
                raise ValidationException(
                    f"{source} parts must be numbered 1 to {len(numbers)} without gaps: part {gap} is missing"
                )

    def complete_multipart_read_set_upload(
        self, store_id: str, upload_id: str, *, parts: Sequence[CompletedPart]
    ) -> dict[str, Any]:
        with self._lock:
            upload = self._upload(store_id, upload_id)
            self._check_complete_parts(upload, parts)
            store = self.stores[upload.store_id]
            read_set = ReadSet(
                id=self._new_id(),
                store_id=upload.store_id,
                upload_id=upload.upload_id,
                file_type=upload.source_file_type,
                subject_id=upload.subject_id,
                sample_id=upload.sample_id,
                name=upload.name,
                creation_time=now(),
                generated_from=upload.generated_from,
                reference_arn=upload.reference_arn,
                description=upload.description,
                tags=upload.tags,
                etag_algorithm=etag_algorithm(upload.source_file_type, store.etag_family),
            )
            upload_dir = self._upload_dir(upload.upload_id)
            read_set_dir = self._read_set_dir(read_set.id)
            read_set_dir.mkdir()
            for source in PART_SOURCES:
                stored = sorted((p for (s, _), p in upload.parts.items() if s == source), key=lambda p: p.part_number)
                if stored:
                    os.rename(upload_dir / source, read_set_dir / source)
                    read_set.sources[source] = [StoredPart(p.part_number, p.size, p.file) for p in stored]
            self._save_read_set(read_set)
            self.read_sets[read_set.id] = read_set
            del self.uploads[upload.upload_id]
            (upload_dir / "upload.json").unlink(missing_ok=True)
            shutil.rmtree(upload_dir, ignore_errors=True)
        self.activation_worker.schedule(read_set.id)
        return {"readSetId": read_set.id}

    # -- read sets -----------------------------------------------------------------------------------------

    def get_read_set_metadata(self, store_id: str, read_set_id: str) -> dict[str, Any]:
        with self._lock:
            read_set = self._read_set(store_id, read_set_id)
            answer = read_set.describe(self.region)
            if read_set.status == "PROCESSING_UPLOAD":
                self.activation_gate.count_read(read_set.id)
            return answer

    def list_read_sets(
        self,
        store_id: str,
        *,
        filters: ReadSetFilter | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        filt = filters or ReadSetFilter()
        with self._lock:
            self._store(store_id)
            read_sets = sorted(
                (rs for rs in self.read_sets.values() if rs.store_id == store_id),
                key=lambda rs: (rs.creation_time, rs.id),
            )
            read_sets = [
                rs
                for rs in read_sets
                if filt.name in (None, rs.name)
                and filt.status in (None, rs.status)
                and filt.sample_id in (None, rs.sample_id)
                and filt.subject_id in (None, rs.subject_id)
                and filt.generated_from in (None, rs.generated_from)
                and (not filt.reference_arn or rs.reference_arn == filt.reference_arn)
                and filt.creation_type in (None, rs.creation_type)
                and created_within(rs.creation_time, filt.created_after, filt.created_before)
            ]
            page, token = paginate(read_sets, max_results, next_token)
            out: dict[str, Any] = {"readSets": [rs.summary(self.region) for rs in page]}
            for read_set in page:
                if read_set.status == "PROCESSING_UPLOAD":
                    self.activation_gate.count_read(read_set.id)
        if token:
            out["nextToken"] = token
        return out

    def open_read_set_part(
        self, store_id: str, read_set_id: str, *, file: str | None = None, part_number: int
    ) -> tuple[Path, int]:
        """GetReadSet (``file`` SOURCE1 by default): the path and size of one stored part, for the HTTP layer
        to stream."""
        file = file or "SOURCE1"
        if file not in READ_SET_FILES:
            raise ValidationException(f"file must be SOURCE1, SOURCE2 or INDEX, got {file!r}")
        with self._lock:
            read_set = self._read_set(store_id, read_set_id)
            if read_set.status != "ACTIVE":
                raise ConflictException(f"read set {read_set.id} is {read_set.status}, not ACTIVE")
            parts = read_set.sources.get(file)
            if not parts:
                raise ResourceNotFoundException(f"read set {read_set.id} has no {file} file")
            if not 1 <= part_number <= len(parts):
                raise ValidationException(
                    f"partNumber must be between 1 and {len(parts)} for {file}, got {part_number}"
                )
            part = parts[part_number - 1]
            return self._read_set_dir(read_set.id) / file / part.file, part.size

    # -- tags ----------------------------------------------------------------------------------------------

    def _tagged_resource(self, resource_arn: str) -> SequenceStore | ReadSet:
        if (
            not isinstance(resource_arn, str)
            or not 1 <= len(resource_arn) <= MAX_TAG_ARN_LENGTH
            or not ARN_PATTERN.fullmatch(resource_arn)
        ):
            raise ValidationException(
                f"resourceArn must be an ARN (pattern arn:.+, 1 to {MAX_TAG_ARN_LENGTH} characters), "
                f"got {resource_arn!r}"
            )
        arn = _OMICS_ARN_RE.fullmatch(resource_arn)
        if arn is None:
            raise ValidationException(f"resourceArn is not a HealthOmics ARN: {resource_arn!r}")
        not_found = ResourceNotFoundException(f"resource {resource_arn} not found")
        in_store = _SEQUENCE_STORE_RESOURCE_RE.fullmatch(arn["resource"])
        if in_store is None:
            raise not_found  # a kind of HealthOmics resource that the emulator does not model
        store_id, read_set_id = in_store["store"], in_store["read_set"]
        if not ID_PATTERN.fullmatch(store_id) or (read_set_id is not None and not ID_PATTERN.fullmatch(read_set_id)):
            raise ValidationException(f"resourceArn has a malformed sequence store or read set id: {resource_arn!r}")
        if (arn["partition"], arn["region"], arn["account"]) != ("aws", self.region, ACCOUNT_ID):
            raise not_found
        store = self.stores.get(store_id)
        if store is None:
            raise not_found
        if read_set_id is None:
            return store
        read_set = self.read_sets.get(read_set_id)
        if read_set is None or read_set.store_id != store_id:
            raise not_found
        return read_set

    def list_tags_for_resource(self, resource_arn: str) -> dict[str, Any]:
        with self._lock:
            return {"tags": dict(self._tagged_resource(resource_arn).tags)}

    def tag_resource(self, resource_arn: str, *, tags: Mapping[str, str]) -> dict[str, Any]:
        """Add or overwrite ``tags`` on a sequence store or read set."""
        checked_tags = check_tags(tags)
        with self._lock:
            resource = self._tagged_resource(resource_arn)
            merged = {**resource.tags, **checked_tags}
            if len(merged) > MAX_TAGS_PER_RESOURCE:
                raise ValidationException(
                    f"a resource can have at most {MAX_TAGS_PER_RESOURCE} tags; this would give it {len(merged)}"
                )
            # A new dict: a read set starts out sharing the tags dict of the upload that made it.
            resource.tags = merged
            if isinstance(resource, SequenceStore):
                self._save_store(resource)
            else:
                self._save_read_set(resource)
        return {}

    # -- read set import jobs ------------------------------------------------------------------------------

    def _check_import_source(self, index: int, source: ReadSetImportSource) -> ReadSetImportSource:
        """A fresh copy of one requested source (no status yet), once its members are valid."""
        where = f"sources[{index}]"
        check_s3_uri(f"{where}.sourceFiles.source1", source.source1)
        check_s3_uri(f"{where}.sourceFiles.source2", source.source2)
        check_enum(f"{where}.sourceFileType", source.source_file_type, FILE_TYPES)
        check_text(f"{where}.subjectId", source.subject_id)
        check_text(f"{where}.sampleId", source.sample_id)
        check_text(f"{where}.generatedFrom", source.generated_from)
        check_text(f"{where}.name", source.name)
        check_text(f"{where}.description", source.description, high=255)
        check_reference_arn(source.reference_arn)
        tags = check_tags(source.tags)
        if source.source_file_type in ("BAM", "CRAM") and source.reference_arn is None:
            raise ValidationException(
                f"{where}: a {source.source_file_type} read set must be linked to a reference: referenceArn is required"
            )
        if source.source2 is not None and source.source_file_type != "FASTQ":
            raise ValidationException(
                f"{where}: sourceFiles.source2 is only for paired FASTQ, not {source.source_file_type}"
            )
        return ReadSetImportSource(
            source1=source.source1,
            source_file_type=source.source_file_type,
            subject_id=source.subject_id,
            sample_id=source.sample_id,
            source2=source.source2,
            generated_from=source.generated_from,
            reference_arn=source.reference_arn,
            name=source.name,
            description=source.description,
            tags=tags,
        )

    def start_read_set_import_job(
        self,
        store_id: str,
        *,
        role_arn: str,
        sources: Sequence[ReadSetImportSource],
        client_token: str | None = None,
    ) -> dict[str, Any]:
        """StartReadSetImportJob: record the job SUBMITTED and run it in the background (see the module)."""
        check_role_arn(role_arn)
        check_text("clientToken", client_token)
        if not 1 <= len(sources) <= MAX_IMPORT_SOURCES:
            raise ValidationException(f"sources must list 1 to {MAX_IMPORT_SOURCES} sources, got {len(sources)}")
        checked = [self._check_import_source(index, source) for index, source in enumerate(sources)]
        with self._lock:
            self._store(store_id)
            if client_token is not None:
                requested = {"roleArn": role_arn, "sources": [source.parameters() for source in checked]}
                for job in self.import_jobs.values():
                    if job.store_id != store_id or job.client_token != client_token:
                        continue
                    stored = job.parameters()
                    differing = sorted(key for key, value in requested.items() if stored[key] != value)
                    if differing:
                        raise ValidationException(
                            f"the clientToken {client_token!r} was already used with different parameters "
                            f"({', '.join(differing)}) for import job {job.id} in this sequence store"
                        )
                    return job.summary()
            job = ImportJob(
                id=self._new_id(),
                store_id=store_id,
                role_arn=role_arn,
                creation_time=now(),
                sources=checked,
                client_token=client_token,
            )
            self._save_import_job(job)
            self.import_jobs[job.id] = job
            answer = job.summary()
        self.import_job_worker.schedule(job.id)
        return answer

    def _import_job(self, store_id: str, job_id: str) -> ImportJob:
        self._store(store_id)
        check_id(job_id, "id")
        job = self.import_jobs.get(job_id)
        if job is None or job.store_id != store_id:
            raise ResourceNotFoundException(f"read set import job {job_id} not found in sequence store {store_id}")
        return job

    def get_read_set_import_job(self, store_id: str, job_id: str) -> dict[str, Any]:
        with self._lock:
            job = self._import_job(store_id, job_id)
            answer = job.describe(self.read_sets)
            self.import_job_gate.count_read(job.id, job.status)
            return answer

    def list_read_set_import_jobs(
        self,
        store_id: str,
        *,
        filters: ImportReadSetFilter | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        filt = filters or ImportReadSetFilter()
        check_enum("filter.status", filt.status, IMPORT_JOB_STATUSES)
        with self._lock:
            self._store(store_id)
            jobs = sorted(
                (
                    job
                    for job in self.import_jobs.values()
                    if job.store_id == store_id
                    and filt.status in (None, job.status)
                    and created_within(job.creation_time, filt.created_after, filt.created_before)
                ),
                key=lambda job: (job.creation_time, job.id),
            )
            page, token = paginate(jobs, max_results, next_token)
            out: dict[str, Any] = {"importJobs": [job.summary() for job in page]}
        if token:
            out["nextToken"] = token
        return out

    # -- the test gates (see .gates) and the background work (see .workers) -------------------------------

    def hold_import_jobs(self, at: str = "SUBMITTED", release_after_reads: int | None = None) -> None:
        """From now on, keep every import job at status ``at`` at the furthest, pending jobs included.

        ``at="SUBMITTED"``: jobs do not start. ``at="IN_PROGRESS"``: jobs start and do their work (their sources
        move on, their read sets are written and activated) but the job's own status stays IN_PROGRESS. A held
        job moves on when :meth:`release_import_jobs` is called or, with ``release_after_reads``, once
        GetReadSetImportJob has answered the held status for it that many times (ListReadSetImportJobs does
        not count); a job let go so passes every hold. Calling it again (to move the hold from SUBMITTED to
        IN_PROGRESS, say) restarts the counts.
        """
        self.import_job_gate.hold(at, release_after_reads)

    def release_import_jobs(self) -> None:
        """Let every held import job move on, and hold no more."""
        self.import_job_gate.release()

    @property
    def import_job_hold(self) -> dict[str, Any]:
        """``{"hold": bool, "at": "SUBMITTED" | "IN_PROGRESS" | None, "release_after_reads": int | None}``."""
        return self.import_job_gate.state

    def wait_for_import_job(self, job_id: str, statuses: str | Iterable[str], timeout: float = 30.0) -> dict[str, Any]:
        """Block until import job ``job_id`` has one of ``statuses``; returns its GetReadSetImportJob answer.

        For tests: waits on the job's changes, not on a clock (``timeout`` only catches a hang, as
        :class:`TimeoutError`).
        """
        return self.import_job_worker.wait_for_status(job_id, statuses, timeout)

    def wait_for_import_job_read_sets(self, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """Block until import job ``job_id`` has written the read set of each source (or failed the source), in
        whatever status their activations have reached; returns its GetReadSetImportJob answer (for tests)."""
        return self.import_job_worker.wait_for_read_sets(job_id, timeout)

    def wait_for_import_jobs(self, timeout: float = 30.0) -> None:
        """Block until no import job is running (for tests); held jobs count as running."""
        self.import_job_worker.wait_idle(timeout)

    def hold_activations(self, release_after_reads: int | None = None) -> None:
        """From now on, keep every read set in PROCESSING_UPLOAD, pending activations included.

        A held read set moves on when :meth:`release_activations` is called or, with ``release_after_reads``,
        once clients were answered PROCESSING_UPLOAD for it that many times, so that a test can let a client's
        first look see PROCESSING_UPLOAD and then let it go. Each GetReadSetMetadata of it counts, and so does
        each ListReadSets answer that shows it (once per read set and answer): a client that looks at one read
        set at a time and one that lists many are let go alike. The content check may run while held: only the
        status change waits. Calling it again restarts the counts.
        """
        self.activation_gate.hold(release_after_reads)

    def release_activations(self) -> None:
        """Let every held read set move on, and hold no more."""
        self.activation_gate.release()

    @property
    def activation_hold(self) -> dict[str, Any]:
        """``{"hold": bool, "release_after_reads": int | None}``: the hold in force."""
        return self.activation_gate.state

    def wait_for_activations(self, timeout: float = 30.0) -> None:
        """Block until no read set is being activated (for tests); held activations count as running."""
        self.activation_worker.wait_idle(timeout)


__all__ = [
    "ACCOUNT_ID",
    "CHUNK_SIZE",
    "ETAG_FAMILIES",
    "FILE_TYPES",
    "ID_PATTERN",
    "IMPORT_HOLD_STATUSES",
    "IMPORT_JOB_STATUSES",
    "IMPORT_SOURCE_STATUSES",
    "JOB_STATUS_MESSAGE_LENGTH",
    "MAX_IMPORT_SOURCES",
    "MAX_PART_NUMBER",
    "MAX_PART_SIZE",
    "MAX_RESULTS",
    "MAX_TAGS_PER_RESOURCE",
    "MAX_TAG_ARN_LENGTH",
    "MAX_TAG_VALUE_LENGTH",
    "OPERATIONS",
    "PART_SOURCES",
    "READ_SET_FILES",
    "ROLE_ARN_LENGTH",
    "S3_URI_PATTERN",
    "TAG_KEY_LENGTH",
    "BodyReader",
    "CompletedPart",
    "ImportJob",
    "ImportReadSetFilter",
    "OmicsBackend",
    "OmicsError",
    "Part",
    "ReadSet",
    "ReadSetFilter",
    "ReadSetImportSource",
    "ReadSetUploadPartFilter",
    "SequenceStore",
    "SequenceStoreFilter",
    "StoredPart",
    "Upload",
    "check_id",
    "job_status_message",
    "paginate",
]
