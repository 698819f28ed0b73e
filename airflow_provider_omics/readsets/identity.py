"""A read set request's identity, and what the store already holds of it.

A request is its content, not the run that asks: the store, the sample identity (name, sample, subject, file type,
reference) and the staged content (each source's fingerprint). :func:`request_token` derives the one token from
them. It is the upload's ``clientToken`` and the request tag of the upload, of the import job's source and so of
the read set, so every run, DAG, deployment, retry, clear and path (upload or import) that asks for the same
content finds the same upload, job or read set.

:func:`existing_read_sets` looks at what the store holds under a sample identity; :func:`resolve_existing`
decides (no I/O) what a request does about it under ``on_existing``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_omics.hooks.omics import GONE_READ_SET_STATUSES
from airflow_provider_omics.utils.errors import OmicsInputError
from airflow_provider_omics.utils.tags import REQUEST_TAG, VERIFIED_TAG

if TYPE_CHECKING:
    from airflow_provider_omics.hooks.omics import OmicsHook
    from airflow_provider_omics.utils.payloads import PlannedSource

# Bumped when the derivation changes: a token of another version never equals one of this version.
IDENTITY_VERSION = 2
# The request members that identify a sample's read set (create request names); the others (description,
# generatedFrom, tags) describe it and may change without making it another read set.
IDENTITY_FIELDS = ("sequenceStoreId", "name", "sampleId", "subjectId", "sourceFileType", "referenceArn")
# What a request does when the store holds a read set of its sample identity made from other content.
ON_EXISTING = ("fail", "skip", "new")
# Read sets that never held data: not stored, so never a conflict (a new upload replaces nothing).
NOT_STORED_STATUSES = frozenset({*GONE_READ_SET_STATUSES, "UPLOAD_FAILED"})
# File types whose ETag a client can reproduce, so that content can be proven equal without the token.
ETAG_PROVABLE_FILE_TYPES = frozenset({"FASTQ"})


def request_token(request: Mapping[str, Any], sources: Mapping[str, PlannedSource] | None) -> str:
    """The token of a request: its sample identity (:data:`IDENTITY_FIELDS`) and each source's fingerprint.

    Never the run, the DAG or the task that asks: two runs of one manifest (overlapping, re-triggered, in two
    deployments sharing a store) send one token and get one upload, job and read set. A source's location is
    not part of it either, so every spelling of a path that opens the same file (the fingerprint holds its inode
    and times, or its S3 ETag and version) is one request; a file staged again (new times, a new ETag) is other
    content and another token.
    """
    identity = {
        "version": IDENTITY_VERSION,
        "sample": {field: request.get(field) for field in IDENTITY_FIELDS},
        "content": {
            part_source: dict(sorted((planned.get("fingerprint") or {}).items()))
            for part_source, planned in sorted((sources or {}).items())
        },
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def check_on_existing(value: Any) -> str:
    """``fail``, ``skip`` or ``new`` (a template rendered to one of them), else an input error."""
    text = value.strip().lower() if isinstance(value, str) else value
    if text not in ON_EXISTING:
        raise OmicsInputError(
            f"on_existing={value!r} is not one of {', '.join(ON_EXISTING)}: what to do when the store already holds "
            "a read set of the sample made from other content (fail: refuse the sample; skip: keep that read set; "
            "new: store the staged files as another read set)."
        )
    return str(text)


@dataclass(frozen=True)
class StoredReadSet:
    """A read set the store holds under a request's sample identity.

    :param token: its request tag (None: not stored by this provider).
    :param verified: its verified tag (None: never verified and announced).
    """

    id: str
    arn: str
    status: str
    token: str | None
    verified: str | None
    created: str | None = None

    def describe(self) -> str:
        return f"read set {self.id} ({self.status}" + (f", created {self.created}" if self.created else "") + ")"


def existing_read_sets(
    hook: OmicsHook,
    store_id: str,
    request: Mapping[str, Any],
    token: str,
    listed: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[list[StoredReadSet], list[StoredReadSet]]:
    """The read sets of the request's sample identity that hold data: those carrying ``token`` and the others.

    ListReadSets by name, sample and subject (either creation type), or among ``listed`` (the store's read sets,
    listed once for many requests: :meth:`~airflow_provider_omics.hooks.omics.OmicsHook.list_store_read_sets`),
    then the file type and reference must agree; read sets being deleted, deleted or UPLOAD_FAILED do not count.
    One ListTagsForResource per match.
    """
    same: list[StoredReadSet] = []
    other: list[StoredReadSet] = []
    candidates = (
        listed
        if listed is not None
        else hook.list_read_sets(
            store_id, name=request["name"], sample_id=request["sampleId"], subject_id=request["subjectId"]
        )
    )
    for read_set in candidates:
        if read_set.get("status") in NOT_STORED_STATUSES:
            continue
        # The filters are not documented as exact matches: the identity is.
        if (read_set.get("name"), read_set.get("sampleId"), read_set.get("subjectId")) != (
            request["name"],
            request["sampleId"],
            request["subjectId"],
        ):
            continue
        if read_set.get("fileType") not in (None, request["sourceFileType"]):
            continue
        reference = read_set.get("referenceArn")
        if reference and request.get("referenceArn") and reference != request["referenceArn"]:
            continue
        tags = hook.list_tags_for_resource(read_set["arn"])
        created: Any = read_set.get("creationTime")
        stored = StoredReadSet(
            id=str(read_set["id"]),
            arn=str(read_set["arn"]),
            status=str(read_set.get("status")),
            token=tags.get(REQUEST_TAG),
            verified=tags.get(VERIFIED_TAG),
            created=created.isoformat() if hasattr(created, "isoformat") else (str(created) if created else None),
        )
        (same if stored.token == token else other).append(stored)
    return same, other


@dataclass(frozen=True)
class Resolution:
    """What a request does about the read sets its sample identity already has.

    :param action: ``upload`` (nothing of it is stored: create it), ``reuse`` (``read_set_id`` is this request's
        read set, or for ``adopted`` one to be proven by its ETag: wait for it, verify it, announce it unless it
        was), ``stored`` (``read_set_id`` counts as stored: skip the sample) or ``fail`` (``reason`` says why).
    :param verified: the read set was verified and announced before (its verified tag).
    :param adopted: the read set carries another request's token (or none): verify proves by its ETag that it
        holds the staged content, or the sample fails.
    :param skip_verify: kept with ``on_existing="skip"``: not checked against the staged files.
    """

    action: str
    read_set_id: str | None = None
    verified: bool = False
    adopted: bool = False
    skip_verify: bool = False
    reason: str = ""


def _listed(read_sets: Iterable[StoredReadSet]) -> str:
    return ", ".join(read_set.describe() for read_set in read_sets)


def resolve_existing(
    same: Sequence[StoredReadSet],
    other: Sequence[StoredReadSet],
    on_existing: str,
    file_type: str,
    label: str,
) -> Resolution:
    """Decide what the request ``label`` (its name and sample, for messages) does about its stored read sets.

    - one read set carries the request's token: it is this request's (``stored`` when it was verified, else
      ``reuse``: verified and announced before it counts); two are ambiguous and fail;
    - else, read sets of the same sample identity from other content (another token, or none: another tool):
      ``new`` uploads beside them; ``skip`` keeps one as stored, unverified; ``fail`` (the default) adopts a single
      FASTQ read set to be proven by its ETag (equal to the staged digest: it counts; else the sample fails), and
      refuses any other case, naming the read sets and what differs.
    """
    if len(same) > 1:
        return Resolution(
            "fail",
            reason=f"{label}: {_listed(same)} all carry this request's token: which one holds the staged files "
            "cannot be told. Keep one (delete the others) and trigger the run again.",
        )
    if same:
        found = same[0]
        if found.verified:
            return Resolution(
                "stored",
                found.id,
                verified=True,
                reason=f"already stored from the same staged files and verified ({found.describe()})",
            )
        return Resolution("reuse", found.id, reason=f"stored from the same staged files, not yet verified: {found.id}")
    if not other or on_existing == "new":
        return Resolution("upload", reason=f"on_existing=new: stored beside {_listed(other)}" if other else "")
    untagged = [read_set for read_set in other if read_set.token is None]
    what = (
        "stored by another tool (it carries no request tag of this provider)"
        if len(untagged) == len(other)
        else "stored from other staged content (its request tag belongs to other files: the files were staged "
        "again, or changed, since)"
    )
    if on_existing == "skip":
        chosen = next((read_set for read_set in other if read_set.status == "ACTIVE"), other[0])
        return Resolution(
            "stored",
            chosen.id,
            # Whatever it was verified against, it was not against the staged files.
            skip_verify=True,
            reason=f"on_existing=skip: kept {chosen.describe()}, {what}; not checked against the staged files",
        )
    if len(other) == 1 and file_type in ETAG_PROVABLE_FILE_TYPES:
        return Resolution(
            "reuse",
            other[0].id,
            verified=bool(other[0].verified),
            adopted=True,
            reason=f"{other[0].describe()} of this sample was {what}: its ETags are compared with the staged files",
        )
    proof = (
        f"{file_type} ETags cannot be reproduced client-side, so its content cannot be compared"
        if file_type not in ETAG_PROVABLE_FILE_TYPES
        else "several read sets of the sample exist"
    )
    return Resolution(
        "fail",
        reason=f"{label}: the store already holds {_listed(other)}, {what}; {proof}. Delete it (them) to upload the "
        "staged files, or set on_existing='skip' to keep what is stored, or on_existing='new' to store the staged "
        "files as another read set.",
    )


def uploads_of_identity(uploads: Iterable[Mapping[str, Any]], request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The uploads in progress that this provider started (they carry a request tag) for the request's sample
    identity, whatever their token: an earlier try's upload of since restaged files is one of them."""
    return [
        dict(upload)
        for upload in uploads
        if (upload.get("tags") or {}).get(REQUEST_TAG)
        and all(
            upload.get(field) == request.get(field) for field in ("name", "sampleId", "subjectId", "sourceFileType")
        )
    ]
