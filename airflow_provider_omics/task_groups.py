"""``upload_read_set(...)``: the whole upload of one read set as one task group, with good defaults."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.common.compat.sdk import conf
from airflow.sdk import TaskGroup, XComArg

from airflow_provider_omics.operators.omics import (
    OmicsAbortReadSetUploadOperator,
    OmicsCompleteReadSetUploadOperator,
    OmicsCreateReadSetUploadOperator,
    OmicsDigestSourcesOperator,
    OmicsSplitReadSetOperator,
    OmicsUploadReadSetPartOperator,
    OmicsVerifyReadSetOperator,
)
from airflow_provider_omics.sensors.omics import OmicsReadSetStatusSensor
from airflow_provider_omics.utils.parts import MAX_PART_SIZE

# A part task that dies (worker lost, a transient error that outlived botocore's retries) re-uploads its
# parts: the service replaces them. Bounded, with a short delay.
DEFAULT_UPLOAD_RETRIES = 3


def upload_read_set(
    group_id: str = "upload_read_set",
    *,
    sequence_store_id: str,
    sources: str | Sequence[str],
    source_file_type: str,
    name: str,
    subject_id: str,
    sample_id: str,
    reference_arn: str | None = None,
    generated_from: str | None = None,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    part_size: int | str = MAX_PART_SIZE,
    max_tasks: int | str | None = None,
    max_concurrency: int = 4,
    aws_conn_id: str | None = "aws_default",
    region_name: str | None = None,
    source_aws_conn_id: str | None = None,
    allowed_local_roots: str | Sequence[str] | None = None,
    allowed_s3_prefixes: str | Sequence[str] | None = None,
    wait_for_active: bool = True,
    verify_upload: bool = True,
    deferrable: bool | None = None,
    waiter_delay: int = 30,
    waiter_max_attempts: int = 720,
    upload_retries: int = DEFAULT_UPLOAD_RETRIES,
    **task_kwargs: Any,
) -> TaskGroup:
    """
    Build split -> create -> upload (mapped) -> complete -> wait for ACTIVE -> verify, with abort as teardown.

    The staged sources are digested in the sequence store's ETag algorithm while the parts upload (FASTQ
    only), and ``verify`` compares the digests with the read set's ETags. ``abort`` is a teardown of
    ``create``: if the run fails before Complete succeeds, the upload is aborted and nothing is left behind.

    Arguments are those of the operators (templated where they are); ``task_kwargs`` go to every task
    (e.g. ``retries``). ``upload_retries`` is the part tasks' retry count. ``wait_for_active`` and ``verify_upload``
    turn off the wait and the verification (verification needs the wait).

    :return: the task group; its complete task's XCom is the read set id.
    """
    aws = {"aws_conn_id": aws_conn_id, "region_name": region_name, **task_kwargs}
    with TaskGroup(group_id=group_id) as group:
        split = OmicsSplitReadSetOperator(
            task_id="split",
            sources=sources,
            part_size=part_size,
            max_tasks=max_tasks,
            source_file_type=source_file_type,
            source_aws_conn_id=source_aws_conn_id,
            allowed_local_roots=allowed_local_roots,
            allowed_s3_prefixes=allowed_s3_prefixes,
            **aws,
        )
        # XComArgs stand for the values they resolve to at run time.
        plan: Any = XComArg(split, key="sources")
        create = OmicsCreateReadSetUploadOperator(
            task_id="create",
            sequence_store_id=sequence_store_id,
            source_file_type=source_file_type,
            name=name,
            subject_id=subject_id,
            sample_id=sample_id,
            reference_arn=reference_arn,
            generated_from=generated_from,
            description=description,
            tags=tags,
            **aws,
        )
        upload_id: Any = create.output
        upload_kwargs = {**aws, "retries": upload_retries}
        upload = OmicsUploadReadSetPartOperator.partial(
            task_id="upload_parts",
            sequence_store_id=sequence_store_id,
            upload_id=upload_id,
            max_concurrency=max_concurrency,
            source_aws_conn_id=source_aws_conn_id,
            allowed_local_roots=allowed_local_roots,
            allowed_s3_prefixes=allowed_s3_prefixes,
            **upload_kwargs,
        ).expand_kwargs(split.output)
        part_checksums: Any = upload.output
        complete = OmicsCompleteReadSetUploadOperator(
            task_id="complete",
            sequence_store_id=sequence_store_id,
            upload_id=upload_id,
            parts=part_checksums,
            expected_parts=plan,
            **aws,
        )
        read_set_id: Any = complete.output
        abort = OmicsAbortReadSetUploadOperator(
            task_id="abort",
            sequence_store_id=sequence_store_id,
            upload_id=upload_id,
            read_set_id=read_set_id,
            **aws,
        )
        split >> create
        complete >> abort.as_teardown(setups=create)

        if wait_for_active or verify_upload:
            wait = OmicsReadSetStatusSensor(
                task_id="wait_active",
                sequence_store_id=sequence_store_id,
                read_set_id=read_set_id,
                deferrable=(
                    conf.getboolean("operators", "default_deferrable", fallback=False)
                    if deferrable is None
                    else deferrable
                ),
                waiter_delay=waiter_delay,
                waiter_max_attempts=waiter_max_attempts,
                **aws,
            )
            complete >> wait
        if verify_upload:
            digest = OmicsDigestSourcesOperator(
                task_id="digest",
                sequence_store_id=sequence_store_id,
                sources=plan,
                source_file_type=source_file_type,
                source_aws_conn_id=source_aws_conn_id,
                **aws,
            )
            digests: Any = digest.output
            verify_task = OmicsVerifyReadSetOperator(
                task_id="verify",
                sequence_store_id=sequence_store_id,
                read_set_id=read_set_id,
                digests=digests,
                sources=plan,
                **aws,
            )
            wait >> verify_task
    return group
