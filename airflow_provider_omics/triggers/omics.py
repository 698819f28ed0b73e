"""Triggers that wait, in the triggerer, for AWS HealthOmics resources to reach a state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, cast

from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger
from airflow.triggers.base import TriggerEvent

from airflow_provider_omics.hooks.omics import OmicsHook, ReadSetsWait
from airflow_provider_omics.utils.payloads import ReadSetEvent

if TYPE_CHECKING:
    from airflow.exceptions import AirflowException


def waiter_settings(
    task: Any, *, waiter_delay: int | None = None, waiter_max_attempts: int | None = None
) -> dict[str, Any]:
    """The waiter cadence and the AWS settings a trigger takes from the task that defers to it (the cadence
    given here instead, for a task that has already read its own, templated one)."""
    return {
        "waiter_delay": int(task.waiter_delay) if waiter_delay is None else waiter_delay,
        "waiter_max_attempts": int(task.waiter_max_attempts) if waiter_max_attempts is None else waiter_max_attempts,
        "aws_conn_id": task.aws_conn_id,
        "region_name": task.region_name,
        "verify": task.verify,
        "botocore_config": task.botocore_config,
    }


class OmicsReadSetActiveTrigger(AwsBaseWaiterTrigger):
    """
    Fire when a read set of a sequence store becomes ``ACTIVE`` or, given ``read_sets``, when each of many read
    sets has become ``ACTIVE`` or failed.

    Many read sets are looked at together each round, many per call (ListReadSets of those created after the
    earliest known time, GetReadSetMetadata only for a read set whose time is not known yet:
    :meth:`~airflow_provider_omics.hooks.omics.OmicsHook.read_set_statuses_async`). The event is then
    ``{"status": "success", "read_sets": {id: {"status", "statusMessage", "creationTime"}}}`` once none is on
    its way any more (a failed read set is in ``read_sets`` with its status: the task decides), and
    ``{"status": "error", "message": ..., "read_sets": {...}, "pending": [ids]}`` when the attempts run out.

    Polls GetReadSetMetadata with the provider's ``read_set_active`` waiter. The event is
    ``{"status": "success", "read_set_id": ...}`` once the read set is ``ACTIVE``, and
    ``{"status": "error", "message": ..., "read_set_id": ...}`` when it reaches ``UPLOAD_FAILED``,
    ``DELETING``, ``DELETED`` or ``ARCHIVED`` (the message then holds the status and the service's
    ``statusMessage``), when GetReadSetMetadata fails with a non-retriable error, or when the
    attempts run out. An error event for a terminal status also carries ``read_set_status`` and
    ``status_message``, so that the deferring task can tell a failed upload (nothing to retry) from
    a wait that ran out of attempts.

    :param sequence_store_id: The ID of the sequence store that holds the read set.
    :param read_set_id: The ID of the read set to wait for.
    :param read_sets: Instead of ``read_set_id``, the read sets to wait for: id -> a time (ISO 8601) each was
        created no earlier than, or None.
    :param waiter_delay: The amount of time in seconds to wait between attempts. (default: 30)
    :param waiter_max_attempts: The maximum number of attempts to be made. (default: 720)
    :param aws_conn_id: The Airflow connection used for AWS credentials.
    :param region_name: The AWS region of the sequence store. Uses the connection's region if not set.
    :param verify: Whether or not to verify SSL certificates.
        See: https://boto3.amazonaws.com/v1/documentation/api/latest/reference/core/session.html
    :param botocore_config: Configuration dictionary (key-values) for botocore client. See:
        https://botocore.amazonaws.com/v1/documentation/api/latest/reference/config.html
    """

    aws_hook_class = OmicsHook

    def __init__(
        self,
        *,
        sequence_store_id: str,
        read_set_id: str | None = None,
        read_sets: Mapping[str, str | None] | None = None,
        waiter_delay: int = 30,
        waiter_max_attempts: int = 720,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
    ) -> None:
        if (read_set_id is None) == (read_sets is None):
            raise ValueError("Give read_set_id (one read set) or read_sets (many), not both.")
        what = f"read set {read_set_id}" if read_set_id else f"{len(read_sets or {})} read sets"
        fields: dict[str, Any] = {"sequence_store_id": sequence_store_id}
        fields.update({"read_set_id": read_set_id} if read_set_id else {"read_sets": dict(read_sets or {})})
        super().__init__(
            serialized_fields=fields,
            waiter_name="read_set_active",
            waiter_args={"sequenceStoreId": sequence_store_id, "id": read_set_id},
            failure_message=f"HealthOmics {what} in sequence store {sequence_store_id} did not become ACTIVE",
            status_message=f"Status of HealthOmics {what} is",
            # statusMessage carries the service's reason for UPLOAD_FAILED; async_wait puts the
            # values of these queries into the error it raises on a failure acceptor.
            status_queries=["status", "statusMessage"],
            return_key="read_set_id",
            return_value=read_set_id,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
        )
        self.sequence_store_id = sequence_store_id
        self.read_set_id = read_set_id
        self.read_sets = dict(read_sets) if read_sets is not None else None

    async def run(self) -> AsyncIterator[TriggerEvent]:
        if self.read_sets is None:
            async for event in super().run():
                yield event
            return
        hook = cast(OmicsHook, self.hook())
        wait = ReadSetsWait(dict(self.read_sets))
        ended: dict[str, dict[str, Any]] = {}
        async with await hook.get_async_conn() as client:
            for attempt in range(self.attempts):
                ended.update(wait.observe(await hook.read_set_statuses_async(client, self.sequence_store_id, wait)))
                self.log.info(
                    "HealthOmics read sets in sequence store %s: %d ended, %d on their way",
                    self.sequence_store_id,
                    len(ended),
                    len(wait.pending),
                )
                if not wait.pending:
                    yield TriggerEvent({"status": "success", "read_sets": ended})
                    return
                if attempt + 1 < self.attempts:
                    await asyncio.sleep(self.waiter_delay)
        yield TriggerEvent(
            {
                "status": "error",
                "message": f"{len(wait.pending)} read set(s) still not ACTIVE after "
                f"{self.waiter_delay * self.attempts} s: {', '.join(sorted(wait.pending))}",
                "read_sets": ended,
                "pending": sorted(wait.pending),
            }
        )

    def _event_from_exception(self, error: AirflowException) -> TriggerEvent:
        event = ReadSetEvent(status="error", message=str(error), read_set_id=self.return_value)
        # Only a failure acceptor (WaiterTerminalFailure) carries the last GetReadSetMetadata response;
        # copy just the two strings: the response also holds datetimes that an event cannot serialize.
        last_response = getattr(error, "last_response", None)
        if isinstance(last_response, dict) and last_response.get("status"):
            event["read_set_status"] = last_response["status"]
            event["status_message"] = last_response.get("statusMessage")
        return TriggerEvent(event)


class OmicsReadSetImportJobCompleteTrigger(AwsBaseWaiterTrigger):
    """
    Fire when a read set import job of a sequence store has finished: ``COMPLETED`` or
    ``COMPLETED_WITH_FAILURES`` (the deferring task then reads each source's outcome), with
    ``{"status": "success", "job_id": ...}``.

    Polls GetReadSetImportJob with the provider's ``read_set_import_job_complete`` waiter. ``FAILED`` and
    ``CANCELLED``, a non-retriable error and running out of attempts end with
    ``{"status": "error", "message": ..., "job_id": ...}`` (the message holds the job's ``statusMessage``).

    :param sequence_store_id: The ID of the sequence store the job imports into.
    :param job_id: The ID of the import job.
    :param waiter_delay: The amount of time in seconds to wait between attempts. (default: 30)
    :param waiter_max_attempts: The maximum number of attempts to be made. (default: 720)
    :param aws_conn_id: The Airflow connection used for AWS credentials.
    :param region_name: The AWS region of the sequence store. Uses the connection's region if not set.
    :param verify: Whether or not to verify SSL certificates.
    :param botocore_config: Configuration dictionary (key-values) for botocore client.
    """

    aws_hook_class = OmicsHook

    def __init__(
        self,
        *,
        sequence_store_id: str,
        job_id: str,
        waiter_delay: int = 30,
        waiter_max_attempts: int = 720,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
    ) -> None:
        super().__init__(
            serialized_fields={"sequence_store_id": sequence_store_id, "job_id": job_id},
            waiter_name="read_set_import_job_complete",
            waiter_args={"sequenceStoreId": sequence_store_id, "id": job_id},
            failure_message=f"HealthOmics read set import job {job_id} in sequence store {sequence_store_id} failed",
            status_message=f"Status of HealthOmics read set import job {job_id} is",
            status_queries=["status", "statusMessage"],
            return_key="job_id",
            return_value=job_id,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
        )
        self.sequence_store_id = sequence_store_id
        self.job_id = job_id
