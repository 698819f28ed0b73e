"""One real Airflow deployment running the example DAG ``omics_upload_read_set``: time per mapped task and in all.

Starts, under a temporary ``AIRFLOW_HOME``, the HealthOmics emulator (the foreground CLI) and Airflow 3's own
components, each in its own process: ``api-server`` (the Execution API the task processes talk to),
``dag-processor`` and ``scheduler`` with the LocalExecutor (``--parallelism`` worker processes). The metadata
database is sqlite: Airflow 3 accepts it with the LocalExecutor (``airflow standalone`` runs exactly that),
because task processes no longer write to the database themselves, only the scheduler and the API server do.

Then triggers ``omics_upload_read_set`` once per ``--max-tasks`` entry (``max_tasks`` or
``max_tasks:part_size_mib``), all with the same generated FASTQ file, waits for each run, and reads from the
metadata database, the scheduler's log and the task logs:

- the run's total time, and the span of its mapped ``upload_parts`` tasks (first start to last end);
- per mapped task: its running time, how long it held a worker slot, the time it waited between queued and
  running, and the seconds its upload loop took (the operator's own log line), the rest of the slot time being
  the task's fixed cost (process, DAG parse, hook, connection, client, XCom).

    .venv/bin/python benchmarks/bench_dag.py --size-mib 1024 --part-size-mib 8 --max-tasks 4,16,64,4:100
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_provider_omics.testing import emulator_client
from airflow_provider_omics.testing.deployment import REGION, AirflowDeployment
from airflow_provider_omics.testing.samples import write_fastq_of_size

REPO = Path(__file__).resolve().parents[1]
DAG_FILE = REPO / "example_dags" / "omics_upload_from_ui.py"
DAG_ID = "omics_upload_read_set"
UPLOAD_TASK = "upload_read_set.upload_parts"
MIB = 1024 * 1024
MB = 1_000_000
_UPLOADED = re.compile(r"Uploaded SOURCE\d parts (\d+)-(\d+): (\d+) bytes in ([\d.]+) s")
# The LocalExecutor's supervisor logs how long each workload held its worker slot, task process included.
_WORKLOAD_DURATION = re.compile(r"\bduration=([\d.]+)")
_WORKLOAD_ID = re.compile(r"\bworkload_id=([0-9a-f-]{36})")


def write_fastq(path: Path, size: int) -> None:
    """About ``size`` bytes of well-formed FASTQ (reused if present)."""
    if path.exists() and path.stat().st_size >= size:
        return
    tmp = path.with_suffix(".tmp")
    write_fastq_of_size(tmp, size)
    tmp.replace(path)


class Deployment(AirflowDeployment):
    """The emulator and Airflow's api-server, dag-processor and scheduler, each a process group of its own."""

    def __init__(self, workdir: Path, parallelism: int) -> None:
        super().__init__(
            workdir,
            [DAG_FILE],
            executor="LocalExecutor",
            config={
                "CORE__PARALLELISM": str(parallelism),
                "CORE__MAX_ACTIVE_TASKS_PER_DAG": str(max(16, parallelism)),
            },
            environ={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION},
        )
        self.emulator_dir = workdir / "emulator-data"
        shutil.rmtree(self.emulator_dir, ignore_errors=True)
        self.parallelism = parallelism
        self._started = time.monotonic()

    def start(self) -> None:  # type: ignore[override]
        self._started = time.monotonic()
        self.start_emulator(self.emulator_dir, activation_delay=0)
        # The emulator enforces no quotas here: no client-side pacing either (hooks/pacing.py).
        extra = {"endpoint_url": self.endpoint_url, "region_name": REGION, "omics_quotas": False}
        conn = {"conn_type": "aws", "extra": extra}
        self.env["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(conn)
        super().start(dag_id=DAG_ID, api_timeout=120, dag_timeout=180)
        print(
            f"  Airflow up: api-server, dag-processor, scheduler ({time.monotonic() - self._started:.0f} s)", flush=True
        )

    def migrate(self, timeout: float = 600) -> None:
        super().migrate(timeout)
        print(f"  database migrated ({time.monotonic() - self._started:.0f} s)", flush=True)

    def client(self) -> Any:
        return emulator_client(self.endpoint_url)

    def stop(self, timeout: float = 30) -> None:
        super().stop(timeout)
        shutil.rmtree(self.emulator_dir, ignore_errors=True)


def _ts(value: str | None) -> float | None:
    if not value:
        return None
    text = value.replace("T", " ").split("+")[0].rstrip("Z")
    return (
        datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S")
        .replace(tzinfo=UTC)
        .timestamp()
    )


@dataclass
class RunReport:
    max_tasks: int
    part_size_mib: int
    state: str
    tasks: int
    total: float
    span: float
    durations: list[float]
    slot_seconds: list[float]
    queue_waits: list[float]
    upload_seconds: list[float]
    other_tasks: dict[str, float]


def workload_seconds(scheduler_log: Path) -> dict[str, float]:
    """Task instance id (no dashes) -> seconds its workload held a LocalExecutor worker slot."""
    found = {}
    for line in scheduler_log.read_text(errors="replace").splitlines():
        if "Workload finished" in line:
            duration, workload = _WORKLOAD_DURATION.search(line), _WORKLOAD_ID.search(line)
            if duration and workload:
                found[workload.group(1).replace("-", "")] = float(duration.group(1))
    return found


def report_run(deployment: Deployment, run_id: str, max_tasks: int, part_size_mib: int, state: str) -> RunReport:
    (run_start, run_end), *_ = deployment.query(
        "SELECT start_date, end_date FROM dag_run WHERE dag_id = ? AND run_id = ?", DAG_ID, run_id
    )
    rows = deployment.query(
        "SELECT task_id, map_index, start_date, end_date, queued_dttm, try_number, id FROM task_instance "
        "WHERE dag_id = ? AND run_id = ?",
        DAG_ID,
        run_id,
    )
    uploads = [r for r in rows if r[0] == UPLOAD_TASK and r[2] and r[3]]
    starts = [_ts(r[2]) or 0.0 for r in uploads]
    ends = [_ts(r[3]) or 0.0 for r in uploads]
    durations = [end - start for start, end in zip(starts, ends, strict=True)]
    queue_waits = [(_ts(r[2]) or 0.0) - (_ts(r[4]) or _ts(r[2]) or 0.0) for r in uploads]
    workloads = workload_seconds(deployment.workdir / "scheduler.log")
    slot_seconds = [workloads[r[6].replace("-", "")] for r in uploads if r[6].replace("-", "") in workloads]
    upload_seconds = []
    for task_id, map_index, *_rest, try_number, _id in uploads:
        log = (
            deployment.home
            / "logs"
            / f"dag_id={DAG_ID}"
            / f"run_id={run_id}"
            / f"task_id={task_id}"
            / f"map_index={map_index}"
            / f"attempt={try_number or 1}.log"
        )
        found = _UPLOADED.search(log.read_text(errors="replace")) if log.exists() else None
        if found:
            upload_seconds.append(float(found.group(4)))
    other = {
        r[0].rsplit(".", 1)[-1]: (_ts(r[3]) or 0.0) - (_ts(r[2]) or 0.0)
        for r in rows
        if r[0] != UPLOAD_TASK and r[2] and r[3]
    }
    return RunReport(
        max_tasks=max_tasks,
        part_size_mib=part_size_mib,
        state=state,
        tasks=len(uploads),
        total=(_ts(run_end) or 0.0) - (_ts(run_start) or 0.0),
        span=(max(ends) - min(starts)) if uploads else 0.0,
        durations=durations,
        slot_seconds=slot_seconds,
        queue_waits=queue_waits,
        upload_seconds=upload_seconds,
        other_tasks=other,
    )


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def slot_cost(report: RunReport, parallelism: int) -> float:
    """Worker-slot seconds the upload span cost per mapped task: span x slots in use / tasks."""
    return report.span * min(parallelism, report.tasks) / report.tasks if report.tasks else float("nan")


def print_reports(reports: list[RunReport], size: int, parallelism: int) -> None:
    print()
    print(
        f"{'max_tasks':>9}{'part MiB':>9}{'tasks':>7}{'state':>9}{'run s':>8}{'upload span s':>15}{'MB/s':>7}"
        f"{'task s':>8}{'slot s':>8}{'upload s':>10}{'queued s':>10}{'slot-s/task':>13}"
    )
    for r in reports:
        print(
            f"{r.max_tasks:>9}{r.part_size_mib:>9}{r.tasks:>7}{r.state:>9}{r.total:>8.1f}{r.span:>15.1f}"
            f"{size / r.span / MB if r.span else 0:>7.0f}{_median(r.durations):>8.2f}{_median(r.slot_seconds):>8.2f}"
            f"{_median(r.upload_seconds):>10.2f}{_median(r.queue_waits):>10.2f}{slot_cost(r, parallelism):>13.2f}"
        )
    print()
    print(
        f"{size / MIB:.0f} MiB FASTQ; LocalExecutor, parallelism {parallelism}; {os.cpu_count()} CPUs. Per mapped "
        "task, medians: 'task' is its running time (start to end in the metadata database), 'slot' how long its "
        "workload held a worker (the supervisor's duration), 'upload' its upload loop (the operator's log), "
        "'queued' its wait from queued to running. 'upload span' runs from the first mapped task's start to the "
        "last one's end; 'slot-s/task' = span x slots in use / tasks, what one mapped task really cost, scheduling "
        "and process start included."
    )
    if reports and reports[0].other_tasks:
        others = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(reports[0].other_tasks.items()))
        print(f"other tasks of the first run (running time): {others}")
    done = [r for r in reports if r.state == "success" and r.span and r.tasks]
    if done:
        best = min(done, key=lambda r: r.span)
        overhead = statistics.median(slot_cost(r, parallelism) - _median(r.upload_seconds) for r in done)
        print()
        print(
            f"Recommendation: the shortest upload span here was max_tasks={best.max_tasks} with "
            f"{best.part_size_mib} MiB parts ({best.span:.1f} s). Beyond its upload, a mapped task cost about "
            f"{overhead:.1f} s of a worker slot (scheduling, process start, DAG parse, connection, client, XCom), and "
            "only `parallelism` of them run at once: use 100 MiB parts, keep max_tasks near the worker slots one "
            "upload may take, and raise max_concurrency (parts in flight per task) rather than max_tasks to fill "
            "a worker's network."
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the FASTQ file (default 1024)")
    parser.add_argument("--part-size-mib", type=int, default=8, help="part size of the runs (default 8: 128 parts)")
    parser.add_argument(
        "--max-tasks",
        default="4,16,64,4:100",
        help="comma-separated runs, each max_tasks or max_tasks:part_size_mib (default 4,16,64,4:100)",
    )
    parser.add_argument("--parallelism", type=int, default=4, help="LocalExecutor worker slots (default 4)")
    parser.add_argument("--workdir", default=None, help="where the file, AIRFLOW_HOME and the logs live")
    parser.add_argument("--run-timeout", type=float, default=600, help="seconds one DAG run may take")
    parser.add_argument(
        "--keep", action="store_true", help="keep AIRFLOW_HOME (database, task logs); the components' logs always stay"
    )
    args = parser.parse_args(argv)
    if args.parallelism < 4:
        parser.error("--parallelism must be at least 4")

    workdir = Path(args.workdir or Path(tempfile.gettempdir()) / "omics-bench-dag")
    workdir.mkdir(parents=True, exist_ok=True)
    size = args.size_mib * MIB
    source = workdir / f"reads-{args.size_mib}MiB.fastq"
    write_fastq(source, size)
    size = source.stat().st_size
    settings = []
    for item in args.max_tasks.split(","):
        if item.strip():
            max_tasks, _, part_mib = item.strip().partition(":")
            settings.append((int(max_tasks), int(part_mib or args.part_size_mib)))
    runs = ", ".join(f"max_tasks={m} with {p} MiB parts" for m, p in settings)
    print(f"source: {source} ({size / MIB:.0f} MiB); runs: {runs}")

    started = time.monotonic()
    deployment = Deployment(workdir, args.parallelism)
    reports = []
    try:
        deployment.start()
        client = deployment.client()
        store_id = client.create_sequence_store(name="bench-dag")["id"]
        for number, (max_tasks, part_size_mib) in enumerate(settings, start=1):
            run_id = f"bench_{number}_max_tasks_{max_tasks}_parts_{part_size_mib}mib"
            conf = {
                "sequence_store_id": store_id,
                "source_file_type": "FASTQ",
                "read1": str(source),
                "read2": None,
                "sample_id": "bench",
                "subject_id": "bench",
                "name": run_id,
                "reference_arn": None,
                "part_size_mib": part_size_mib,
                "max_tasks": max_tasks,
            }
            deployment.trigger(DAG_ID, run_id, conf)
            state = deployment.wait_run(DAG_ID, run_id, args.run_timeout)
            report = report_run(deployment, run_id, max_tasks, part_size_mib, state)
            reports.append(report)
            print(
                f"  max_tasks={max_tasks}, {part_size_mib} MiB parts: {state}, {report.tasks} upload tasks, "
                f"run {report.total:.1f} s, upload span {report.span:.1f} s",
                flush=True,
            )
            # The stored parts are not needed once the read set has been verified.
            for read_set in client.list_read_sets(sequenceStoreId=store_id)["readSets"]:
                for part_source in ("SOURCE1", "SOURCE2"):
                    shutil.rmtree(deployment.emulator_dir / "readsets" / read_set["id"] / part_source, True)
    finally:
        deployment.stop()
        if not args.keep:
            shutil.rmtree(deployment.home, ignore_errors=True)
    print_reports(reports, size, args.parallelism)
    print(f"\nbenchmark wall time: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
