"""A sequencing run of many samples: the batches of its parts, what the store already holds of each sample, the wait
for its read sets and its summary table."""

from __future__ import annotations

import csv
import io
import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_omics.hooks.omics import READ_SET_STATES, OmicsHook
from airflow_provider_omics.readsets import Logger, identity
from airflow_provider_omics.readsets.request import sample_request
from airflow_provider_omics.utils.errors import service_errors
from airflow_provider_omics.utils.parts import PartPlanError
from airflow_provider_omics.utils.payloads import (
    PartSegment,
    RunSample,
)

if TYPE_CHECKING:
    pass


# Read set statuses that are still on their way to ACTIVE.
PENDING_STATUSES = READ_SET_STATES.retry


def pack_run_parts(samples: Sequence[RunSample], max_tasks: int) -> list[list[PartSegment]]:
    """Cut the parts of every source of ``samples`` into at most ``max_tasks`` batches of about equal size.

    The parts are laid end to end (sample after sample, SOURCE1 before SOURCE2) and cut every ``per_batch``
    parts, so a batch may hold the end of one source and the start of the next, of the same sample or another:
    the task count is set by the run's parts, never by its number of samples.
    """
    if max_tasks < 1:
        raise PartPlanError(f"max_tasks={max_tasks} must be at least 1.")
    total = sum(planned["parts"] for sample in samples for planned in sample.sources.values())
    if total == 0:
        return []
    per_batch = math.ceil(total / max_tasks)
    batches: list[list[PartSegment]] = []
    room = 0
    for sample in samples:
        for part_source, planned in sorted(sample.sources.items()):
            first = 1
            while first <= planned["parts"]:
                if room == 0:
                    batches.append([])
                    room = per_batch
                last = min(planned["parts"], first + room - 1)
                batches[-1].append(
                    PartSegment(
                        sample=sample.key,
                        source_uri=planned["location"],
                        part_source=part_source,
                        first_part=first,
                        last_part=last,
                        total_parts=planned["parts"],
                        part_size=planned["part_size"],
                        fingerprint=planned["fingerprint"],
                    )
                )
                room -= last - first + 1
                first = last + 1
    return batches


def resolve_stored(hook: OmicsHook, store_id: str, sample: RunSample, on_existing: str) -> identity.Resolution:
    """What the store already holds of this sample, and what the run does about it
    (:func:`~airflow_provider_omics.readsets.identity.resolve_existing`).

    A read set counts as this sample's stored read set only when it is proven to hold the staged files: it
    carries this request's token (the same sample identity and staged fingerprints), or, for FASTQ, its ETags
    equal the staged files' digests (verify proves it). Who uploaded it does not matter (another run, another DAG,
    another deployment, another tool).
    """
    request, token = sample_request(store_id, sample)
    same, other = identity.existing_read_sets(hook, store_id, request, token)
    return identity.resolve_existing(
        same, other, on_existing, request["sourceFileType"], f"{sample.row.name} (sample {sample.row.sample_id})"
    )


def fail_sample(sample: RunSample, step: str, reason: str, log: Logger) -> None:
    """Mark ``sample`` failed at ``step`` for ``reason``, and say so in the task's log."""
    log.error("%s failed in %s: %s", sample.key, step, reason)
    sample.fail(step, reason)


def wait_until_active(
    hook: OmicsHook,
    store_id: str,
    samples: Mapping[str, RunSample],
    delay: float,
    attempts: int,
    aws_conn_id: str | None,
    log: Logger,
) -> None:
    """Wait until every ``completed`` sample's read set is ACTIVE (then ``active``) or failed (then the sample
    fails with the service's ``statusMessage``), looking at all of them each round.

    :raises AirflowException: some are still on their way after ``delay * attempts`` seconds (retryable).
    """
    pending = {key: s for key, s in samples.items() if s.status == "completed" and s.read_set_id}
    for attempt in range(attempts):
        with service_errors("GetReadSetMetadata", aws_conn_id):
            for key, sample in list(pending.items()):
                assert sample.read_set_id
                metadata = hook.get_read_set_metadata(store_id, sample.read_set_id)
                status = metadata.get("status")
                if status in PENDING_STATUSES:
                    continue
                del pending[key]
                if status == "ACTIVE":
                    sample.status = "active"
                    log.info("%s: read set %s is ACTIVE", key, sample.read_set_id)
                else:
                    fail_sample(
                        sample,
                        "wait_active",
                        f"read set {sample.read_set_id} is {status}: "
                        f"{metadata.get('statusMessage') or 'no status message'}",
                        log,
                    )
        if not pending:
            return
        if attempt + 1 < attempts:
            time.sleep(delay)
    raise AirflowException(
        f"Read sets still not ACTIVE after {delay * attempts:.0f} s: "
        + ", ".join(f"{key} ({s.read_set_id})" for key, s in pending.items())
    )


# The columns of the summary CSV, in order.
SUMMARY_COLUMNS = ("sample", "read_set_id", "status", "verified", "bytes", "seconds", "reason")


# OWASP's CSV injection rule: a cell that starts with one of these is run as a formula by spreadsheet programs.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """``value`` as a CSV cell no spreadsheet runs: text starting with a formula character gets a leading ``'``
    (OWASP's rule); numbers, booleans and None stay as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def summary_csv(table: Sequence[Mapping[str, Any]]) -> bytes:
    """The summary table as CSV (UTF-8, the columns of :data:`SUMMARY_COLUMNS`), every text cell through
    :func:`csv_cell`: sample names, reasons and ids come from the manifest and the service."""
    out = io.StringIO()
    # RFC 4180's CRLF: the csv module quotes a field holding a character of its line terminator, and with "\n"
    # alone a carriage return in a reason would be written bare and split the row for every reader.
    writer = csv.DictWriter(out, fieldnames=list(SUMMARY_COLUMNS), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({column: csv_cell(row.get(column)) for column in SUMMARY_COLUMNS} for row in table)
    return out.getvalue().encode()


def _file_name_part(text: str, default: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or default


def summary_location(manifest_location: str, run_id: str, *, dag_id: str) -> str:
    """Where a run's summary CSV goes: next to the manifest, named after it, the DAG and the run
    (``runs/SampleSheet.csv`` -> ``runs/SampleSheet.summary.<dag id>.<run id>.csv``), so that two DAGs with one
    run id (the scheduled runs of one logical date) write two files."""
    directory, _, name = manifest_location.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return f"{directory}/{stem}.summary.{_file_name_part(dag_id, 'dag')}.{_file_name_part(run_id, 'run')}.csv"
