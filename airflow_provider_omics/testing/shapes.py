"""The shapes of the emulated HealthOmics sequence store API: its limits and enums, the request structures the
backend's methods take and the records it keeps (stores, uploads and parts, read sets, import jobs).

Plain data, no rules: :mod:`.validation` checks the members of a request against these limits, :mod:`.models`
(which re-exports every constant here) holds the records and applies the service's rules.

The limits and enums below repeat values the provider also has (``airflow_provider_omics.utils``): the
emulator is an independent oracle of the service's rules, so it never imports the provider's constants, or
a wrong value would pass every test. Where each value comes from:

- ``MAX_PART_SIZE``: UploadReadSetPart in the API reference ("Each part cannot be larger than 100 MB"), read as
  100 MiB like AWS's uploader; the service model states no limit (its ``partSize`` goes up to 5 GiB).
- ``MAX_PART_NUMBER`` (``UploadReadSetPartRequestPartNumberInteger``), ``FILE_TYPES`` (``FileType``),
  ``PART_SOURCES`` (``ReadSetPartSource``), ``READ_SET_FILES`` (``ReadSetFile``), ``ETAG_FAMILIES``
  (``ETagAlgorithmFamily``), ``ID_PATTERN`` (``SequenceStoreId``, ``UploadId``, ``ReadSetId``),
  ``MAX_RESULTS`` (the ``maxResults`` of the List operations), ``MAX_TAG_ARN_LENGTH`` (``TagArn``),
  ``MAX_IMPORT_SOURCES`` (``StartReadSetImportJobRequestSourcesList``), ``IMPORT_JOB_STATUSES``
  (``ReadSetImportJobStatus``), ``IMPORT_SOURCE_STATUSES`` (``ReadSetImportJobItemStatus``),
  ``JOB_STATUS_MESSAGE_LENGTH`` (``JobStatusMessage``), ``ROLE_ARN_LENGTH`` (``RoleArn``), ``S3_URI_PATTERN``
  (``S3Uri``),
  ``TAG_KEY_LENGTH`` and ``MAX_TAG_VALUE_LENGTH`` (``TagKey``, ``TagValue``): the botocore service model
  ``omics`` 2022-11-28; ``tests/emulator/test_emulator_constants.py`` checks them against it.
- ``MAX_TAGS_PER_RESOURCE``: the per-resource quota of AWS tagging, which is also the most tags one
  TagResource may carry (``TagResourceRequestTagsMap``).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow_provider_omics.testing.content import ETAG_HASHES

ACCOUNT_ID = "123456789012"
MAX_PART_SIZE = 100 * 1024 * 1024
MAX_PART_NUMBER = 10_000
CHUNK_SIZE = 1024 * 1024
FILE_TYPES = ("FASTQ", "BAM", "CRAM", "UBAM")
PART_SOURCES = ("SOURCE1", "SOURCE2")
READ_SET_FILES = (*PART_SOURCES, "INDEX")
ETAG_FAMILIES = tuple(ETAG_HASHES)
MAX_RESULTS = 100
# Ids of sequence stores, uploads and read sets.
ID_PATTERN = re.compile(r"[0-9]{10,36}")
MAX_TAG_ARN_LENGTH = 150
TAG_KEY_LENGTH = (1, 128)
MAX_TAG_VALUE_LENGTH = 256
MAX_TAGS_PER_RESOURCE = 50
MAX_IMPORT_SOURCES = 100
IMPORT_JOB_STATUSES = (
    "SUBMITTED",
    "IN_PROGRESS",
    "CANCELLING",
    "CANCELLED",
    "FAILED",
    "COMPLETED",
    "COMPLETED_WITH_FAILURES",
)
IMPORT_SOURCE_STATUSES = ("NOT_STARTED", "IN_PROGRESS", "FINISHED", "FAILED")
JOB_STATUS_MESSAGE_LENGTH = 127
ROLE_ARN_LENGTH = (20, 2048)
S3_URI_PATTERN = re.compile(r"s3://([a-z0-9][a-z0-9-.]{1,61}[a-z0-9])/(.{1,1024})", re.DOTALL)
# The operations the emulator serves (the names fault injection filters on).
OPERATIONS = frozenset(
    {
        "CreateSequenceStore",
        "GetSequenceStore",
        "ListSequenceStores",
        "CreateMultipartReadSetUpload",
        "UploadReadSetPart",
        "ListReadSetUploadParts",
        "ListMultipartReadSetUploads",
        "CompleteMultipartReadSetUpload",
        "AbortMultipartReadSetUpload",
        "GetReadSetMetadata",
        "GetReadSet",
        "ListReadSets",
        "ListTagsForResource",
        "TagResource",
        "StartReadSetImportJob",
        "GetReadSetImportJob",
        "ListReadSetImportJobs",
    }
)
# A ReferenceArn, a TagArn: the model's pattern arn:.+ (their lengths differ).
ARN_PATTERN = re.compile(r"arn:.+", re.DOTALL)


def now() -> float:
    """The clock of every creation and completion time (seconds since the epoch)."""
    return time.time()


def timestamp(epoch: float) -> datetime:
    """``epoch`` as the timestamp members of the answers carry it."""
    return datetime.fromtimestamp(epoch, tz=UTC)


def etag_algorithm(file_type: str, family: str) -> str:
    """The ``etag.algorithm`` of a read set of ``file_type`` in a store of ETag ``family`` (uBAM is BAM_)."""
    return f"{'BAM' if file_type == 'UBAM' else file_type}_{family}"


# --- request structures ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SequenceStoreFilter:
    """The ``filter`` of ListSequenceStores (``SequenceStoreFilter``); stores never change, so the emulator has
    no use for ``updatedAfter``/``updatedBefore``."""

    name: str | None = None
    status: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True)
class ReadSetFilter:
    """The ``filter`` of ListReadSets (``ReadSetFilter``)."""

    name: str | None = None
    status: str | None = None
    reference_arn: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    sample_id: str | None = None
    subject_id: str | None = None
    generated_from: str | None = None
    creation_type: str | None = None


@dataclass(frozen=True)
class ReadSetUploadPartFilter:
    """The ``filter`` of ListReadSetUploadParts (``ReadSetUploadPartListFilter``)."""

    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True)
class CompletedPart:
    """One item of the ``parts`` of CompleteMultipartReadSetUpload (``CompleteReadSetUploadPartListItem``)."""

    part_source: str
    part_number: int
    checksum: str


@dataclass(frozen=True)
class ImportReadSetFilter:
    """The ``filter`` of ListReadSetImportJobs (``ImportReadSetFilter``)."""

    status: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass
class ReadSetImportSource:
    """One source of an import job: what StartReadSetImportJob asked for (``StartReadSetImportJobSourceItem``,
    ``sourceFiles`` flattened into ``source1``/``source2``) and, in a job, how it went (``status``,
    ``status_message``, ``read_set_id``; ``ImportReadSetSourceItem``)."""

    source1: str
    source_file_type: str
    subject_id: str
    sample_id: str
    source2: str | None = None
    generated_from: str | None = None
    reference_arn: str | None = None
    name: str | None = None
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    status: str = "NOT_STARTED"
    status_message: str | None = None
    # Reserved before the read set is written, so that a job resumed after a crash writes the same read set.
    read_set_id: str | None = None

    def parameters(self) -> dict[str, Any]:
        """The request's members: what a reused clientToken must match."""
        return {
            "source1": self.source1,
            "source2": self.source2,
            "sourceFileType": self.source_file_type,
            "subjectId": self.subject_id,
            "sampleId": self.sample_id,
            "generatedFrom": self.generated_from,
            "referenceArn": self.reference_arn,
            "name": self.name,
            "description": self.description,
            "tags": self.tags,
        }

    def objects(self) -> dict[str, str]:
        """The S3 URI of each part source: ``{"SOURCE1": uri, "SOURCE2": uri}``."""
        return {"SOURCE1": self.source1, **({"SOURCE2": self.source2} if self.source2 is not None else {})}

    def describe(self, read_set_exists: bool) -> dict[str, Any]:
        files = {"source1": self.source1, **({"source2": self.source2} if self.source2 is not None else {})}
        out: dict[str, Any] = {
            "sourceFiles": files,
            "sourceFileType": self.source_file_type,
            "status": self.status,
            "subjectId": self.subject_id,
            "sampleId": self.sample_id,
        }
        for key, value in (
            ("statusMessage", self.status_message),
            ("generatedFrom", self.generated_from),
            ("referenceArn", self.reference_arn),
            ("name", self.name),
            ("description", self.description),
            ("tags", self.tags or None),
            ("readSetId", self.read_set_id if read_set_exists else None),
        ):
            if value is not None:
                out[key] = value
        return out


# --- records ------------------------------------------------------------------------------------------------


@dataclass
class SequenceStore:
    id: str
    name: str
    creation_time: float
    etag_family: str = "MD5up"
    description: str | None = None
    fallback_location: str | None = None
    client_token: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def arn(self, region: str) -> str:
        return f"arn:aws:omics:{region}:{ACCOUNT_ID}:sequenceStore/{self.id}"

    def describe(self, region: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "arn": self.arn(region),
            "name": self.name,
            "creationTime": timestamp(self.creation_time),
            "eTagAlgorithmFamily": self.etag_family,
            "status": "ACTIVE",
        }
        if self.description is not None:
            out["description"] = self.description
        if self.fallback_location:
            out["fallbackLocation"] = self.fallback_location
        return out


@dataclass
class Part:
    part_source: str
    part_number: int
    size: int
    checksum: str
    file: str  # data file name in the source directory
    creation_time: float
    last_updated_time: float

    def describe(self) -> dict[str, Any]:
        return {
            "partNumber": self.part_number,
            "partSize": self.size,
            "partSource": self.part_source,
            "checksum": self.checksum,
            "creationTime": timestamp(self.creation_time),
            "lastUpdatedTime": timestamp(self.last_updated_time),
        }


@dataclass
class Upload:
    upload_id: str
    store_id: str
    source_file_type: str
    subject_id: str
    sample_id: str
    name: str
    creation_time: float
    generated_from: str | None = None
    reference_arn: str | None = None
    description: str | None = None
    client_token: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    # Not in upload.json: each part has its own metadata file.
    parts: dict[tuple[str, int], Part] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        del data["parts"]
        return data

    def parameters(self) -> dict[str, Any]:
        """What a CreateMultipartReadSetUpload asked for, by request member: what a reused clientToken must match."""
        return {
            "sourceFileType": self.source_file_type,
            "subjectId": self.subject_id,
            "sampleId": self.sample_id,
            "name": self.name,
            "generatedFrom": self.generated_from,
            "referenceArn": self.reference_arn,
            "description": self.description,
            "tags": self.tags,
        }

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sequenceStoreId": self.store_id,
            "uploadId": self.upload_id,
            "sourceFileType": self.source_file_type,
            "subjectId": self.subject_id,
            "sampleId": self.sample_id,
            "name": self.name,
            "tags": self.tags,
            "creationTime": timestamp(self.creation_time),
        }
        for key, value in (
            ("generatedFrom", self.generated_from),
            ("referenceArn", self.reference_arn),
            ("description", self.description),
        ):
            if value is not None:
                out[key] = value
        return out


@dataclass
class ImportJob:
    id: str
    store_id: str
    role_arn: str
    creation_time: float
    sources: list[ReadSetImportSource]
    status: str = "SUBMITTED"
    status_message: str | None = None
    completion_time: float | None = None
    client_token: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImportJob:
        data = dict(data)
        data["sources"] = [ReadSetImportSource(**item) for item in data["sources"]]
        return cls(**data)

    def parameters(self) -> dict[str, Any]:
        return {"roleArn": self.role_arn, "sources": [source.parameters() for source in self.sources]}

    def summary(self) -> dict[str, Any]:
        """``ImportReadSetJobItem``; StartReadSetImportJob answers the same members."""
        out: dict[str, Any] = {
            "id": self.id,
            "sequenceStoreId": self.store_id,
            "roleArn": self.role_arn,
            "status": self.status,
            "creationTime": timestamp(self.creation_time),
        }
        if self.completion_time is not None:
            out["completionTime"] = timestamp(self.completion_time)
        return out

    def describe(self, read_sets: Container[str]) -> dict[str, Any]:
        """GetReadSetImportJob; ``read_sets``: the ids of the read sets that exist."""
        out = self.summary()
        if self.status_message is not None:
            out["statusMessage"] = self.status_message
        out["sources"] = [source.describe(source.read_set_id in read_sets) for source in self.sources]
        return out


@dataclass
class StoredPart:
    part_number: int
    size: int
    file: str


@dataclass
class ReadSet:
    id: str
    store_id: str
    upload_id: str  # the job that made it (creationJobId): the upload, or the import job
    file_type: str
    subject_id: str
    sample_id: str
    name: str | None
    creation_time: float
    status: str = "PROCESSING_UPLOAD"
    status_message: str | None = None
    generated_from: str | None = None
    reference_arn: str | None = None
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    sources: dict[str, list[StoredPart]] = field(default_factory=dict)
    etag_algorithm: str | None = None
    etags: dict[str, str] = field(default_factory=dict)
    read_count: int | None = None
    base_count: int | None = None
    creation_type: str = "UPLOAD"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReadSet:
        data = dict(data)
        data["sources"] = {src: [StoredPart(**p) for p in parts] for src, parts in data["sources"].items()}
        return cls(**data)

    def arn(self, region: str) -> str:
        return f"arn:aws:omics:{region}:{ACCOUNT_ID}:sequenceStore/{self.store_id}/readSet/{self.id}"

    def _sequence_information(self) -> dict[str, Any]:
        info: dict[str, Any] = {}
        if self.read_count is not None:
            info["totalReadCount"] = self.read_count
        if self.base_count is not None:
            info["totalBaseCount"] = self.base_count
        if self.generated_from is not None:
            info["generatedFrom"] = self.generated_from
        return info

    def summary(self, region: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "arn": self.arn(region),
            "sequenceStoreId": self.store_id,
            "subjectId": self.subject_id,
            "sampleId": self.sample_id,
            "status": self.status,
            "fileType": self.file_type,
            "creationTime": timestamp(self.creation_time),
            "creationType": self.creation_type,
        }
        for key, value in (
            ("name", self.name),
            ("description", self.description),
            ("referenceArn", self.reference_arn),
            ("statusMessage", self.status_message),
        ):
            if value is not None:
                out[key] = value
        if info := self._sequence_information():
            out["sequenceInformation"] = info
        if self.etag_algorithm is not None and self.etags:  # known once the content has been checked
            out["etag"] = {"algorithm": self.etag_algorithm, **self.etags}
        return out

    def describe(self, region: str) -> dict[str, Any]:
        # GetReadSetMetadata only: ReadSetListItem (ListReadSets) has no creationJobId member.
        out = self.summary(region)
        out["creationJobId"] = self.upload_id
        files: dict[str, Any] = {}
        for source, parts in self.sources.items():
            files[source.lower()] = {
                "totalParts": len(parts),
                "partSize": parts[0].size,
                "contentLength": sum(p.size for p in parts),
            }
        out["files"] = files
        return out
