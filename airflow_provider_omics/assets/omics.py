"""Airflow assets for HealthOmics sequence stores: an asset event for the read sets a task stored and verified.

One asset per sequence store, ``omics://<region>/<account>/sequence-store/<store id>``
(:func:`sequence_store_uri`), so that a downstream DAG (an analysis workflow) can be scheduled on the read sets
arriving in a store::

    from airflow_provider_omics.assets.omics import sequence_store_asset

    with DAG(schedule=[sequence_store_asset("arn:aws:omics:us-east-1:123456789012:sequenceStore/1234567890")]):
        ...

The verify steps emit one event per task that verified read sets, through the asset alias :data:`READ_SETS_ALIAS`
(the store is known only at run time); the event's extra (:func:`read_sets_event_extra`) lists every read set
the task verified: its id, ARN, name, sample, subject, file type and ETags. One event per task, not per read set:
Airflow 3.3 hands an asset-triggered run only the events up to the first one that queued it, so the other events
of the same task would wait for the next arrival (apache/airflow#54659). The scheme ``omics`` is
registered in the provider's info, with :func:`sanitize_uri` as its normalizer.

On Airflow 2 the asset is a dataset and the alias a dataset alias (:mod:`airflow_provider_omics.version_compat`).
Before Airflow 3.1.3 an event's extra cannot hold lists (apache/airflow#56882): there ``read_sets`` is the same list
as a JSON string. :func:`event_read_sets` reads it in either form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult

from airflow_provider_omics.version_compat import AIRFLOW_V_3_0_PLUS, NESTED_ASSET_EVENT_EXTRA, Asset, AssetAlias

if TYPE_CHECKING:
    from airflow.sdk import Context

SCHEME = "omics"
# The alias through which the verify steps emit their events: one alias for every store and DAG.
READ_SETS_ALIAS = "omics-read-sets"
_STORE_ARN = re.compile(
    r"arn:[^:]+:omics:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):sequenceStore/(?P<store>\d{10,36})"
    r"(/readSet/\d{10,36})?"
)
_PATH = re.compile(r"/\d{12}/sequence-store/\d{10,36}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")


def sequence_store_uri(region: str, account_id: str, sequence_store_id: str) -> str:
    """The asset URI of a sequence store: ``omics://<region>/<account>/sequence-store/<store id>``."""
    return f"{SCHEME}://{region}/{account_id}/sequence-store/{sequence_store_id}"


def sequence_store_asset(arn: str, *, extra: Mapping[str, Any] | None = None) -> Asset:
    """The asset of the sequence store with this ARN (or of the store of a read set with this ARN)."""
    match = _STORE_ARN.fullmatch(arn or "")
    if match is None:
        raise ValueError(
            f"{arn!r} is not a sequence store ARN: expected arn:aws:omics:<region>:<account>:sequenceStore/<id> "
            "(as GetSequenceStore returns it)."
        )
    return create_asset(
        region=match["region"], account_id=match["account"], sequence_store_id=match["store"], extra=extra
    )


def sequence_store_id_of(arn: str | None) -> str:
    """The store id in a sequence store ARN (or in a read set's ARN); ``""`` when ``arn`` is not one, so that a
    form's default falls back to empty."""
    match = _STORE_ARN.fullmatch((arn or "").strip())
    return match["store"] if match else ""


def create_asset(
    *, region: str, account_id: str, sequence_store_id: str, extra: Mapping[str, Any] | None = None
) -> Asset:
    """The asset of a sequence store (the ``factory`` of the ``omics`` scheme)."""
    uri = sequence_store_uri(region, account_id, sequence_store_id)
    if not AIRFLOW_V_3_0_PLUS:
        # Airflow 2's Dataset has a URI and no name.
        return Asset(uri=uri, extra=dict(extra or {}))
    return Asset(uri=uri, name=uri, extra=dict(extra or {}))


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Check an ``omics://`` asset URI's form and lower-case its region (the ``handler`` of the scheme)."""
    if not _REGION.fullmatch(uri.netloc.lower()):
        problem = f"the host must be an AWS region, got {uri.netloc!r}"
    elif not _PATH.fullmatch(uri.path):
        problem = f"the path must be /<12-digit account>/sequence-store/<store id: 10 to 36 digits>, got {uri.path!r}"
    else:
        return uri._replace(netloc=uri.netloc.lower())
    raise ValueError(f"Invalid HealthOmics asset URI {uri.geturl()!r}: {problem}.")


def read_set_entry(metadata: Mapping[str, Any], *, etag_verified: bool) -> dict[str, Any]:
    """One verified read set in an event's ``read_sets``: what a downstream DAG needs to find and trust it."""
    etag = metadata.get("etag") or {}
    return {
        "read_set_id": metadata.get("id"),
        "read_set_arn": metadata.get("arn"),
        "name": metadata.get("name"),
        "sample_id": metadata.get("sampleId"),
        "subject_id": metadata.get("subjectId"),
        "file_type": metadata.get("fileType"),
        "etag_algorithm": etag.get("algorithm"),
        "etags": {key: value for key, value in etag.items() if key.startswith("source")},
        "etag_verified": etag_verified,
    }


def read_sets_event_extra(sequence_store_id: str, entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The extra of a verify step's event: the store and every read set the step verified
    (:func:`read_set_entry` each); before Airflow 3.1.3, the list as a JSON string (see :func:`event_read_sets`)."""
    read_sets = [dict(entry) for entry in entries]
    if not NESTED_ASSET_EVENT_EXTRA:
        return {"sequence_store_id": sequence_store_id, "read_sets": json.dumps(read_sets, sort_keys=True)}
    return {"sequence_store_id": sequence_store_id, "read_sets": read_sets}


def event_read_sets(extra: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The read sets of an event's extra (:func:`read_sets_event_extra`): its ``read_sets`` list, decoded from JSON
    where an Airflow before 3.1.3 stored it as a string; none when the extra has none."""
    read_sets = (extra or {}).get("read_sets") or []
    if isinstance(read_sets, str):
        read_sets = json.loads(read_sets)
    return [dict(entry) for entry in read_sets]


def read_sets_alias() -> AssetAlias:
    """The alias the verify steps emit their events through (add it to a task's ``outlets`` to emit)."""
    return AssetAlias(READ_SETS_ALIAS)


def emit_read_sets_event(context: Context, store_arn: str, extra: Mapping[str, Any]) -> Asset:
    """Record the event on the store's asset through :data:`READ_SETS_ALIAS` (the task must have the alias in its
    outlets; Airflow registers the event when the task succeeds)."""
    asset = sequence_store_asset(store_arn)
    context["outlet_events"][read_sets_alias()].add(asset, extra=dict(extra))
    return asset
