"""Each verified read set announced once: a verify step marks a read set with the verified tag just before it
announces it in an asset event, and a read set that carries the tag is never announced again, over every retry,
clear, re-run and overlapping run.

The mark is written before the task ends, the event is recorded when it ends well: a worker lost between the two
leaves a verified read set that no event named (never one named twice). Two verify tasks of one read set at the
same moment each write their own stamp and read it back, so the later writer alone announces it; only two that
both read the tag before either wrote it can both announce.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from airflow_provider_omics.assets.omics import (
    READ_SETS_ALIAS,
    emit_read_sets_event,
    read_set_entry,
    read_sets_alias,
    read_sets_event_extra,
)
from airflow_provider_omics.utils.tags import VERIFIED_TAG
from airflow_provider_omics.version_compat import AssetAlias, BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_omics.hooks.omics import OmicsHook
    from airflow_provider_omics.readsets import Logger


def verified_stamp() -> str:
    """The verified tag's value: when, and a nonce that tells this claim from a concurrent one."""
    return f"{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')} {uuid.uuid4().hex[:12]}"


def claim_announcements(hook: OmicsHook, verified: Sequence[Mapping[str, Any]], log: Logger) -> list[Mapping[str, Any]]:
    """Of ``verified`` (``verify_read_set`` results), those to announce now, each marked with the verified tag.

    A read set already marked was announced before and is left out. One that cannot be marked (the tag call
    failed) is left out too, and logged: unmarked, the next run that verifies it announces it.
    """
    claimed: list[Mapping[str, Any]] = []
    for result in verified:
        read_set_id, arn = result["read_set_id"], str(result["metadata"].get("arn") or "")
        stamp = verified_stamp()
        try:
            before = hook.list_tags_for_resource(arn).get(VERIFIED_TAG)
            if before:
                log.info(
                    "Read set %s was verified and announced before (%s): not announced again.", read_set_id, before
                )
                continue
            # The tag may commit with its answer lost: what the tags say after it decides.
            with contextlib.suppress(ClientError, BotoCoreError):
                hook.tag_resource(arn, {VERIFIED_TAG: stamp})
            after = hook.list_tags_for_resource(arn).get(VERIFIED_TAG)
        except (ClientError, BotoCoreError) as err:
            log.warning(
                "Could not mark read set %s as verified (%s): not announced now; the next run that verifies it "
                "announces it.",
                read_set_id,
                err,
            )
            continue
        if after is None:
            log.warning(
                "Could not mark read set %s as verified: not announced now; the next run that verifies it "
                "announces it.",
                read_set_id,
            )
            continue
        if after != stamp:
            log.info(
                "Read set %s was marked verified by another task meanwhile (%s): it announces it, this one does not.",
                read_set_id,
                after,
            )
            continue
        claimed.append(result)
    return claimed


def with_read_sets_alias(kwargs: dict[str, Any], emit: bool) -> dict[str, Any]:
    """An operator's keyword arguments with the read sets' asset alias added to its outlets when ``emit``."""
    if emit:
        outlets = kwargs.get("outlets") or []
        outlets = list(outlets) if isinstance(outlets, list | tuple) else [outlets]
        if not any(isinstance(o, AssetAlias) and o.name == READ_SETS_ALIAS for o in outlets):
            kwargs = {**kwargs, "outlets": [*outlets, read_sets_alias()]}
    return kwargs


def announce_read_sets(
    context: Context, task: BaseOperator, sequence_store_id: str, verified: Sequence[Mapping[str, Any]]
) -> None:
    """Emit one asset event on the store's asset for the read sets a task verified (``verify_read_set``'s results),
    when the task has the read sets' alias in its outlets (:mod:`airflow_provider_omics.assets.omics`)."""
    if not verified or not any(isinstance(o, AssetAlias) and o.name == READ_SETS_ALIAS for o in task.outlets or []):
        return
    if "outlet_events" not in context:
        task.log.info("No outlet events in this context (the task runs outside Airflow's task runner): no event.")
        return
    entries = [
        read_set_entry(result["metadata"], etag_verified=bool(result.get("etag_verified"))) for result in verified
    ]
    store_arn = str(verified[0]["metadata"].get("arn") or "").partition("/readSet/")[0]
    asset = emit_read_sets_event(context, store_arn, read_sets_event_extra(sequence_store_id, entries))
    task.log.info("Asset event on %s for %d read set(s)", asset.uri, len(entries))
