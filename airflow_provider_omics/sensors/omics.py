"""Sensors that wait for AWS HealthOmics resources, such as a read set becoming ACTIVE after an upload."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, conf

from airflow_provider_omics.hooks.omics import READ_SET_STATES, OmicsHook
from airflow_provider_omics.links.omics import OmicsReadSetImportJobLink, OmicsReadSetLink
from airflow_provider_omics.readsets.imports import JOB_DONE, import_outcome
from airflow_provider_omics.triggers.omics import (
    OmicsReadSetActiveTrigger,
    OmicsReadSetImportJobCompleteTrigger,
    waiter_settings,
)
from airflow_provider_omics.utils.payloads import ReadSetEvent

if TYPE_CHECKING:
    from airflow.sdk import Context


class _OmicsWaitSensor(AwsBaseSensor[OmicsHook]):
    """A sensor that waits blocking (poking every ``waiter_delay`` seconds, for ``waiter_delay *
    waiter_max_attempts`` seconds unless ``poke_interval`` and ``timeout`` say otherwise) or deferred to a waiter
    trigger with the same cadence."""

    aws_hook_class = OmicsHook

    def __init__(
        self,
        *,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        waiter_delay: int = 30,
        waiter_max_attempts: int = 720,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", waiter_delay)
        kwargs.setdefault("timeout", waiter_delay * waiter_max_attempts)
        super().__init__(**kwargs)
        self.deferrable = deferrable
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts


class OmicsReadSetStatusSensor(_OmicsWaitSensor):
    """
    Wait until a HealthOmics read set is ``ACTIVE``, for instance after a multipart upload completed.

    After CompleteMultipartReadSetUpload the read set exists with status ``PROCESSING_UPLOAD`` while
    the service validates the parts; it then becomes ``ACTIVE``, or ``UPLOAD_FAILED`` with a
    ``statusMessage`` saying why. The sensor succeeds on ``ACTIVE``, keeps waiting on
    ``PROCESSING_UPLOAD`` and ``ACTIVATING``, and fails without retrying on ``UPLOAD_FAILED``,
    ``DELETING``, ``DELETED`` and ``ARCHIVED`` (a retry cannot change these), with the service's
    ``statusMessage`` in the error. It returns nothing and adds a console link to the read set.

    In deferrable mode the sensor looks once, then hands the wait to
    :class:`~airflow_provider_omics.triggers.omics.OmicsReadSetActiveTrigger` in the triggerer.
    ``waiter_delay`` and ``waiter_max_attempts`` set the cadence and the patience of both modes:
    unless given, ``poke_interval`` defaults to ``waiter_delay`` and ``timeout`` to
    ``waiter_delay * waiter_max_attempts`` seconds.

    .. seealso::
        GetReadSetMetadata in the AWS HealthOmics API reference:
        https://docs.aws.amazon.com/omics/latest/api/API_GetReadSetMetadata.html

    :param sequence_store_id: The ID of the sequence store that holds the read set. (templated)
    :param read_set_id: The ID of the read set, as CompleteMultipartReadSetUpload returned it. (templated)
    :param deferrable: If True, the sensor waits in the triggerer instead of occupying a worker slot.
        This mode requires the aiobotocore module to be installed.
        (default: False, but can be overridden in config file by setting default_deferrable to True)
    :param waiter_delay: Time in seconds between two looks at the read set status. (default: 30)
    :param waiter_max_attempts: The maximum number of looks at the read set status in deferrable mode;
        with ``waiter_delay`` it also sets the default ``timeout`` of the blocking mode. (default: 720)
    :param aws_conn_id: The Airflow connection used for AWS credentials.
        If this is ``None`` or empty then the default boto3 behaviour is used. If
        running Airflow in a distributed manner and aws_conn_id is None or
        empty, then default boto3 configuration would be used (and must be
        maintained on each worker node). (templated)
    :param region_name: AWS region_name. If not specified then the default boto3 behaviour is used.
        (templated)
    :param verify: Whether or not to verify SSL certificates. See:
        https://boto3.amazonaws.com/v1/documentation/api/latest/reference/core/session.html (templated)
    :param botocore_config: Configuration dictionary (key-values) for botocore client. See:
        https://botocore.amazonaws.com/v1/documentation/api/latest/reference/config.html
    """

    SUCCESS_STATES: frozenset[str] = READ_SET_STATES.success
    FAILURE_STATES: frozenset[str] = READ_SET_STATES.failure
    INTERMEDIATE_STATES: frozenset[str] = READ_SET_STATES.retry

    aws_hook_class = OmicsHook
    template_fields: Sequence[str] = aws_template_fields("sequence_store_id", "read_set_id")
    operator_extra_links = (OmicsReadSetLink(),)
    ui_color = "#66c3ff"

    def __init__(self, *, sequence_store_id: str, read_set_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sequence_store_id = sequence_store_id
        self.read_set_id = read_set_id

    def execute(self, context: Context) -> None:
        OmicsReadSetLink.persist(
            context=context,
            operator=self,
            region_name=self.hook.conn_region_name,
            aws_partition=self.hook.conn_partition,
            sequence_store_id=self.sequence_store_id,
            read_set_id=self.read_set_id,
        )
        if not self.deferrable:
            super().execute(context=context)
            return
        # A read set is often ACTIVE by the time this task starts (small uploads): look once before
        # paying for a round trip through the triggerer.
        if self.poke(context):
            return
        self.defer(
            trigger=OmicsReadSetActiveTrigger(
                sequence_store_id=self.sequence_store_id,
                read_set_id=self.read_set_id,
                **waiter_settings(self),
            ),
            method_name="execute_complete",
        )

    def poke(self, context: Context) -> bool:
        metadata = self.hook.get_read_set_metadata(
            sequence_store_id=self.sequence_store_id, read_set_id=self.read_set_id
        )
        status = metadata.get("status")
        self.log.info(
            "HealthOmics read set %s in sequence store %s is %s",
            self.read_set_id,
            self.sequence_store_id,
            status,
        )
        if status in self.SUCCESS_STATES:
            return True
        if status in self.FAILURE_STATES:
            raise AirflowFailException(self._failure_message(status, metadata.get("statusMessage")))
        if status not in self.INTERMEDIATE_STATES:
            # A status this version does not know yet: keep waiting rather than fail a good upload.
            self.log.warning("Unexpected read set status %r: waiting on", status)
        return False

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        """Finish the deferred wait: succeed on the trigger's success event, fail with its message."""
        validated_event = cast(ReadSetEvent, validate_execute_complete_event(event))
        if validated_event.get("status") == "success":
            self.log.info("HealthOmics read set %s is ACTIVE", self.read_set_id)
            return
        message = validated_event.get("message") or "no message"
        if validated_event.get("read_set_status") in self.FAILURE_STATES:
            raise AirflowFailException(message)
        # Running out of attempts or a non-retriable API error: Airflow's retries may still help.
        raise AirflowException(
            f"Waiting for HealthOmics read set {self.read_set_id} in sequence store "
            f"{self.sequence_store_id} failed: {message}"
        )

    def _failure_message(self, status: str, status_message: str | None) -> str:
        message = f"HealthOmics read set {self.read_set_id} in sequence store {self.sequence_store_id} is {status}"
        return f"{message}: {status_message}" if status_message else message


class OmicsReadSetImportJobSensor(_OmicsWaitSensor):
    """
    Wait until a read set import job, started elsewhere, has finished, and report each source.

    Succeeds when the job is ``COMPLETED`` and returns, per source, its sample, name, read set id, status and
    message. Fails without retrying when the job is ``FAILED`` or ``CANCELLED`` (with the service's message), or
    ``COMPLETED_WITH_FAILURES`` (naming each failed source with its ``statusMessage`` and the read sets that were
    imported). Keeps waiting on ``SUBMITTED``, ``IN_PROGRESS`` and ``CANCELLING``.

    In deferrable mode the sensor looks once, then hands the wait to
    :class:`~airflow_provider_omics.triggers.omics.OmicsReadSetImportJobCompleteTrigger`.

    .. seealso::
        GetReadSetImportJob in the AWS HealthOmics API reference:
        https://docs.aws.amazon.com/omics/latest/api/API_GetReadSetImportJob.html

    :param sequence_store_id: The ID of the sequence store the job imports into. (templated)
    :param job_id: The import job's ID. (templated)
    :param deferrable: wait in the triggerer. (default: ``[operators] default_deferrable``)
    :param waiter_delay: Time in seconds between two looks at the job. (default: 30)
    :param waiter_max_attempts: The maximum number of looks at the job in deferrable mode; with ``waiter_delay``
        it also sets the default ``timeout`` of the blocking mode. (default: 720)
    """

    aws_hook_class = OmicsHook
    template_fields: Sequence[str] = aws_template_fields("sequence_store_id", "job_id")
    operator_extra_links = (OmicsReadSetImportJobLink(),)
    ui_color = "#66c3ff"

    def __init__(self, *, sequence_store_id: str, job_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sequence_store_id = sequence_store_id
        self.job_id = job_id

    def execute(self, context: Context) -> Any:
        OmicsReadSetImportJobLink.persist(
            context=context,
            operator=self,
            region_name=self.hook.conn_region_name,
            aws_partition=self.hook.conn_partition,
            sequence_store_id=self.sequence_store_id,
            job_id=self.job_id,
        )
        if self.poke(context):
            return self.report()
        if not self.deferrable:
            super().execute(context=context)
            return self.report()
        self.defer(
            trigger=OmicsReadSetImportJobCompleteTrigger(
                sequence_store_id=self.sequence_store_id,
                job_id=self.job_id,
                **waiter_settings(self),
            ),
            method_name="execute_complete",
        )

    def poke(self, context: Context) -> bool:
        status = self.hook.get_read_set_import_job(self.sequence_store_id, self.job_id).get("status")
        self.log.info("Import job %s in sequence store %s is %s", self.job_id, self.sequence_store_id, status)
        return status in JOB_DONE

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        validated = validate_execute_complete_event(event)
        if validated.get("status") != "success":
            status = self.hook.get_read_set_import_job(self.sequence_store_id, self.job_id).get("status")
            if status not in JOB_DONE:
                raise AirflowException(f"Waiting for import job {self.job_id} failed: {validated.get('message')}")
        return self.report()

    def report(self) -> list[dict[str, Any]]:
        return import_outcome(self.hook, self.sequence_store_id, [self.job_id], self.log)
