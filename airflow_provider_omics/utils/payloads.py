"""Payloads that cross XCom between the tasks of an upload, as named types that both ends import.

A task that pushes one of these writes ``to_dict()``; a task that reads it calls ``from_dict()``, which accepts
what an older version of the provider pushed (unknown keys are ignored, missing optional keys default).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict, overload

# The XCom key under which the create task pushes its UploadRecord (its return value stays the upload id).
UPLOAD_RECORD_KEY = "upload"


@dataclass
class UploadRecord:
    """What the create task knows about its request, pushed before it calls the service and again after.

    The request token is known before CreateMultipartReadSetUpload is sent, so that the abort teardown can find
    an upload whose creation committed although its answer was lost, and complete can find the read set an
    upload became although Complete's answer was lost.

    :param sequence_store_id: the destination store.
    :param client_token: the idempotency token of the create request; also the value of the request tag that
        the upload and its read set carry (``OmicsHook.REQUEST_TAG``).
    :param name: the read set's name (a ListReadSets filter).
    :param sample_id: the read set's sample (a ListReadSets filter).
    :param subject_id: the read set's subject (a ListReadSets filter).
    :param source_file_type: FASTQ, BAM, CRAM or UBAM.
    :param upload_id: the upload's id, once the service answered.
    :param upload_created: the service's ``creationTime`` of the upload (ISO 8601): its read set is younger.
    :param read_set_id: set when an earlier attempt of this request already stored the read set.
    """

    sequence_store_id: str
    client_token: str
    name: str
    sample_id: str
    subject_id: str
    source_file_type: str
    upload_id: str | None = None
    upload_created: str | None = None
    read_set_id: str | None = None
    adopted: bool = False
    skip_verify: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def for_request(cls, request: Mapping[str, Any], client_token: str) -> UploadRecord:
        """The record of a checked create request (``check_request``'s result) and its token, before any call."""
        return cls(
            sequence_store_id=request["sequenceStoreId"],
            client_token=client_token,
            name=request["name"],
            sample_id=request["sampleId"],
            subject_id=request["subjectId"],
            source_file_type=request["sourceFileType"],
        )

    def identity(self) -> dict[str, Any]:
        """The request's sample identity as the service names its members (what an upload in progress lists)."""
        return {
            "sequenceStoreId": self.sequence_store_id,
            "name": self.name,
            "sampleId": self.sample_id,
            "subjectId": self.subject_id,
            "sourceFileType": self.source_file_type,
        }

    @classmethod
    def from_dict(cls, data: Any) -> UploadRecord | None:
        """The record, or None when nothing was pushed (the create task did not get that far)."""
        if not isinstance(data, dict) or not data.get("client_token"):
            return None
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


class PlannedSource(TypedDict):
    """One staged source as split planned it; split pushes ``{"SOURCE1": ..., "SOURCE2": ...}`` (XCom key
    ``sources``), which create, digest, complete (``expected_parts``) and verify read."""

    uri: str  # as the user gave it, for messages
    location: str  # what later tasks open: the real path of the file split opened, or the S3 URI
    size: int
    parts: int
    part_size: int
    fingerprint: dict[str, Any]  # Fingerprint.to_dict()


class PartBatch(TypedDict):
    """The keyword arguments of one mapped part-upload task: split returns a list of these."""

    source_uri: str  # PlannedSource.location
    part_source: str
    first_part: int
    last_part: int
    total_parts: int
    part_size: int
    fingerprint: dict[str, Any]


class PartResult(TypedDict):
    """One uploaded part, in the API's own shape (CompleteMultipartReadSetUpload's ``parts`` items)."""

    partNumber: int
    partSource: str
    checksum: str


class SourceDigest(TypedDict):
    hexdigest: str
    compressed: bool
    uncompressed_bytes: int
    # The plan's fingerprint of the file hashed (Fingerprint.to_dict()): verify takes a digest only for the file its
    # plan names, never one a digest task of an earlier plan left behind.
    fingerprint: NotRequired[dict[str, Any]]


class DigestResult(TypedDict):
    """What the digest task returns and verify reads: per source, the hash the read set's ETag must equal."""

    family: str | None  # the store's ETag family; None when the file type's ETag cannot be reproduced
    file_type: str
    sources: dict[str, SourceDigest]
    skipped: str | None  # why nothing was digested


class ReadSetEvent(TypedDict, total=False):
    """The event OmicsReadSetActiveTrigger sends back to the sensor's ``execute_complete``."""

    status: str  # "success" or "error"
    message: str
    read_set_id: str
    read_set_status: str  # on error: the terminal status the read set reached
    status_message: str | None


@dataclass
class ManifestRow:
    """One read set of a sequencing run's manifest, checked and with the run's defaults applied.

    :param row: the 1-based data row (CSV: after the header; JSON: the item's position in ``sources``).
    :param sample_id: the read set's sample.
    :param subject_id: the read set's subject.
    :param name: the read set's name.
    :param sources: read 1 (SOURCE1) and, for paired FASTQ, read 2 (SOURCE2): paths or ``s3://`` URIs as given.
    :param file_type: FASTQ, BAM, CRAM or UBAM.
    :param reference_arn: the reference a BAM or CRAM was aligned to.
    :param generated_from: where the file came from.
    :param description: the read set's description.
    :param tags: tags for the read set (JSON manifests only).
    :param line: the CSV line the row starts on; None for JSON. Not part of equality, like ``manifest_format``:
        the same run written as CSV or JSON gives equal rows.
    :param manifest_format: ``csv`` or ``json``: which column names messages about the row use.
    """

    row: int
    sample_id: str
    subject_id: str
    name: str
    sources: list[str]
    file_type: str
    reference_arn: str | None = None
    generated_from: str | None = None
    description: str | None = None
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    line: int | None = dataclasses.field(default=None, compare=False)
    manifest_format: str = dataclasses.field(default="csv", compare=False)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ManifestRow:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in names}
        values["sources"] = list(values.get("sources") or [])
        values["tags"] = dict(values.get("tags") or {})
        return cls(**values)


@overload
def sample_key(sample: ManifestRow, name: None = None) -> str: ...
@overload
def sample_key(sample: str, name: str) -> str: ...
def sample_key(sample: ManifestRow | str, name: str | None = None) -> str:
    """A sample's key in a sequencing run, ``sample_id/name``: of a row, or of a sample id and a name.

    The format stays (the XComs of running deployments carry it), although ``/`` may be in both parts: the
    manifest checks refuse two rows whose keys are equal while their sample ids and names differ (``A`` +
    ``B/C`` and ``A/B`` + ``C``), so that the keys of a checked manifest's rows are unique.
    """
    if isinstance(sample, ManifestRow):
        if name is not None:
            raise TypeError("sample_key(row) takes the row alone: its name is the row's.")
        return f"{sample.sample_id}/{sample.name}"
    if name is None:
        raise TypeError("sample_key(sample_id, name) needs the name.")
    return f"{sample}/{name}"


@dataclass
class PlannedSample:
    """One manifest row with its staged sources looked at (exist, allowed, fingerprinted, within the part limit):
    what the split of a sequencing run plans the sample's parts from.

    :param row: the manifest row.
    :param sources: ``{"SOURCE1": ..., "SOURCE2": ...}``, as the single read set's split pushes them.
    """

    row: ManifestRow
    sources: dict[str, PlannedSource]

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row.to_dict(), "sources": {key: dict(value) for key, value in self.sources.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlannedSample:
        sources: dict[str, PlannedSource] = dict(data.get("sources") or {})
        return cls(row=ManifestRow.from_dict(data["row"]), sources=sources)


class PartSegment(TypedDict):
    """Consecutive parts of one source of one sample: a sequencing run's part batch is a list of these."""

    sample: str  # the sample's key in the run (RunSample.key); empty for a single read set
    source_uri: str  # PlannedSource.location
    part_source: str
    first_part: int
    last_part: int
    total_parts: int
    part_size: int
    fingerprint: dict[str, Any]


class PartRun(TypedDict):
    """Consecutive uploaded parts of one source, as a sequencing run's part task returns them (compact: a run of
    230,000 parts must not carry 230,000 dicts through XCom).

    ``checksums[i]`` is the checksum of part ``first + i``. ``checksums`` is None when the task left them with
    the service because they were too many to carry (see ``RUN_CHECKSUMS_LIMIT`` in ``utils/parts.py``); the
    complete step then reads them back with ListReadSetUploadParts.
    """

    partSource: str
    first: int
    last: int
    checksums: list[str] | None


class RunPartResults(TypedDict):
    """What a part task of a sequencing run returns: the uploaded parts per sample, and the samples that failed."""

    parts: dict[str, list[PartRun]]
    failed: dict[str, str]  # sample -> why its parts could not be uploaded


@dataclass
class RunSample:
    """One read set of a sequencing run as it moves through the run's steps (each returns the run's samples).

    :param key: the sample's key in the run: ``sample_id/name`` (unique in a valid manifest).
    :param row: the manifest row.
    :param sources: the planned sources.
    :param status: ``planned``, ``stored`` (already in the store: skipped), ``created``, ``completed``, ``active``,
        ``verified`` or ``failed``.
    :param record: the create request's record, once create ran.
    :param read_set_id: the read set, once there is one.
    :param reason: why the sample failed, or why it was skipped.
    :param verified: whether the stored read set was checked against the staged data (ETags for FASTQ).
    :param failed_step: the step the sample failed in.
    :param adopted: ``read_set_id`` was in the store already under another request (see
        :func:`~airflow_provider_omics.readsets.identity.resolve_existing`): verify proves it by its ETag.
    :param started_at: when the run's create step took the sample up (ISO 8601, the worker's clock).
    :param finished_at: when the sample was verified or failed (ISO 8601, the worker's clock).
    """

    key: str
    row: ManifestRow
    sources: dict[str, PlannedSource]
    status: str = "planned"
    record: UploadRecord | None = None
    read_set_id: str | None = None
    reason: str | None = None
    verified: bool = False
    failed_step: str | None = None
    adopted: bool = False
    started_at: str | None = None
    finished_at: str | None = None

    def start(self) -> None:
        self.started_at = _now()

    def finish(self, status: str) -> None:
        self.status, self.finished_at = status, _now()

    def fail(self, step: str, reason: str) -> None:
        self.failed_step, self.reason = step, reason
        self.finish("failed")

    def seconds(self) -> float | None:
        """Seconds from create to verified or failed; None for a sample the run did not take up."""
        if not self.started_at or not self.finished_at:
            return None
        elapsed = datetime.fromisoformat(self.finished_at) - datetime.fromisoformat(self.started_at)
        return round(elapsed.total_seconds(), 1)

    def to_dict(self) -> dict[str, Any]:
        """Compact, for the plan's XCom of hundreds of samples: what :meth:`from_dict` can restore is left out
        (fields at their default, the row's sources (the sources' URIs), a location equal to its URI)."""
        data = {key: value for key, value in dataclasses.asdict(self).items() if value not in (None, False)}
        data["record"] = self.record.to_dict() if self.record else None
        row = {key: value for key, value in self.row.to_dict().items() if value not in (None, {})}
        if row["sources"] == [planned["uri"] for _, planned in sorted(self.sources.items())]:
            del row["sources"]
        data["row"] = row
        data["sources"] = {
            part_source: {key: value for key, value in planned.items() if key != "location" or value != planned["uri"]}
            for part_source, planned in self.sources.items()
        }
        return {key: value for key, value in data.items() if value is not None}

    def state_dict(self) -> dict[str, Any]:
        """The sample's state without its row and sources, which the plan's ``samples`` XCom holds once: what
        the run's steps after the plan return, so that no step's XCom repeats the whole manifest."""
        data = self.to_dict()
        del data["row"], data["sources"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSample:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in names}
        sources: dict[str, PlannedSource] = {
            part_source: {**planned, "location": planned.get("location") or planned["uri"]}  # type: ignore[typeddict-item]
            for part_source, planned in (data.get("sources") or {}).items()
        }
        row = dict(data["row"])
        if "sources" not in row:
            row["sources"] = [planned["uri"] for _, planned in sorted(sources.items())]
        values["row"] = ManifestRow.from_dict(row)
        values["sources"] = sources
        values["record"] = UploadRecord.from_dict(data.get("record"))
        return cls(**values)


def run_samples(data: Any, plan: Any = None) -> dict[str, RunSample]:
    """A run step's output (sample key -> RunSample dict or state dict) as objects, each state completed with its
    row and sources from ``plan`` (the plan's ``samples`` XCom); empty when the step pushed nothing."""
    plan = plan or {}
    samples = {}
    for key, value in (data or {}).items():
        if "row" not in value:
            if key not in plan:
                raise ValueError(f"Sample {key} is not in the run's plan: pass the plan's samples as plan=.")
            value = {**plan[key], **value}
        samples[key] = RunSample.from_dict(value)
    return samples


def run_states(samples: Mapping[str, RunSample]) -> dict[str, Any]:
    """What a run step after the plan returns: each sample's state (:meth:`RunSample.state_dict`)."""
    return {key: sample.state_dict() for key, sample in samples.items()}


def _now() -> str:
    return datetime.now(UTC).isoformat()
