"""Proving a stored read set is the staged data: digests of the staged sources, and the checks of verify."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
)

from airflow_provider_omics.hooks.omics import OmicsHook
from airflow_provider_omics.readsets import Logger
from airflow_provider_omics.staging.digests import digest_stream, family_of
from airflow_provider_omics.staging.sources import (
    Fingerprint,
    reopen_source,
    source_errors,
)
from airflow_provider_omics.utils.payloads import (
    PlannedSource,
    SourceDigest,
)

# Read sets whose ETag a client can reproduce: the hash of the uncompressed FASTQ. BAM/CRAM ETags are computed
# by the service from the SAM representation against the reference (HealthOmics User Guide, "How ETags are
# calculated"), uBAM's likewise.
VERIFIABLE_FILE_TYPES = ("FASTQ",)


def digest_skip_reason(file_type: str) -> str | None:
    """Why a file type's sources are not digested (their ETag cannot be reproduced), or None."""
    if file_type in VERIFIABLE_FILE_TYPES:
        return None
    return (
        f"{file_type} ETags are computed by HealthOmics from the alignment as SAM against the reference "
        "and cannot be reproduced client-side; only the stored size is checked."
    )


def digest_source(
    hook: OmicsHook,
    part_source: str,
    planned: PlannedSource,
    family: str,
    roots: Sequence[str],
    prefixes: Sequence[str],
    log: Logger,
) -> SourceDigest:
    """The digest of one staged FASTQ source in the store's ETag ``family``, pinned to its planned fingerprint."""
    fingerprint = Fingerprint.from_dict(planned["fingerprint"])
    started = time.monotonic()
    try:
        with source_errors():
            # Plans pushed before split recorded the location have only the URI.
            source = reopen_source(
                lambda: hook.staged_source(planned.get("location") or planned["uri"]), roots, prefixes
            )
            with source.pin(fingerprint) as pinned, pinned.open_stream() as stream:
                digest = digest_stream(stream, family)
    except ValueError as err:
        raise AirflowFailException(f"{part_source} ({planned['uri']}) is not readable as FASTQ: {err}") from None
    seconds = time.monotonic() - started
    log.info(
        "%s %s: %s %s (%d bytes uncompressed, %.1f MB/s)",
        part_source,
        planned["uri"],
        family,
        digest.hexdigest,
        digest.uncompressed_bytes,
        digest.uncompressed_bytes / max(seconds, 1e-9) / 1e6,
    )
    return SourceDigest(
        hexdigest=digest.hexdigest, compressed=digest.compressed, uncompressed_bytes=digest.uncompressed_bytes
    )


# What a verified read set's asset event tells about it (GetReadSetMetadata's names).
_EVENT_METADATA = ("id", "arn", "name", "sampleId", "subjectId", "fileType", "etag")


def verify_read_set(
    hook: OmicsHook,
    sequence_store_id: str,
    read_set_id: str,
    digests: Mapping[str, Any] | None,
    sources: Mapping[str, PlannedSource],
    log: Logger,
    adopted: bool = False,
) -> dict[str, Any]:
    """Check that the stored read set is the staged data: ACTIVE, each source's size, and the FASTQ ETags.

    ``adopted``: the read set was in the store already under another request (another tool's, or of files staged
    before): it counts only when its ETags prove it holds the staged content, and a mismatch says so.

    :raises AirflowFailException: naming every mismatch.
    """
    metadata = hook.get_read_set_metadata(sequence_store_id, read_set_id)
    if metadata.get("status") != "ACTIVE":
        raise AirflowFailException(
            f"Read set {read_set_id} is {metadata.get('status')}, not ACTIVE: "
            f"{metadata.get('statusMessage', 'no status message')}. Only an ACTIVE read set can be verified."
        )
    problems: list[str] = []
    checked: dict[str, Any] = {}
    files = metadata.get("files", {})
    for part_source, planned in sorted(sources.items()):
        stored = files.get(part_source.lower(), {}).get("contentLength")
        if stored is not None and int(stored) != int(planned["size"]):
            problems.append(
                f"{part_source} ({planned['uri']}): the service stored {stored} bytes, {planned['size']} were staged"
            )
        checked[part_source] = {"size": planned["size"], "stored_size": stored}
    digests = digests or {}
    etag = metadata.get("etag", {})
    if digests.get("family"):
        algorithm = etag.get("algorithm", "")
        if family_of(algorithm) != digests["family"]:
            problems.append(
                f"the read set's ETag algorithm {algorithm} is not the {digests['family']} family the sources "
                "were digested with"
            )
        for part_source, digest in sorted(digests["sources"].items()):
            stored_etag = etag.get(part_source.lower())
            checked[part_source].update(etag=stored_etag, digest=digest["hexdigest"])
            if stored_etag != digest["hexdigest"]:
                problems.append(
                    f"{part_source} ({sources[part_source]['uri']}): ETag {stored_etag} does not match "
                    f"the staged file's {digests['family']} digest {digest['hexdigest']}"
                )
    else:
        log.info("ETag check skipped: %s", digests.get("skipped") or "no digest was computed")
    if adopted and not digests.get("family"):
        problems.append("its content cannot be compared with the staged files (no ETag digest)")
    if problems and adopted:
        raise AirflowFailException(
            f"Read set {read_set_id} was already in the store for this sample with other content: "
            + "; ".join(problems)
            + ". Delete it to upload the staged files, or set on_existing='new' to store them as another read set "
            "(or 'skip' to keep it)."
        )
    if problems:
        raise AirflowFailException(
            f"Read set {read_set_id} does not match the staged data: " + "; ".join(problems) + ". "
            "The upload is not trustworthy: delete the read set and upload again."
        )
    log.info(
        "Read set %s verified: %s",
        read_set_id,
        "; ".join(
            f"{part_source} {facts['size']:,} bytes stored"
            + (f", ETag {facts['etag']} equals the staged file's digest" if facts.get("digest") else "")
            for part_source, facts in sorted(checked.items())
        ),
    )
    return {
        "read_set_id": read_set_id,
        "etag_verified": bool(digests.get("family")),
        "sources": checked,
        "metadata": {key: metadata.get(key) for key in _EVENT_METADATA},
    }
