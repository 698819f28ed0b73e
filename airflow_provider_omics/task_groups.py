"""``upload_read_set(...)`` and ``upload_sequencing_run(...)``: one pipeline over the samples of a plan (a manifest's,
or one read set given inline) as one task group, with good defaults."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import conf

from airflow_provider_omics.operators.omics import OmicsUploadReadSetPartOperator
from airflow_provider_omics.operators.sequencing_run import (
    RUN_SAMPLES_KEY,
    OmicsAbortRunUploadsOperator,
    OmicsBatchRunDigestsOperator,
    OmicsCompleteRunUploadsOperator,
    OmicsCreateRunUploadsOperator,
    OmicsDigestRunSourcesOperator,
    OmicsImportRunReadSetsOperator,
    OmicsPlanSequencingRunOperator,
    OmicsRunFailuresOperator,
    OmicsRunSampleFailedOperator,
    OmicsSequencingRunSummaryOperator,
    OmicsVerifyRunReadSetsOperator,
    OmicsWaitRunReadSetsOperator,
)
from airflow_provider_omics.readsets.imports import METHODS
from airflow_provider_omics.staging.manifests import inline_manifest
from airflow_provider_omics.utils.parts import MAX_PART_SIZE
from airflow_provider_omics.version_compat import TaskGroup, XComArg

# A part task that dies (worker lost, a transient error that outlived botocore's retries) re-uploads its
# parts: the service replaces them. Bounded, with a short delay.
DEFAULT_UPLOAD_RETRIES = 3
# create, complete and abort converge on one result when retried (request token, read set found again), so a
# worker lost in the middle of one of them is retried rather than failing the run.
DEFAULT_SERVICE_RETRIES = 2
DEFAULT_RETRY_DELAY = timedelta(seconds=10)
# A run's digest tasks outrank its mapped part uploads (whose weight is about 6 under Airflow's default
# "downstream" rule): it is the longest task of a run of large FASTQs, so it must not wait for a free slot.
DIGEST_PRIORITY_WEIGHT = 10
# At most this many mapped digest tasks in a run, each hashing ``digest_concurrency`` sources at once (4 x 4 sources
# in flight), so that a run stays within its upload budget plus 14 task instances (the 10 others: plan, create,
# digest_batches, complete, abort, wait_active, verify, summary, failures and one failed_sample).
DEFAULT_DIGEST_TASKS = 4


def _retries(group: TaskGroup, aws: dict[str, Any]) -> Callable[[int | None, int], dict[str, Any]]:
    """The task arguments with a retry count: ``count`` when given; else what the user set for every task (the
    DAG's default_args, the group's, ``task_kwargs``), left alone; else ``default``, 10 s apart unless a
    ``retry_delay`` is set."""
    user_defaults = {**((group.dag.default_args if group.dag else None) or {}), **group.default_args, **aws}

    def with_retries(count: int | None, default: int) -> dict[str, Any]:
        if count is not None:
            return {**aws, "retries": count}
        if "retries" in user_defaults:
            return aws
        delay = {} if "retry_delay" in user_defaults else {"retry_delay": DEFAULT_RETRY_DELAY}
        return {**delay, **aws, "retries": default}

    return with_retries


def _deferrable(deferrable: bool | None) -> bool:
    return conf.getboolean("operators", "default_deferrable", fallback=False) if deferrable is None else deferrable


def _check_method(method: str) -> None:
    """``upload``, ``import``, ``auto``, or a template that renders to one of them at run time (the example DAGs'
    forms): then both paths are built, and split or plan refuses any other rendered value."""
    if method not in METHODS and "{{" not in str(method):
        raise ValueError(f"method={method!r} is not one of {', '.join(METHODS)}, nor a template that renders one.")


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
    max_concurrency: int | str = 4,
    aws_conn_id: str | None = "aws_default",
    region_name: str | None = None,
    source_aws_conn_id: str | None = None,
    allowed_local_roots: str | Sequence[str] | None = None,
    allowed_s3_prefixes: str | Sequence[str] | None = None,
    wait_for_active: bool = True,
    verify_upload: bool = True,
    deferrable: bool | None = None,
    waiter_delay: float | str = 30,
    waiter_max_attempts: int = 720,
    upload_retries: int | None = None,
    service_retries: int | None = None,
    method: str = "upload",
    role_arn: str | None = None,
    on_existing: str = "fail",
    pool: str | None = None,
    **task_kwargs: Any,
) -> TaskGroup:
    """
    Build the upload of one read set: the pipeline of :func:`upload_sequencing_run` over a run of one sample,
    given inline (:func:`~airflow_provider_omics.staging.manifests.inline_manifest`) instead of a manifest file.

    plan -> create -> upload (mapped, at most ``max_tasks``) -> complete -> wait for ACTIVE -> verify -> summary,
    with digest beside the uploads and abort after complete, whatever happened, so that no upload is left behind.
    The plan checks the read set's fields and staged files as it checks a manifest's row, before anything exists
    on the service. The staged sources are digested in the sequence store's ETag algorithm while the parts upload
    (FASTQ only), and ``verify`` compares the digests with the read set's ETags.

    Exactly one read set comes out of a request, whatever fails: the create request carries a token derived from
    its content (the sample identity and the staged files' fingerprints, never the run), so any run, DAG or
    deployment asking for the same files gets the same upload; complete finds the read set again when its answer
    was lost, and a cleared or re-run group reuses the read set already stored. ``on_existing`` (``fail``,
    ``skip``, ``new``) says what to do when the store holds a read set of the sample from other content (see
    :class:`~airflow_provider_omics.operators.sequencing_run.OmicsPlanSequencingRunOperator`); a verified read
    set is announced once, by the first verify that proves it.

    Arguments are the read set's fields (templated) and those of :func:`upload_sequencing_run`; ``task_kwargs`` go
    to every task (e.g. ``retries``, ``retry_delay``). ``upload_retries`` is the part tasks' retry count and
    ``service_retries`` that of create, complete and abort. Where neither is given, ``retries`` from
    ``task_kwargs`` or the DAG's ``default_args`` applies, as to any task; only when neither sets it do they
    default to 3 and 2 (and, when no ``retry_delay`` is set either, to a 10 s delay). ``wait_for_active`` and
    ``verify_upload`` turn off the wait and the verification (verification needs the wait).

    ``method`` chooses how the read set gets into the store: ``upload`` (the default: the workers send the
    parts), ``import`` (an import job: HealthOmics reads the S3 objects itself as ``role_arn``, default
    ``omics_import_role_arn`` in the connection's extra; the ``import`` task replaces create, the part uploads
    and complete), or ``auto``: the plan chooses at run time, import when every source is on S3 and an import
    role is configured, upload otherwise, and logs the choice and why; the other path's tasks skip. A template
    (``"{{ params.method }}"``) builds both paths and the plan applies the value it renders to. Both paths carry
    the same request token. ``deferrable`` applies to the import's wait for its job as to ``wait_active``.

    :return: the task group; its summary task's XCom is the run's table: one row, with the read set's id under
        ``read_set_id``.
    """
    listed = [sources] if isinstance(sources, str) else list(sources)
    if not listed or len(listed) > 2:
        raise ValueError(f"sources: {len(listed)} files given; a read set has one or two (read 1, read 2).")
    manifest = inline_manifest(
        sources=listed,
        file_type=source_file_type,
        name=name,
        subject_id=subject_id,
        sample_id=sample_id,
        reference_arn=reference_arn,
        generated_from=generated_from,
        description=description,
        tags=tags,
    )
    return _pipeline(
        group_id,
        sequence_store_id=sequence_store_id,
        manifest=manifest,
        part_size=part_size,
        max_tasks=max_tasks,
        max_concurrency=max_concurrency,
        pool=pool,
        aws_conn_id=aws_conn_id,
        region_name=region_name,
        source_aws_conn_id=source_aws_conn_id,
        allowed_local_roots=allowed_local_roots,
        allowed_s3_prefixes=allowed_s3_prefixes,
        waiter_delay=waiter_delay,
        waiter_max_attempts=waiter_max_attempts,
        upload_retries=upload_retries,
        service_retries=service_retries,
        method=method,
        role_arn=role_arn,
        deferrable=deferrable,
        on_existing=on_existing,
        wait_for_active=wait_for_active,
        verify_upload=verify_upload,
        task_kwargs=task_kwargs,
    )


# How each mapped part task of a run is named in the UI, in the words of a single read set's part tasks: its first
# range, and what else it carries ("S5 read 1 parts 1-3 of 12 (+2 samples)", "S7 read 1 parts 9-12 of 12 (+ read
# 2)"). The sample is named by its sample id (its key is "sample id/name").
RUN_MAP_INDEX_TEMPLATE = (
    "{% set s = task.segments %}{% set f = s[0] %}{{ f.sample.split('/')[0] }} "
    "read {{ '2' if f.part_source == 'SOURCE2' else '1' }} "
    "{% if f.first_part == f.last_part %}part {{ f.first_part }}"
    "{% else %}parts {{ f.first_part }}-{{ f.last_part }}{% endif %} of {{ f.total_parts }}"
    "{% set others = (s | map(attribute='sample') | unique | list | length) - 1 %}"
    "{% if others > 0 %} (+{{ others }} sample{{ 's' if others > 1 else '' }})"
    "{% elif s | length > 1 %} (+ read 2){% endif %}"
)


# How each mapped digest task is named in the UI: its largest source, and how many more it hashes ("S5 read 1
# (+3 sources)").
DIGEST_MAP_INDEX_TEMPLATE = (
    "{% set s = task.digest_sources %}{% if s %}{{ s[0][0].split('/')[0] }} "
    "read {{ '2' if s[0][1] == 'SOURCE2' else '1' }}"
    "{% if s | length > 1 %} (+{{ s | length - 1 }} source{{ 's' if s | length > 2 else '' }}){% endif %}"
    "{% else %}no FASTQ source to digest{% endif %}"
)


# How each task of a failed sample is named in the UI: the sample and the step it failed at ("S5 failed at
# wait_active", "S9 failed at verify (+4 samples)" on the last of at most ten), or, when none failed, the one task
# that says so. (Airflow renders it with StrictUndefined: a missing key is an error, so it asks with get().)
FAILURE_MAP_INDEX_TEMPLATE = (
    "{% set f = task.failure %}{% if f %}{{ f.sample.split('/')[0] }} failed at {{ f.step }}"
    "{% set more = f.get('more') or [] %}"
    "{% if more %} (+{{ more | length }} sample{{ 's' if more | length > 1 else '' }}){% endif %}"
    "{% else %}no sample failed{% endif %}"
)


def _show_failures(summary: OmicsSequencingRunSummaryOperator, task_kwargs: Mapping[str, Any]) -> None:
    """Beside the summary (its inputs, upstream tasks and trigger rule): one failed task per failed sample, named by
    the sample and the step (at most ten), or one task that succeeds when none failed."""
    failures = OmicsRunFailuresOperator(
        task_id="failures",
        samples=summary.samples,
        plan=summary.plan,
        trigger_rule=summary.trigger_rule,
        **task_kwargs,
    )
    for upstream in summary.upstream_list:
        upstream >> failures
    OmicsRunSampleFailedOperator.partial(
        task_id="failed_sample", map_index_template=FAILURE_MAP_INDEX_TEMPLATE, **task_kwargs
    ).expand_kwargs(failures.output)


def upload_sequencing_run(
    group_id: str = "upload_sequencing_run",
    *,
    sequence_store_id: str,
    manifest: str | Sequence[Mapping[str, Any]],
    default_file_type: str | None = None,
    default_reference_arn: str | None = None,
    part_size: int | str = MAX_PART_SIZE,
    max_tasks: int | str | None = 32,
    max_concurrency: int | str = 4,
    digest_concurrency: int | str = 4,
    max_digest_tasks: int | str | None = DEFAULT_DIGEST_TASKS,
    pool: str | None = None,
    aws_conn_id: str | None = "aws_default",
    region_name: str | None = None,
    source_aws_conn_id: str | None = None,
    allowed_local_roots: str | Sequence[str] | None = None,
    allowed_s3_prefixes: str | Sequence[str] | None = None,
    waiter_delay: float | str = 10,
    waiter_max_attempts: int = 360,
    upload_retries: int | None = None,
    service_retries: int | None = None,
    summary_csv: bool | str = False,
    method: str = "upload",
    role_arn: str | None = None,
    deferrable: bool | None = None,
    on_existing: str = "fail",
    **task_kwargs: Any,
) -> TaskGroup:
    """
    Build the upload of every read set of a manifest: plan -> create -> upload (mapped, at most ``max_tasks``
    for the whole run) -> complete -> wait for ACTIVE -> verify -> summary, with digest beside the uploads and
    abort (after complete, whatever happened) so that no upload is left behind.

    Each per-sample step is one task that loops over the samples, with the same code as :func:`upload_read_set`'s
    steps; only the byte work is mapped: the part uploads over one flat list of batches shared by all samples (at
    most ``max_tasks``), and the digests over batches of whole sources of about equal bytes (at most
    ``max_digest_tasks``, default 4), so that any worker hashes any source. So a run is at most
    ``max_tasks + max_digest_tasks + 10`` task instances (``max_tasks + 14`` by default, ``+ 15`` with both paths),
    whatever its number of samples, when none fails.
    A sample that fails fails alone (its upload is aborted, the others complete and are verified), ``summary``
    fails the run naming it, and a ``failed_sample`` task named by the sample and the step ("S5 failed at
    wait_active") fails with its reason (one per failed sample, at most 10; one that succeeds when none failed).
    Samples whose read set is already ACTIVE in the store are skipped, so a re-triggered manifest uploads only
    what is missing.

    Arguments are those of the run operators (templated where they are); ``pool`` puts the part tasks in an
    Airflow pool; ``digest_concurrency`` is how many sources a digest task hashes at once; ``summary_csv``
    writes the summary's table as CSV next to the manifest. Retries as for :func:`upload_read_set`.

    ``method`` as for :func:`upload_read_set`: ``upload`` (the default), ``import`` (one ``import`` task starts
    import jobs of at most 100 samples each and waits for them and the read sets; no part is uploaded by a
    worker) or ``auto`` (``plan`` chooses at run time over every source of the manifest, and logs why). Resume,
    per-sample isolation, digest, verify and summary are the same on both paths. ``deferrable`` (default
    ``[operators] default_deferrable``) makes ``wait_active`` and ``import`` wait in the triggerer (for the read sets,
    many per call, and for the jobs).

    A sample's request is its content (the sample identity and the staged files' fingerprints), never the run:
    overlapping runs, re-triggers and clears of one manifest converge on one upload or job and one read set per
    sample, each announced once. ``on_existing`` (``fail``, ``skip``, ``new``) says what to do with a sample whose
    read set the store holds from other content (see
    :class:`~airflow_provider_omics.operators.sequencing_run.OmicsPlanSequencingRunOperator`).

    :return: the task group; its summary task's XCom is the per-sample table.
    """
    return _pipeline(
        group_id,
        sequence_store_id=sequence_store_id,
        manifest=manifest,
        default_file_type=default_file_type,
        default_reference_arn=default_reference_arn,
        part_size=part_size,
        max_tasks=max_tasks,
        max_concurrency=max_concurrency,
        digest_concurrency=digest_concurrency,
        max_digest_tasks=max_digest_tasks,
        pool=pool,
        aws_conn_id=aws_conn_id,
        region_name=region_name,
        source_aws_conn_id=source_aws_conn_id,
        allowed_local_roots=allowed_local_roots,
        allowed_s3_prefixes=allowed_s3_prefixes,
        waiter_delay=waiter_delay,
        waiter_max_attempts=waiter_max_attempts,
        upload_retries=upload_retries,
        service_retries=service_retries,
        summary_csv=summary_csv,
        method=method,
        role_arn=role_arn,
        deferrable=deferrable,
        on_existing=on_existing,
        task_kwargs=task_kwargs,
    )


def _pipeline(
    group_id: str,
    *,
    sequence_store_id: str,
    manifest: str | Sequence[Mapping[str, Any]],
    default_file_type: str | None = None,
    default_reference_arn: str | None = None,
    part_size: int | str,
    max_tasks: int | str | None,
    max_concurrency: int | str,
    digest_concurrency: int | str = 4,
    max_digest_tasks: int | str | None = DEFAULT_DIGEST_TASKS,
    pool: str | None,
    aws_conn_id: str | None,
    region_name: str | None,
    source_aws_conn_id: str | None,
    allowed_local_roots: str | Sequence[str] | None,
    allowed_s3_prefixes: str | Sequence[str] | None,
    waiter_delay: float | str,
    waiter_max_attempts: int,
    upload_retries: int | None,
    service_retries: int | None,
    summary_csv: bool | str = False,
    method: str,
    role_arn: str | None,
    deferrable: bool | None,
    on_existing: str,
    wait_for_active: bool = True,
    verify_upload: bool = True,
    task_kwargs: Mapping[str, Any],
) -> TaskGroup:
    """The one pipeline over a plan of samples, from a manifest or inline: what both task groups build.

    Without ``verify_upload`` there is no digest nor verify; without ``wait_for_active`` either, no wait.
    """
    _check_method(method)
    aws = {"aws_conn_id": aws_conn_id, "region_name": region_name, **task_kwargs}
    path_args: dict[str, Any] = {"method": method, "role_arn": role_arn} if method != "upload" else {}
    sources: dict[str, Any] = {
        "source_aws_conn_id": source_aws_conn_id,
        "allowed_local_roots": allowed_local_roots,
        "allowed_s3_prefixes": allowed_s3_prefixes,
    }
    with TaskGroup(group_id=group_id) as group:
        with_retries = _retries(group, aws)
        service = with_retries(service_retries, DEFAULT_SERVICE_RETRIES)
        plan = OmicsPlanSequencingRunOperator(
            task_id="plan",
            sequence_store_id=sequence_store_id,
            manifest=manifest,
            part_size=part_size,
            max_tasks=max_tasks,
            default_file_type=default_file_type,
            default_reference_arn=default_reference_arn,
            on_existing=on_existing,
            **path_args,
            **sources,
            **aws,
        )
        # XComArgs stand for the values they resolve to at run time.
        planned: Any = XComArg(plan, key=RUN_SAMPLES_KEY)
        digests: Any = None
        if verify_upload:
            # Beside create and the part uploads, from the plan on; weighted above the uploads, so that on a busy
            # deployment a free slot goes to it first: the digest of large FASTQs is what verify waits for.
            # Mapped over batches of sources of about equal bytes (a source is one sequential hash), so that any
            # worker hashes any source; the batches are a task's return value, as Airflow maps only over those.
            digest_batches = OmicsBatchRunDigestsOperator(
                task_id="digest_batches", samples=planned, max_tasks=max_digest_tasks, **task_kwargs
            )
            digest = OmicsDigestRunSourcesOperator.partial(
                task_id="digest",
                sequence_store_id=sequence_store_id,
                samples=planned,
                plan=planned,
                max_concurrency=digest_concurrency,
                map_index_template=DIGEST_MAP_INDEX_TEMPLATE,
                **sources,
                **{"priority_weight": DIGEST_PRIORITY_WEIGHT, **aws},
            ).expand_kwargs(digest_batches.output)
            digests = digest.output
            plan >> digest_batches
        importing = None
        if method != "upload":
            importing = OmicsImportRunReadSetsOperator(
                task_id="import",
                sequence_store_id=sequence_store_id,
                samples=planned,
                plan_task_id=plan.task_id,
                # The create task's id, also when there is none: both paths' read sets carry the same tokens.
                request_task_id=group.child_id("create"),
                waiter_delay=waiter_delay,
                waiter_max_attempts=waiter_max_attempts,
                deferrable=_deferrable(deferrable),
                **service,
            )
            plan >> importing
        summary_args: dict[str, Any] = {
            "task_id": "summary",
            "plan": planned,
            "plan_task_id": plan.task_id,
            "write_csv": summary_csv,
            **sources,
            **aws,
        }
        if method == "import":
            imported: Any = importing.output if importing is not None else None
            outputs: Any = [imported]
            if verify_upload:
                verify = OmicsVerifyRunReadSetsOperator(
                    task_id="verify",
                    sequence_store_id=sequence_store_id,
                    samples=imported,
                    digests=digests,
                    plan=planned,
                    **aws,
                )
                outputs = [verify.output, imported]
            # The XComArgs make verify and import its upstream tasks.
            _show_failures(OmicsSequencingRunSummaryOperator(samples=outputs, **summary_args), task_kwargs)
            return group
        create = OmicsCreateRunUploadsOperator(
            task_id="create",
            sequence_store_id=sequence_store_id,
            samples=planned,
            **({"plan_task_id": plan.task_id} if importing is not None else {}),
            **service,
        )
        created: Any = create.output
        upload = OmicsUploadReadSetPartOperator.partial(
            task_id="upload_parts",
            sequence_store_id=sequence_store_id,
            upload_records=created,
            max_concurrency=max_concurrency,
            map_index_template=RUN_MAP_INDEX_TEMPLATE,
            **({"pool": pool} if pool else {}),
            **sources,
            **with_retries(upload_retries, DEFAULT_UPLOAD_RETRIES),
        ).expand_kwargs(plan.output)
        part_results: Any = upload.output
        complete = OmicsCompleteRunUploadsOperator(
            task_id="complete",
            sequence_store_id=sequence_store_id,
            samples=created,
            parts=part_results,
            plan_task_id=plan.task_id,
            trigger_rule="all_done",
            **service,
        )
        completed: Any = complete.output
        abort = OmicsAbortRunUploadsOperator(
            task_id="abort",
            sequence_store_id=sequence_store_id,
            create_task_id=create.task_id,
            plan_task_id=plan.task_id,
            samples=completed,
            trigger_rule="all_done",
            **service,
        )
        # The steps that ran, latest first: the summary reports from the last one that finished.
        steps: list[Any] = [complete, create]
        outputs = [completed, created]
        after_either: dict[str, Any] = {} if importing is None else {"trigger_rule": "none_failed_min_one_success"}
        if wait_for_active or verify_upload:
            wait = OmicsWaitRunReadSetsOperator(
                task_id="wait_active",
                sequence_store_id=sequence_store_id,
                samples=completed,
                plan=planned,
                waiter_delay=waiter_delay,
                waiter_max_attempts=waiter_max_attempts,
                deferrable=_deferrable(deferrable),
                **aws,
            )
            waited: Any = wait.output
            steps.insert(0, wait)
            outputs.insert(0, waited)
            if importing is not None:
                outputs.insert(1, importing.output)
            if verify_upload:
                waited_or_imported: Any = waited if importing is None else [waited, importing.output]
                verify = OmicsVerifyRunReadSetsOperator(
                    task_id="verify",
                    sequence_store_id=sequence_store_id,
                    # With method="auto", from whichever path ran (the other's output is empty: it skipped).
                    samples=waited_or_imported,
                    digests=digests,
                    plan=planned,
                    **after_either,
                    **aws,
                )
                steps.insert(0, verify)
                outputs.insert(0, verify.output)
        elif importing is not None:
            outputs.insert(0, importing.output)
        # A step that failed as a whole (not one sample) leaves the summary upstream_failed, which fails the run;
        # per-sample failures reach it as data and it fails naming them.
        summary = OmicsSequencingRunSummaryOperator(
            samples=outputs,
            # A skipped path (method="auto") does not skip the summary; a failed step still fails it.
            trigger_rule="none_failed",
            **summary_args,
        )
        plan >> create
        [create, complete] >> abort
        steps >> summary
        if importing is not None:
            importing >> summary
            if verify_upload:
                importing >> steps[0]
        _show_failures(summary, task_kwargs)
    return group
