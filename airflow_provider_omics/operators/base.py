"""What the operators share: the base of those that read staged sources, of the deprecated single read set's
operators and of those that take a read set request, the console links, and deferring on import jobs and read
sets."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.exceptions import AirflowProviderDeprecationWarning
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_omics.hooks.omics import OmicsHook
from airflow_provider_omics.links.omics import OmicsReadSetImportJobLink, OmicsReadSetLink
from airflow_provider_omics.readsets.imports import IMPORT_JOBS_KEY, JOB_DONE
from airflow_provider_omics.readsets.request import REQUEST_FIELDS, check_request
from airflow_provider_omics.staging.sources import allow_lists
from airflow_provider_omics.triggers.omics import (
    OmicsReadSetActiveTrigger,
    OmicsReadSetImportJobCompleteTrigger,
    waiter_settings,
)
from airflow_provider_omics.utils.inputs import check_store_id

if TYPE_CHECKING:
    from airflow.sdk import Context


def warn_single_read_set_operator(operator: object, instead: str) -> None:
    """The single read set's own operators are deprecated: one read set is a sequencing run of one sample."""
    warnings.warn(
        f"{type(operator).__name__} is deprecated and goes in a later release: upload_read_set(...) builds a read "
        f"set's upload as a sequencing run of one sample (an inline manifest). Wired by hand, use {instead}.",
        AirflowProviderDeprecationWarning,
        stacklevel=3,
    )


class DeprecatedReadSetOperator(AwsBaseOperator[OmicsHook]):
    """An operator of the single read set's own pipeline: it warns, naming the sequencing run's operator that
    ``instead`` names (the same step over a run of one sample)."""

    aws_hook_class = OmicsHook
    instead: str = ""

    def __init__(self, **kwargs: Any) -> None:
        warn_single_read_set_operator(self, f"{self.instead} (operators.sequencing_run)")
        super().__init__(**kwargs)


class ReadSetRequestOperator(DeprecatedReadSetOperator):
    """A deprecated operator that asks for one read set: the request's metadata, checked
    (:func:`~airflow_provider_omics.readsets.request.check_request`), and what to do with a read set of the sample
    from other content (``on_existing``: see :func:`~airflow_provider_omics.readsets.identity.resolve_existing`).

    :param sequence_store_id: the destination sequence store's id. (templated)
    :param source_file_type: FASTQ, BAM, CRAM or UBAM. (templated)
    :param name: the read set's name. (templated)
    :param subject_id: the subject's id. (templated)
    :param sample_id: the sample's id. (templated)
    :param reference_arn: the reference's ARN; required for BAM and CRAM. (templated)
    :param generated_from: where the file came from. (templated)
    :param description: the read set's description. (templated)
    :param tags: tags for the read set. (templated)
    :param on_existing: ``fail`` (the default: a FASTQ read set whose ETags equal the staged files' digests
        counts, verify proves it), ``skip`` (keep it, unverified) or ``new`` (store another read set). A read set
        of this very request is always reused. (templated)
    """

    def __init__(
        self,
        *,
        sequence_store_id: str,
        source_file_type: str,
        name: str,
        subject_id: str,
        sample_id: str,
        reference_arn: str | None = None,
        generated_from: str | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        on_existing: str = "fail",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sequence_store_id = sequence_store_id
        self.source_file_type = source_file_type
        self.name = name
        self.subject_id = subject_id
        self.sample_id = sample_id
        self.reference_arn = reference_arn
        self.generated_from = generated_from
        self.description = description
        self.tags = tags
        self.on_existing = on_existing

    def checked_request(self) -> dict[str, Any]:
        """Every check of the request that needs no service call; returns the request."""
        return check_request(**{field: getattr(self, field) for field in REQUEST_FIELDS})


def persist_import_job_link(context: Context, operator: AwsBaseOperator[OmicsHook], store_id: str, job_id: str) -> None:
    OmicsReadSetImportJobLink.persist(
        context=context,
        operator=operator,
        region_name=operator.hook.conn_region_name,
        aws_partition=operator.hook.conn_partition,
        sequence_store_id=store_id,
        job_id=job_id,
    )


def persist_read_set_link(
    context: Context, operator: AwsBaseOperator[OmicsHook], store_id: str, read_set_id: str
) -> None:
    OmicsReadSetLink.persist(
        context=context,
        operator=operator,
        region_name=operator.hook.conn_region_name,
        aws_partition=operator.hook.conn_partition,
        sequence_store_id=store_id,
        read_set_id=read_set_id,
    )


class StagedSourceOperator(AwsBaseOperator[OmicsHook]):
    """An operator that reads staged sources, through ``source_aws_conn_id`` for S3 when it is set."""

    aws_hook_class = OmicsHook
    source_aws_conn_id: str | None

    @property
    def _hook_parameters(self) -> dict[str, Any]:
        return {**super()._hook_parameters, "source_aws_conn_id": self.source_aws_conn_id}

    def staging(self) -> tuple[list[str], list[str]]:
        """The effective allow-lists of this task (``[omics]``'s, narrowed by its own): roots, prefixes."""
        return allow_lists(getattr(self, "allowed_local_roots", None), getattr(self, "allowed_s3_prefixes", None))


def defer_while_running(
    task: Any, store_id: str, job_ids: Sequence[str], waiter_delay: float, waiter_max_attempts: int
) -> None:
    """Defer ``task`` (to its ``execute_complete``) on the first of the jobs that has not ended; return when
    all have."""
    for job_id in job_ids:
        if task.hook.get_read_set_import_job(store_id, job_id).get("status") in JOB_DONE:
            continue
        task.defer(
            trigger=OmicsReadSetImportJobCompleteTrigger(
                sequence_store_id=store_id,
                job_id=job_id,
                **waiter_settings(
                    task, waiter_delay=max(1, int(waiter_delay)), waiter_max_attempts=int(waiter_max_attempts)
                ),
            ),
            method_name="execute_complete",
        )


def defer_while_pending(
    task: Any, store_id: str, pending: Mapping[str, str | None], waiter_delay: float, waiter_max_attempts: int
) -> None:
    """Defer ``task`` (to its ``execute_complete``) until each read set of ``pending`` (id -> created no earlier
    than) has ended, looked at together in the triggerer (:class:`OmicsReadSetActiveTrigger` with ``read_sets``);
    return at once when none is pending."""
    if not pending:
        return
    task.defer(
        trigger=OmicsReadSetActiveTrigger(
            sequence_store_id=store_id,
            read_sets=dict(pending),
            **waiter_settings(
                task, waiter_delay=max(1, int(waiter_delay)), waiter_max_attempts=int(waiter_max_attempts)
            ),
        ),
        method_name="execute_complete",
    )


def resumed_import(task: Any, context: Context, event: dict[str, Any] | None) -> list[str]:
    """After a deferral: the jobs this try waits for (XCom ``import_jobs``); a trigger that gave up on a job that
    has not ended fails the task (retryable: its retry finds the job again)."""
    validated = validate_execute_complete_event(event)
    ti = context["ti"]
    job_ids = [str(j) for j in ti.xcom_pull(task_ids=task.task_id, key=IMPORT_JOBS_KEY, map_indexes=ti.map_index) or []]
    if "read_sets" in validated and validated.get("status") != "success":
        raise AirflowException(f"Waiting for the imported read sets failed: {validated.get('message')}")
    if validated.get("status") != "success" and "job_id" in validated:
        job_id = str(validated.get("job_id"))
        store_id = check_store_id(task.sequence_store_id)
        if task.hook.get_read_set_import_job(store_id, job_id).get("status") not in JOB_DONE:
            raise AirflowException(f"Waiting for import job {job_id} failed: {validated.get('message')}")
    return job_ids
