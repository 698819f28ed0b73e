"""Operators of a sequencing run: many read sets from one manifest in one DAG run, under one task budget; one
read set (``upload_read_set``) is a run of one sample.

Each per-sample step is one task that loops over the run's samples (plan, create, digest, complete, wait, verify,
summary) and calls one step of :mod:`airflow_provider_omics.readsets`; only the byte-moving work is mapped, as
:class:`~airflow_provider_omics.operators.omics.OmicsUploadReadSetPartOperator` tasks over one flat list of part
batches shared by all samples.

A sample that fails fails alone: every step returns the run's samples (sample key ->
:class:`~airflow_provider_omics.utils.payloads.RunSample`) with the failed ones marked, the next steps carry on
with the others, and the summary fails the run naming the failed samples; beside it, one task per failed sample
(``failures``, then ``failed_sample`` mapped over them) shows each in the grid, named by the sample and the step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    BaseOperator,
    conf,
)

from airflow_provider_omics.hooks.omics import OmicsHook
from airflow_provider_omics.links.omics import OmicsReadSetLink
from airflow_provider_omics.operators.base import (
    StagedSourceOperator,
    defer_while_pending,
    defer_while_running,
    persist_read_set_link,
    resumed_import,
)
from airflow_provider_omics.readsets import identity
from airflow_provider_omics.readsets.announce import announce_read_sets, claim_announcements, with_read_sets_alias
from airflow_provider_omics.readsets.imports import (
    IMPORT_JOBS_KEY,
    METHOD_KEY,
    choose_method,
    chosen_method,
)
from airflow_provider_omics.readsets.request import check_store
from airflow_provider_omics.readsets.run import (
    DIGESTED_STATUSES,
    abort_samples,
    complete_samples,
    create_samples,
    digest_samples,
    fail_sample,
    failure_message,
    first_line,
    import_samples,
    pack_run_digests,
    plan_samples,
    reported_samples,
    run_failures,
    run_so_far,
    summary_table,
    summary_text,
    verify_samples,
    wait_until_active,
    write_summary,
)
from airflow_provider_omics.staging.manifests import validate_manifest
from airflow_provider_omics.staging.sources import allow_lists
from airflow_provider_omics.utils.errors import service_errors
from airflow_provider_omics.utils.inputs import as_bool, as_float, as_int, check_store_id, task_budget
from airflow_provider_omics.utils.parts import MAX_PART_SIZE, PartPlanError
from airflow_provider_omics.utils.payloads import (
    UPLOAD_RECORD_KEY,
    RunSample,
    UploadRecord,
    run_samples,
    run_states,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

# The XCom key under which the plan task pushes the run's samples (its return value is the list of part batches).
RUN_SAMPLES_KEY = "samples"
# The XCom key under which the plan task pushes where the manifest was read (the summary's CSV goes next to it).
RUN_MANIFEST_KEY = "manifest"
# Where each step of a run leaves the run so far (:func:`~airflow_provider_omics.readsets.run.run_so_far`), for a
# user to read in the task's XCom before the summary.
RUN_SO_FAR_KEY = "run_so_far"


class OmicsPlanSequencingRunOperator(StagedSourceOperator):
    """
    Plan a sequencing run: validate the whole manifest, look at every staged source, skip the samples already in
    the store, and cut all parts into at most ``max_tasks`` batches.

    Nothing exists on the service before this succeeds: a manifest with problems fails with one message listing
    every row at fault (:func:`~airflow_provider_omics.staging.manifests.validate_manifest`). A sample whose read set
    is already stored from the same staged files and verified (see :func:`resolve_stored`) is planned as ``stored``:
    nothing of it is uploaded; one stored from them but never verified is verified (and announced) before it counts.

    Returns the part batches (``[{"segments": [...]}, ...]``, one per mapped
    :class:`~airflow_provider_omics.operators.omics.OmicsUploadReadSetPartOperator`) and pushes the run's samples
    under the XCom key ``samples``.

    :param sequence_store_id: the destination sequence store's id. (templated)
    :param manifest: the manifest's local path, ``file://`` or ``s3://`` URI (CSV or JSON); or its read sets
        inline, in the JSON manifest's shape (:func:`~airflow_provider_omics.staging.manifests.inline_manifest`).
        (templated)
    :param part_size: bytes per part, at most 100 MiB. (templated)
    :param max_tasks: the run's budget of mapped upload tasks (default and ceiling: ``[core] max_map_length``).
        (templated)
    :param default_file_type: fills the manifest's empty file type cells. (templated)
    :param default_reference_arn: fills the empty reference cells of BAM and CRAM rows. (templated)
    :param source_aws_conn_id: connection that reads ``s3://`` sources and manifests. (templated)
    :param allowed_local_roots: narrows ``[omics] allowed_local_roots``.
    :param allowed_s3_prefixes: narrows ``[omics] allowed_s3_prefixes``.
    :param method: ``upload``, ``import`` or ``auto``: also choose how the run's read sets get into the store
        (:func:`~airflow_provider_omics.readsets.imports.choose_method`, over every source of the
        manifest), log why, and push the choice under the XCom key ``method``; when it is import, no parts are
        planned. (templated)
    :param role_arn: the import role for ``method`` import or auto; default: ``omics_import_role_arn`` in the
        connection's extra. (templated)
    :param on_existing: what to do with a sample whose read set the store holds from other content (another
        tool's, or files staged before): ``fail`` (the default: a FASTQ read set whose ETags equal the staged
        files' digests counts, verify proves it; anything else fails the sample, naming the read set), ``skip``
        (keep it, unverified) or ``new`` (store the staged files as another read set). See :func:`resolve_stored`.
        (templated)
    """

    template_fields: Sequence[str] = aws_template_fields(
        "sequence_store_id",
        "manifest",
        "part_size",
        "max_tasks",
        "default_file_type",
        "default_reference_arn",
        "source_aws_conn_id",
        "method",
        "role_arn",
        "on_existing",
    )
    ui_color = "#d7e8f7"

    def __init__(
        self,
        *,
        sequence_store_id: str,
        manifest: str | Sequence[Mapping[str, Any]],
        part_size: int | str = MAX_PART_SIZE,
        max_tasks: int | str | None = None,
        default_file_type: str | None = None,
        default_reference_arn: str | None = None,
        source_aws_conn_id: str | None = None,
        allowed_local_roots: str | Sequence[str] | None = None,
        allowed_s3_prefixes: str | Sequence[str] | None = None,
        method: str | None = None,
        role_arn: str | None = None,
        on_existing: str = "fail",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.on_existing = on_existing
        self.sequence_store_id = sequence_store_id
        self.manifest = manifest
        self.part_size = part_size
        self.max_tasks = max_tasks
        self.default_file_type = default_file_type
        self.default_reference_arn = default_reference_arn
        self.source_aws_conn_id = source_aws_conn_id
        self.allowed_local_roots = allowed_local_roots
        self.allowed_s3_prefixes = allowed_s3_prefixes
        self.method = method
        self.role_arn = role_arn

    def execute(self, context: Context) -> list[dict[str, Any]]:
        store_id = check_store_id(self.sequence_store_id)
        on_existing = identity.check_on_existing(self.on_existing)
        max_tasks = task_budget(self.max_tasks)
        manifest, planned = validate_manifest(
            self.manifest,
            source_factory=self.hook.staged_source,
            allowed_local_roots=self.allowed_local_roots,
            allowed_s3_prefixes=self.allowed_s3_prefixes,
            part_size=self.part_size,
            default_file_type=self.default_file_type or None,
            default_reference_arn=self.default_reference_arn or None,
        )
        choice = None
        if self.method is not None:
            uris = [uri for p in planned for uri in p.row.sources]
            choice = choose_method(self.method, uris, self.role_arn, self.hook, self.aws_conn_id, self.log)
        upload = choice is None or choice["method"] != "import"
        samples, batches = plan_samples(
            self.hook, store_id, planned, on_existing, max_tasks, upload, self.aws_conn_id, self.log, manifest.uri
        )
        if choice is not None:
            context["ti"].xcom_push(key=METHOD_KEY, value=choice)
        context["ti"].xcom_push(key=RUN_SAMPLES_KEY, value={s.key: s.to_dict() for s in samples})
        context["ti"].xcom_push(
            key=RUN_MANIFEST_KEY, value={"uri": manifest.uri, "location": manifest.location, "format": manifest.format}
        )
        return [{"segments": batch} for batch in batches]


def skip_unless_upload(ti: Any, plan_task_id: str | None) -> None:
    """Skip a step of the direct upload path when the plan chose an import job."""
    if plan_task_id and chosen_method(ti, plan_task_id) != "upload":
        raise AirflowSkipException(f"{plan_task_id} chose an import job: this step of the direct upload is skipped.")


class _RunStepOperator(AwsBaseOperator[OmicsHook]):
    """A step of a sequencing run: takes the run's samples from the step before and returns them updated."""

    aws_hook_class = OmicsHook

    def failed(self, sample: RunSample, step: str, reason: str) -> None:
        fail_sample(sample, step, reason, self.log)

    deferrable: bool = False

    def report(self, context: Context, samples: Mapping[str, RunSample]) -> dict[str, Any]:
        """What the step returns (the samples' states), once it has logged the run so far and pushed it under the
        XCom key ``run_so_far``, where a user sees each sample's outcome before the run's summary."""
        so_far = run_so_far(samples, self.task_id.rsplit(".", 1)[-1])
        self.log.info("Run so far, %s", so_far["totals"])
        context["ti"].xcom_push(key=RUN_SO_FAR_KEY, value=so_far)
        return run_states(samples)

    def link_one_read_set(self, context: Context, store_id: str, samples: Mapping[str, RunSample]) -> None:
        """A run of one read set (``upload_read_set``) links the task to it in the HealthOmics console."""
        if len(samples) == 1:
            [sample] = samples.values()
            if sample.read_set_id:
                persist_read_set_link(context, self, store_id, sample.read_set_id)

    def wait_active(self, store_id: str, samples: Mapping[str, RunSample], delay: float, attempts: int) -> None:
        """Wait until the samples' read sets are ACTIVE or failed: here, or, when deferrable, after one look (a read
        set is often ACTIVE by the time the task starts) in the triggerer, resuming in ``execute_complete``."""
        if not self.deferrable:
            wait_until_active(self.hook, store_id, samples, delay, attempts, self.aws_conn_id, self.log)
            return
        pending = wait_until_active(
            self.hook, store_id, samples, delay, 1, self.aws_conn_id, self.log, fail_pending=False
        )
        defer_while_pending(self, store_id, pending, delay, attempts)


class OmicsCreateRunUploadsOperator(_RunStepOperator):
    """
    Start the upload of every sample of a run that is not in the store yet
    (:func:`~airflow_provider_omics.readsets.run.create_samples`): each under its request token (the sample's
    request and sources), reusing a read set an earlier attempt stored, recovering a create whose answer was lost.

    A sample the service refuses for good (a permanent error) fails alone; a transient error fails the task after
    the other samples, and its retry finds what was created by the tokens. Pushes ``{sample: UploadRecord}``
    under the XCom key ``upload`` every ``RECORDS_PUSH_INTERVAL`` seconds and when it ends (the abort step reads
    it, and finds the uploads of records it missed by the tokens it derives from the plan) and returns the run's
    samples.

    :param sequence_store_id: the destination sequence store's id. (templated)
    :param samples: the plan's samples (``XComArg(plan, key="samples")``). (templated)
    :param plan_task_id: the plan task that chose the path (``method``): when it chose import, this task skips
        (and with it the upload path); when it chose upload, a sample whose import job (of an earlier try) is
        still running fails instead of being stored twice.
    """

    template_fields: Sequence[str] = aws_template_fields("sequence_store_id", "samples")
    ui_color = "#d7e8f7"

    def __init__(
        self, *, sequence_store_id: str, samples: Mapping[str, Any], plan_task_id: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.sequence_store_id = sequence_store_id
        self.samples = samples
        self.plan_task_id = plan_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        records: dict[str, Any] = {}
        # Something under the key at once: the abort step reads it even when this task fails early.
        ti.xcom_push(key=UPLOAD_RECORD_KEY, value=records)
        skip_unless_upload(ti, self.plan_task_id)
        store_id = check_store_id(self.sequence_store_id)
        check_store(self.hook, store_id, self.aws_conn_id)
        samples = run_samples(self.samples)
        in_flight = None
        if self.plan_task_id:
            with service_errors("ListReadSetImportJobs", self.aws_conn_id):
                in_flight = self.hook.imports_in_flight(store_id)
        try:
            create_samples(
                self.hook,
                samples,
                store_id,
                records,
                lambda: ti.xcom_push(key=UPLOAD_RECORD_KEY, value=records),
                in_flight,
                self.aws_conn_id,
                self.log,
            )
            return self.report(context, samples)
        finally:
            ti.xcom_push(key=UPLOAD_RECORD_KEY, value=records)


class OmicsCompleteRunUploadsOperator(_RunStepOperator):
    """
    Complete the upload of every sample whose parts all arrived; abort and report the others.

    Meant to run with ``trigger_rule="all_done"``: it sees the part tasks that failed. A sample is completed
    (or its read set found, exactly as for one read set) only when every one of its planned parts is in the part
    tasks' results and none of its segments failed; the parts of a task that failed are not trusted (its source
    may have changed after some were sent), so its samples are aborted, not reconciled from the service.

    :param sequence_store_id: the sequence store's id. (templated)
    :param samples: the create task's output. (templated)
    :param parts: the mapped part tasks' output (``upload.output``). (templated)
    :param plan: the plan's samples (``XComArg(plan, key="samples")``): the rows and sources of the samples,
        which the steps' outputs do not repeat. (templated)
    :param plan_task_id: instead of ``plan``, the plan task whose samples to read; unlike an XComArg this also
        works when the plan failed (then there is nothing to complete).
    """

    template_fields: Sequence[str] = aws_template_fields("sequence_store_id", "samples", "parts", "plan")
    # A run of one read set (upload_read_set) links to it.
    operator_extra_links = (OmicsReadSetLink(),)
    ui_color = "#d7e8f7"

    def __init__(
        self,
        *,
        sequence_store_id: str,
        samples: Mapping[str, Any] | None,
        parts: Any = None,
        plan: Mapping[str, Any] | None = None,
        plan_task_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sequence_store_id = sequence_store_id
        self.samples = samples
        self.parts = parts
        self.plan = plan
        self.plan_task_id = plan_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        plan = self.plan
        if self.plan_task_id:
            skip_unless_upload(context["ti"], self.plan_task_id)
            plan = context["ti"].xcom_pull(task_ids=self.plan_task_id, key=RUN_SAMPLES_KEY)
        if self.samples is None:
            if not plan:
                raise AirflowSkipException("The plan did not finish: nothing to complete.")
            # Never a green run without its read sets: the abort step aborts whatever create started.
            raise AirflowFailException("The create task reported no uploads: nothing can be completed.")
        samples = run_samples(self.samples, plan)
        complete_samples(self.hook, samples, self.parts, self.aws_conn_id, self.log)
        self.link_one_read_set(context, self.sequence_store_id, samples)
        return self.report(context, samples)


class OmicsWaitRunReadSetsOperator(_RunStepOperator):
    """
    Wait until every completed read set of a run is ACTIVE.

    A read set that becomes UPLOAD_FAILED (or is deleted) fails its sample with the service's ``statusMessage``;
    the others carry on. Waits at most ``waiter_delay * waiter_max_attempts`` seconds, then fails (retryable).
    The read sets are looked at together, many per call (ListReadSets of those created after the earliest one).

    :param sequence_store_id: the sequence store's id. (templated)
    :param samples: the complete task's output. (templated)
    :param waiter_delay: seconds between two rounds. (templated; default: 10)
    :param waiter_max_attempts: rounds at most. (templated; default: 360)
    :param plan: the plan's samples (``XComArg(plan, key="samples")``): the rows and sources of the samples,
        which the steps' outputs do not repeat. (templated)
    :param deferrable: after one look, wait in the triggerer (:class:`~airflow_provider_omics.triggers.omics.
        OmicsReadSetActiveTrigger` over the read sets still on their way) instead of holding a worker slot; the
        resumed task looks once more and decides. (default: ``[operators] default_deferrable``)
    """

    template_fields: Sequence[str] = aws_template_fields(
        "sequence_store_id", "samples", "plan", "waiter_delay", "waiter_max_attempts"
    )
    ui_color = "#66c3ff"

    def __init__(
        self,
        *,
        sequence_store_id: str,
        samples: Mapping[str, Any] | None,
        waiter_delay: float | str = 10,
        waiter_max_attempts: int | str = 360,
        plan: Mapping[str, Any] | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sequence_store_id = sequence_store_id
        self.samples = samples
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self.plan = plan
        self.deferrable = deferrable

    def execute(self, context: Context) -> dict[str, Any]:
        samples = run_samples(self.samples, self.plan)
        delay = as_float("waiter_delay", self.waiter_delay)
        attempts = as_int("waiter_max_attempts", self.waiter_max_attempts)
        store_id = check_store_id(self.sequence_store_id)
        self.wait_active(store_id, samples, delay, attempts)
        return self.report(context, samples)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """After the triggerer's wait: look once more (the event's statuses may be a moment old) and decide."""
        validated = validate_execute_complete_event(event)
        samples = run_samples(self.samples, self.plan)
        pending = wait_until_active(
            self.hook,
            check_store_id(self.sequence_store_id),
            samples,
            0,
            1,
            self.aws_conn_id,
            self.log,
            fail_pending=False,
        )
        if pending:
            raise AirflowException(
                f"Read sets still not ACTIVE: {', '.join(sorted(pending))} ({validated.get('message') or 'no message'})"
            )
        return self.report(context, samples)


class OmicsImportRunReadSetsOperator(_RunStepOperator):
    """
    The import path of a sequencing run (``upload_sequencing_run(method="import" | "auto")``): import every
    sample of the plan that is not in the store yet with StartReadSetImportJob (at most 100 per job), wait for
    the jobs and for the read sets to be ACTIVE, and return the run's samples as the wait step does, so that
    verify and summary carry on as after a direct upload.

    Each sample carries the request token its direct upload would carry (the run's create task, see
    :func:`sample_request`), so a retry, a cleared task, or the other path finds its read set or its running
    job instead of storing it again (:func:`~airflow_provider_omics.readsets.imports.run_imports`). A
    source the job could not import (FAILED, or its read set UPLOAD_FAILED) fails its sample alone with the
    service's message. Skips when the plan chose a direct upload.

    :param sequence_store_id: the destination sequence store's id. (templated)
    :param samples: the plan's samples (``XComArg(plan, key="samples")``). (templated)
    :param plan_task_id: the plan task, whose ``method`` XCom says the path and the import role.
    :param request_task_id: the task id in the samples' request tokens: the run's create task (also when the
        group has none), so that both paths share the tokens.
    :param waiter_delay: seconds between two looks at the jobs and the read sets. (templated; default: 10)
    :param waiter_max_attempts: looks at most. (templated; default: 720)
    :param deferrable: wait for the jobs in the triggerer (:class:`~airflow_provider_omics.triggers.omics.
        OmicsReadSetImportJobCompleteTrigger`), one job after the other; the resumed task takes each sample
        from the jobs it waited for. (default: ``[operators] default_deferrable``)
    """

    template_fields: Sequence[str] = aws_template_fields(
        "sequence_store_id", "samples", "waiter_delay", "waiter_max_attempts"
    )
    ui_color = "#c9e2f5"

    def __init__(
        self,
        *,
        sequence_store_id: str,
        samples: Mapping[str, Any],
        plan_task_id: str,
        request_task_id: str,
        waiter_delay: float | str = 10,
        waiter_max_attempts: int | str = 720,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable
        self.sequence_store_id = sequence_store_id
        self.samples = samples
        self.plan_task_id = plan_task_id
        self.request_task_id = request_task_id
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    def execute(self, context: Context, known_jobs: Sequence[str] = ()) -> dict[str, Any]:
        ti = context["ti"]
        choice = ti.xcom_pull(task_ids=self.plan_task_id, key=METHOD_KEY) or {}
        if choice.get("method") != "import":
            raise AirflowSkipException(f"{self.plan_task_id} chose a direct upload: nothing to import.")
        store_id = check_store_id(self.sequence_store_id)
        delay = as_float("waiter_delay", self.waiter_delay)
        attempts = as_int("waiter_max_attempts", self.waiter_max_attempts)
        samples = run_samples(self.samples)
        import_samples(
            self.hook,
            samples,
            store_id,
            str(choice["role_arn"]),
            self.aws_conn_id,
            self.log,
            waiter_delay=delay,
            waiter_max_attempts=attempts,
            on_jobs=lambda job_ids: ti.xcom_push(key=IMPORT_JOBS_KEY, value=job_ids),
            known_jobs=known_jobs,
            before_wait=(
                (lambda job_ids: defer_while_running(self, store_id, job_ids, delay, attempts))
                if self.deferrable
                else None
            ),
        )
        self.wait_active(store_id, samples, delay, attempts)
        return self.report(context, samples)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Carry on after the triggerer's wait (for a job, or for the imported read sets): the same steps, the jobs
        taken from this try's XCom."""
        return self.execute(context, known_jobs=resumed_import(self, context, event))


class OmicsBatchRunDigestsOperator(BaseOperator):
    """
    Cut the run's FASTQ sources to digest into at most ``max_tasks`` batches of about equal bytes
    (:func:`~airflow_provider_omics.readsets.run.pack_run_digests`): the keyword arguments of the mapped digest
    tasks, ``[{"digest_sources": [[sample key, part source], ...]}, ...]``, one at least (empty when nothing is to
    be digested, so that the digest step and verify after it run). It reads only the plan's XCom: no service call.

    :param samples: the plan's samples (``XComArg(plan, key="samples")``). (templated)
    :param max_tasks: at most this many digest tasks (never above ``[core] max_map_length``). (templated)
    """

    template_fields: Sequence[str] = ("samples", "max_tasks")
    ui_color = "#e8f0d7"

    def __init__(self, *, samples: Mapping[str, Any], max_tasks: int | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.samples = samples
        self.max_tasks = max_tasks

    def execute(self, context: Context) -> list[dict[str, Any]]:
        samples = list(run_samples(self.samples).values())
        try:
            batches = pack_run_digests(samples, task_budget(self.max_tasks))
        except PartPlanError as err:
            raise AirflowFailException(str(err)) from None
        sizes = {(s.key, part_source): int(p["size"]) for s in samples for part_source, p in s.sources.items()}
        loads = [sum(sizes[(key, part_source)] for key, part_source in batch) for batch in batches]
        self.log.info(
            "%d source(s) to digest in %d task(s) (budget %s), %.1f to %.1f MB staged each",
            sum(len(batch) for batch in batches),
            len(batches),
            self.max_tasks,
            min(loads) / 1e6,
            max(loads) / 1e6,
        )
        return [{"digest_sources": batch} for batch in batches]


class OmicsDigestRunSourcesOperator(StagedSourceOperator):
    """
    Digest staged FASTQ sources of a run in the store's ETag algorithm, ``max_concurrency`` sources at once. It
    needs only the plan, so it runs beside create and the part uploads (``upload_sequencing_run`` maps it over the
    batches of :class:`OmicsBatchRunDigestsOperator`, weighted above the uploads, so that any worker hashes any
    source and a run's digest time falls as workers are added).

    Each source is read pinned to the plan's fingerprint, under the same allow-lists as the part uploads
    (:func:`~airflow_provider_omics.readsets.verify.digest_source`). A source that cannot be digested (changed, removed,
    not FASTQ) is reported for its sample alone. Returns ``{"digests": {sample: DigestResult}, "failed": {sample:
    reason}}`` with the sources it digested (verify joins the mapped tasks' outputs); samples already in the store
    are not digested. Given the plan's samples (as ``upload_sequencing_run`` does, so that it starts beside create),
    it also digests a sample that create then refuses; verify ignores that digest.

    :param sequence_store_id: the sequence store's id, whose ``eTagAlgorithmFamily`` is used. (templated)
    :param samples: the plan's samples (``XComArg(plan, key="samples")``), or the create task's output.
        (templated)
    :param digest_sources: the ``[sample key, part source]`` pairs to digest (one batch); all the FASTQ sources of
        ``samples`` when not given. (templated)
    :param max_concurrency: sources digested at once. (templated)
    :param plan: the plan's samples (``XComArg(plan, key="samples")``): the rows and sources of the samples,
        which the steps' outputs do not repeat. (templated)
    """

    template_fields: Sequence[str] = aws_template_fields(
        "sequence_store_id", "samples", "digest_sources", "max_concurrency", "source_aws_conn_id", "plan"
    )
    ui_color = "#e8f0d7"

    def __init__(
        self,
        *,
        sequence_store_id: str,
        samples: Mapping[str, Any],
        digest_sources: Sequence[Sequence[str]] | None = None,
        max_concurrency: int | str = 4,
        source_aws_conn_id: str | None = None,
        allowed_local_roots: str | Sequence[str] | None = None,
        allowed_s3_prefixes: str | Sequence[str] | None = None,
        plan: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sequence_store_id = sequence_store_id
        self.samples = samples
        self.digest_sources = digest_sources
        self.max_concurrency = max_concurrency
        self.source_aws_conn_id = source_aws_conn_id
        self.allowed_local_roots = allowed_local_roots
        self.allowed_s3_prefixes = allowed_s3_prefixes
        self.plan = plan

    def execute(self, context: Context) -> dict[str, Any]:
        samples = {key: s for key, s in run_samples(self.samples, self.plan).items() if s.status in DIGESTED_STATUSES}
        if self.digest_sources is not None and not self.digest_sources:
            self.log.info("No FASTQ source of the run is to be digested.")
            return {"digests": {}, "failed": {}}
        store = check_store(self.hook, check_store_id(self.sequence_store_id), self.aws_conn_id)
        family = store.get("eTagAlgorithmFamily") or "MD5up"
        roots, prefixes = allow_lists(self.allowed_local_roots, self.allowed_s3_prefixes)
        workers = as_int("max_concurrency", self.max_concurrency)
        return digest_samples(self.hook, samples, family, roots, prefixes, workers, self.log, self.digest_sources)


class OmicsVerifyRunReadSetsOperator(_RunStepOperator):
    """
    Verify every ACTIVE read set of a run against its staged data (:func:`~airflow_provider_omics.readsets.verify.
    verify_read_set`): the stored size of each source, and for FASTQ the ETags against the digests. A mismatch
    fails that sample alone.

    :param sequence_store_id: the sequence store's id. (templated)
    :param samples: the wait task's output, or the import task's; with ``method="auto"`` both, as a list (the
        path that skipped gives nothing). (templated)
    :param digests: the digest task's output. (templated)
    :param plan: the plan's samples (``XComArg(plan, key="samples")``): the rows and sources of the samples,
        which the steps' outputs do not repeat. (templated)
    :param emit_asset_event: emit an asset event on the store's asset listing the read sets verified
        (:mod:`airflow_provider_omics.assets.omics`), so that DAGs scheduled on the store run. (default: True)
    """

    template_fields: Sequence[str] = aws_template_fields("sequence_store_id", "samples", "digests", "plan")
    # A run of one read set (upload_read_set) links to it.
    operator_extra_links = (OmicsReadSetLink(),)
    ui_color = "#e8f0d7"

    def __init__(
        self,
        *,
        sequence_store_id: str,
        samples: Mapping[str, Any] | None,
        digests: Any = None,
        emit_asset_event: bool = True,
        plan: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**with_read_sets_alias(kwargs, emit_asset_event))
        self.sequence_store_id = sequence_store_id
        self.samples = samples
        self.digests = digests
        self.plan = plan

    def execute(self, context: Context) -> dict[str, Any]:
        states = self.samples
        if isinstance(states, list | tuple):
            # The outputs of the two paths of method="auto": the one that ran.
            states = next((output for output in states if output), None)
        if not states:
            raise AirflowSkipException("No step before verify returned the run's samples: nothing to verify.")
        samples = run_samples(states, self.plan)
        announced = verify_samples(self.hook, self.sequence_store_id, samples, self.digests, self.log)
        # Each read set once: one verified and announced before (another run's, an earlier try's) is not again.
        announce_read_sets(context, self, self.sequence_store_id, claim_announcements(self.hook, announced, self.log))
        self.link_one_read_set(context, self.sequence_store_id, samples)
        return self.report(context, samples)


class OmicsSequencingRunSummaryOperator(StagedSourceOperator):
    """
    Log and return the run's table: per sample its read set id, status, whether it was verified, the bytes
    staged, the seconds from its create to its end, and why it failed or was skipped. Fails the run naming every
    failed sample. With ``write_csv``, also writes the table as CSV next to the manifest (see
    :func:`summary_location`), before it fails.

    It reports from the last step that finished (``samples`` is a list of the steps' outputs, latest first), so
    that it can also run with ``trigger_rule="all_done"``; when no step after the plan finished it skips.

    :param samples: the outputs of verify, wait, complete and create, latest first. (templated)
    :param plan: the plan's samples (``XComArg(plan, key="samples")``): the rows and sources of the samples,
        which the steps' outputs do not repeat. (templated)
    :param manifest: where the plan read the manifest (``XComArg(plan, key="manifest")``). (templated)
    :param plan_task_id: instead of ``manifest``, the plan task whose manifest location to read; unlike an
        XComArg this also works when the plan did not push one (a plan run by an earlier version of the provider):
        then no CSV is written.
    :param write_csv: write the table as CSV next to the manifest (a local directory, or the manifest's S3
        prefix through ``source_aws_conn_id``), judged where it is written: within the allow-lists, outside the
        never-read locations, never through a symlink (:meth:`~airflow_provider_omics.hooks.omics.OmicsHook.
        write_next_to_manifest`); text cells a spreadsheet would run as a formula are escaped
        (:func:`summary_csv`). A CSV that cannot be written is logged with why, not failed: the read sets are
        what the run is for. (templated)
    :param source_aws_conn_id: connection that writes next to an ``s3://`` manifest. (templated)
    :param allowed_local_roots: where a local CSV may be written; narrows ``[omics] allowed_local_roots``.
    :param allowed_s3_prefixes: where an S3 CSV may be written; narrows ``[omics] allowed_s3_prefixes``.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "samples", "plan", "manifest", "write_csv", "source_aws_conn_id"
    )
    ui_color = "#f0f0d7"

    def __init__(
        self,
        *,
        samples: Sequence[Any],
        plan: Mapping[str, Any] | None = None,
        manifest: Mapping[str, Any] | None = None,
        write_csv: bool | str = False,
        source_aws_conn_id: str | None = None,
        plan_task_id: str | None = None,
        allowed_local_roots: str | Sequence[str] | None = None,
        allowed_s3_prefixes: str | Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.samples = samples
        self.plan = plan
        self.manifest = manifest
        self.plan_task_id = plan_task_id
        self.write_csv = write_csv
        self.source_aws_conn_id = source_aws_conn_id
        self.allowed_local_roots = allowed_local_roots
        self.allowed_s3_prefixes = allowed_s3_prefixes

    def execute(self, context: Context) -> list[dict[str, Any]]:
        samples = reported_samples(self.samples, self.plan)
        if samples is None:
            raise AirflowSkipException("No step of the run finished after the plan: nothing to report.")
        table = summary_table(samples)
        self.log.info("Sequencing run summary:\n%s", summary_text(table))
        if as_bool("write_csv", self.write_csv):
            if self.plan_task_id and not self.manifest:
                self.manifest = context["ti"].xcom_pull(task_ids=self.plan_task_id, key=RUN_MANIFEST_KEY)
            self.write_table(table, context["ti"].run_id, context["ti"].dag_id)
        failed = [s for s in samples.values() if s.status == "failed"]
        if failed:
            where = ", ".join(f"{s.key.split('/')[0]} at {s.failed_step or 'run'}" for s in failed)
            raise AirflowFailException(
                "\n".join(
                    [first_line(f"{len(failed)} of {len(samples)} sample(s) failed: {where}")]
                    + [f"  {s.key} failed at {s.failed_step or 'run'}: {s.reason}" for s in failed]
                )
            )
        return table

    def write_table(self, table: Sequence[Mapping[str, Any]], run_id: str, dag_id: str) -> str | None:
        """Write ``table`` as CSV next to the manifest (:func:`~airflow_provider_omics.readsets.run.write_summary`)."""
        return write_summary(
            self.hook,
            self.manifest,
            table,
            run_id,
            dag_id,
            self.allowed_local_roots,
            self.allowed_s3_prefixes,
            self.log,
        )


class OmicsRunFailuresOperator(BaseOperator):
    """
    Return the run's failed samples, as the summary reports them, as one mapped task's arguments each
    (``{"failure": {"sample", "step", "reason"}}``, at most ten), so that :class:`OmicsRunSampleFailedOperator`,
    mapped over them, shows each failed sample in the grid as a failed task named by the sample and the step.
    When no sample failed it returns one entry without a failure: the mapped task then succeeds, saying so, rather
    than skipping (a skipped last task would skip whatever a DAG puts after the task group).

    It sits beside the summary, with the summary's upstream tasks and trigger rule, not after it: the summary
    stays a last task of the group, so a step that failed as a whole still fails the DAG run.

    :param samples: the outputs of the steps, latest first, as for the summary. (templated)
    :param plan: the plan's samples. (templated)
    """

    template_fields: Sequence[str] = ("samples", "plan")
    ui_color = "#f0f0d7"

    def __init__(self, *, samples: Sequence[Any], plan: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.samples = samples
        self.plan = plan

    def execute(self, context: Context) -> list[dict[str, Any]]:
        samples = reported_samples(self.samples, self.plan)
        if samples is None:
            raise AirflowSkipException("No step of the run finished after the plan: nothing to report.")
        failures = run_failures(samples)
        if not failures:
            self.log.info("None of the run's %d sample(s) failed.", len(samples))
            return [{"failure": None}]
        for failure in failures:
            self.log.info("%s failed at %s", failure["sample"], failure["step"])
        return [{"failure": failure} for failure in failures]


class OmicsRunSampleFailedOperator(BaseOperator):
    """
    One failed sample of a run, as a task that fails with its step and reason (the first line under 100
    characters, the whole reason after it); mapped over :class:`OmicsRunFailuresOperator`'s output, and named in
    the grid by :data:`~airflow_provider_omics.task_groups.FAILURE_MAP_INDEX_TEMPLATE` ("S5 failed at
    wait_active"). Without a failure (no sample failed) it succeeds. It fails without retrying: it reports, and a
    second try could not change what it reports; clear the step that failed, or trigger the run again (which
    resumes), instead.

    :param failure: ``{"sample", "step", "reason"}`` and, on the last of at most ten such tasks, ``more``: the
        other failed samples' keys.
    """

    ui_color = "#f4a460"

    def __init__(self, *, failure: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failure = failure

    def execute(self, context: Context) -> None:
        if not self.failure:
            self.log.info("No sample of the run failed.")
            return
        raise AirflowFailException(failure_message(self.failure))


class OmicsAbortRunUploadsOperator(_RunStepOperator):
    """
    Abort every upload of a run that did not complete, so that no orphaned upload is left behind, by upload id
    and by request token, so a create whose answer was lost is covered too
    (:func:`~airflow_provider_omics.readsets.run.abort_samples`).

    The uploads in progress are listed once. An upload is aborted when it carries the request token of a sample
    that did not complete: the tokens of create's records, and, with ``plan_task_id``, the token of every planned
    sample derived as create derives it (:func:`sample_request`), so that an upload is found even when create's
    records are gone (a retry of create that died before it pushed them again). So is every upload this provider
    left in progress for one of the plan's samples under another token (files staged before the current ones:
    an earlier try's, whose abort was refused), whatever the sample's outcome.

    Meant to run last with ``trigger_rule="all_done"`` rather than as a teardown: Airflow lets only all_success
    tasks follow a setup, and complete must see the part tasks that failed.

    :param sequence_store_id: the sequence store's id. (templated)
    :param upload_records: the create task's records (``XComArg(create, key="upload")``). (templated)
    :param create_task_id: instead of ``upload_records``, the create task whose records to read; unlike an
        XComArg this also works when create never ran (the plan failed): then nothing is aborted. Required for
        the tokens derived from ``plan``.
    :param samples: the complete task's output: samples it completed are not aborted. (templated)
    :param plan_task_id: the plan task whose samples' tokens to derive (see above).
    """

    template_fields: Sequence[str] = aws_template_fields("sequence_store_id", "upload_records", "samples")
    ui_color = "#f7d7d7"

    def __init__(
        self,
        *,
        sequence_store_id: str,
        upload_records: Mapping[str, Any] | None = None,
        create_task_id: str | None = None,
        samples: Mapping[str, Any] | None = None,
        plan_task_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sequence_store_id = sequence_store_id
        self.upload_records = upload_records
        self.create_task_id = create_task_id
        self.samples = samples
        self.plan_task_id = plan_task_id

    def execute(self, context: Context) -> list[str]:
        ti = context["ti"]
        # Also when the plan chose an import job: an upload an earlier try of this run left in progress (it chose
        # a direct upload then) is found by its token and aborted, and the import refuses that sample meanwhile.
        store_id = check_store_id(self.sequence_store_id)
        completed = {
            key: state["read_set_id"]
            for key, state in (self.samples or {}).items()
            if state.get("read_set_id") and state.get("status") != "failed"
        }
        records = {
            key: record
            for key, data in (
                (ti.xcom_pull(task_ids=self.create_task_id, key=UPLOAD_RECORD_KEY) if self.create_task_id else None)
                or self.upload_records
                or {}
            ).items()
            if (record := UploadRecord.from_dict(data)) is not None
        }
        plan = ti.xcom_pull(task_ids=self.plan_task_id, key=RUN_SAMPLES_KEY) if self.plan_task_id else None
        if self.plan_task_id and plan is None and not records:
            # The plan pushes its samples last, before anything exists on the service: without them, nothing can
            # have been created (and the store may not even exist).
            raise AirflowSkipException("The plan did not finish: nothing was created, so nothing is aborted.")
        return abort_samples(
            self.hook, store_id, records, completed, plan, bool(self.create_task_id), self.aws_conn_id, self.log
        )


__all__ = [
    "RUN_MANIFEST_KEY",
    "RUN_SAMPLES_KEY",
    "OmicsAbortRunUploadsOperator",
    "OmicsBatchRunDigestsOperator",
    "OmicsCompleteRunUploadsOperator",
    "OmicsCreateRunUploadsOperator",
    "OmicsDigestRunSourcesOperator",
    "OmicsImportRunReadSetsOperator",
    "OmicsPlanSequencingRunOperator",
    "OmicsSequencingRunSummaryOperator",
    "OmicsVerifyRunReadSetsOperator",
    "OmicsWaitRunReadSetsOperator",
]
