"""A sequencing run through the example DAG on a real scheduler, against the same samples uploaded one by one.

Three measurements, numbers only (no timed assertion):

1. **The run.** ``--samples`` paired gzipped FASTQ samples (``--file-mib`` MiB per file, well-formed records from
   :mod:`airflow_provider_omics.testing.samples`, cached under ``--workdir``) listed in a CSV manifest, uploaded by
   ONE run of ``example_dags/omics_upload_sequencing_run.py`` triggered with its form's params (store id,
   manifest, part size, task budget, parts in flight). Airflow runs as ``bench_dag.py`` runs it: the emulator, the
   api-server, the dag-processor and the scheduler (LocalExecutor, ``--parallelism`` slots, sqlite) each in a
   process of its own (:mod:`airflow_provider_omics.testing.deployment`); an uncounted one-sample run warms it up.
   Read from the metadata database, the REST API's task graph, the task logs and the scheduler's log:
   trigger-to-success time, task instances against the budget, every task's scheduled / queued / start / end,
   DAG parse and execute() time, the critical path with the scheduler's latency between consecutive tasks, and
   how the mapped upload tasks filled the worker slots.
2. **The reference, same emulator process, a fresh store.** The same samples one after another in this process
   by AWS's ``omics.transfer.manager.TransferManager.upload_read_set`` (aws-healthomics-tools, as
   ``bench_upload.py`` uses it; both reads of a pair in one call), each followed by a wait for ACTIVE (a
   GetReadSetMetadata every ``--poll-seconds``). Then the ratio run / sequential. ``--rounds`` repeats both,
   alternating which goes first. With ``--sizes`` (more MiB per file) both are measured per size, the run's and
   the script's times (and CPU seconds) are fitted as fixed + per-GB costs, and the size where the run reaches
   1.0x (and 2.0x) is solved from the fits.
3. **The digest of a pair** (``--digest-only`` runs it alone, ``--skip-digest`` leaves it out): a paired FASTQ of
   2 x ``--digest-mb`` MB uncompressed, digested as the run's digest task does (a ``ThreadPoolExecutor`` over the
   sources calling :func:`airflow_provider_omics.readsets.verify.digest_source` on the plan of
   :func:`~airflow_provider_omics.staging.manifests.validate_manifest`), against the digest of its larger source
   alone; the median of ``--digest-repeat`` alternating runs, with CPU seconds.

The machine may be shared: before each timed phase the benchmark waits (``--quiet-wait``) until other processes
use less than a quarter of a core, and it reports the CPU seconds of its own processes and of everything else
during each phase. The provider's files are fingerprinted around each run: a run that straddles a change of the
code is reported and not counted when another one is.

The DAG run is read only through its public interface (the trigger's conf), the emulator's API, Airflow's
metadata database and logs: no XCom.

    .venv/bin/python benchmarks/bench_run.py                      # 48 samples x 2 x 20 MiB, then the digest
    .venv/bin/python benchmarks/bench_run.py --rounds 3 --skip-digest
    .venv/bin/python benchmarks/bench_run.py --sizes 60,120 --skip-digest
    .venv/bin/python benchmarks/bench_run.py --digest-only
    .venv/bin/python benchmarks/bench_run.py --samples 8 --file-mib 4 --max-tasks 8 --skip-digest --quiet-wait 0
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import hashlib
import json
import logging
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from airflow_provider_omics.hooks.pacing import SERVICE_QUOTAS
from airflow_provider_omics.testing import emulator_admin, emulator_client
from airflow_provider_omics.testing.deployment import REGION, AirflowDeployment
from airflow_provider_omics.testing.samples import fastq_records

REPO = Path(__file__).resolve().parents[1]
DAG_FILE = REPO / "example_dags" / "omics_upload_sequencing_run.py"
DAG_ID = "omics_upload_sequencing_run"
UPLOAD_TASK = "upload_parts"
DIGEST_TASK = "digest"
MIB = 1024 * 1024
MB = 1_000_000
# One distinct block of records per file (about 4 MiB of FASTQ), gzipped once and written as many gzip members as
# the file size needs: multi-member gzip, as parallel compressors and bcl2fastq-style writers produce it.
READS_PER_BLOCK = 13_000
GZIP_LEVEL = 6
CACHE_VERSION = 1
# The run's other tasks (plan, create, digest_batches, complete, abort, wait_active, verify, summary, failures, the
# one failed_sample of a run in which no sample fails, and import: the example DAG builds both paths) besides its
# two mapped steps, the upload tasks (at most max_tasks) and the digest tasks (at most the form's max_digest_tasks,
# 4): the README's bound, max_tasks + max_digest_tasks + 11. (The run's first target, before the digest was mapped
# and failed samples shown as tasks, was max_tasks + 12.)
TARGET_EXTRA_TASKS = 11
DIGEST_TASKS = 4
TARGET_RATIO = 2.0
TARGET_DIGEST_RATIO = 1.15
# --quotas: files of at least 50 parts of 1 MiB, so that two cores can drive the part quota.
QUOTA_FILE_MIB = 52
TARGET_QUOTA_RATIO = 1.25

# The LocalExecutor's supervisor logs how long each workload held its worker slot, task process included.
_WORKLOAD_FINISHED = "Workload finished"
_WORKLOAD_DURATION = re.compile(r"\bduration=([\d.]+)")
_WORKLOAD_ID = re.compile(r"\bworkload_id=([0-9a-f-]{36})")


# -- sample files ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    sample_id: str
    read1: Path
    read2: Path

    @property
    def size(self) -> int:
        return self.read1.stat().st_size + self.read2.stat().st_size


def gzip_member(data: bytes, level: int = GZIP_LEVEL) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def write_pair(
    read1: Path, read2: Path, prefix: str, seed: int, *, compressed_bytes: int = 0, uncompressed_bytes: int = 0
) -> tuple[int, int, int]:
    """Write a paired gzipped FASTQ of about ``compressed_bytes`` per file (or ``uncompressed_bytes`` of FASTQ
    per file): per mate one block of :func:`fastq_records`, gzipped once and repeated as members, so that both
    mates have the same number of records. Returns the two file sizes and the uncompressed size of one file."""
    blocks = [fastq_records(READS_PER_BLOCK, seed=seed * 2 + mate, prefix=prefix, mate=mate) for mate in (1, 2)]
    members = [gzip_member(block) for block in blocks]
    if uncompressed_bytes:
        count = max(1, round(uncompressed_bytes / len(blocks[0])))
    else:
        count = max(1, round(compressed_bytes / len(members[0])))
    for path, member in zip((read1, read2), members, strict=True):
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as out:
            for _ in range(count):
                out.write(member)
        tmp.replace(path)
    return read1.stat().st_size, read2.stat().st_size, count * len(blocks[0])


def uncompressed_size(path: Path) -> int:
    """The FASTQ bytes of a file :func:`write_pair` wrote: its size over its first gzip member's, times the
    member's FASTQ (every member is the same)."""
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    plain = 0
    with open(path, "rb") as handle:
        while not inflate.eof and (chunk := handle.read(1 << 20)):
            plain += len(inflate.decompress(chunk))
        member = handle.tell() - len(inflate.unused_data)
    return round(path.stat().st_size / member * plain)


def _write_sample(job: tuple[str, str, str, int, int]) -> tuple[str, int, int]:
    read1, read2, prefix, seed, target = job
    size1, size2, _ = write_pair(Path(read1), Path(read2), prefix, seed, compressed_bytes=target)
    return prefix, size1, size2


def make_samples(root: Path, count: int, file_mib: int) -> list[Sample]:
    """``count`` paired samples of about ``file_mib`` MiB per file under ``root/<file_mib>MiB`` (kept: files that
    are there with the size the index recorded are reused)."""
    folder = root / f"{file_mib}MiB"
    folder.mkdir(parents=True, exist_ok=True)
    index_path = folder / "index.json"
    settings = {"version": CACHE_VERSION, "reads_per_block": READS_PER_BLOCK, "level": GZIP_LEVEL}
    index: dict[str, Any] = {}
    if index_path.exists():
        index = json.loads(index_path.read_text())
    if index.get("settings") != settings:
        index = {"settings": settings, "sizes": {}}
    samples = [
        Sample(f"S{n:03d}", folder / f"S{n:03d}_R1.fastq.gz", folder / f"S{n:03d}_R2.fastq.gz")
        for n in range(1, count + 1)
    ]

    def cached(sample: Sample) -> bool:
        sizes = index["sizes"].get(sample.sample_id)
        return bool(
            sizes
            and sample.read1.exists()
            and sample.read2.exists()
            and [sample.read1.stat().st_size, sample.read2.stat().st_size] == sizes
        )

    todo = [s for s in samples if not cached(s)]
    if todo:
        started = time.monotonic()
        jobs = [
            (str(s.read1), str(s.read2), s.sample_id, int(s.sample_id[1:]), file_mib * MIB)
            for s in todo  # the seed is the sample's number: the same files whatever --samples
        ]
        with concurrent.futures.ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            for sample_id, size1, size2 in pool.map(_write_sample, jobs):
                index["sizes"][sample_id] = [size1, size2]
        index_path.write_text(json.dumps(index, indent=1))
        print(f"  wrote {len(todo)} paired samples in {time.monotonic() - started:.0f} s", flush=True)
    return samples


def write_manifest(path: Path, samples: Sequence[Sample]) -> Path:
    """The run's CSV sample sheet: sample_id, subject_id, name, read1, read2 (file type from the form)."""
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["sample_id", "subject_id", "name", "read1", "read2"])
        for sample in samples:
            writer.writerow(
                [sample.sample_id, f"P{sample.sample_id[1:]}", sample.sample_id, sample.read1, sample.read2]
            )
    return path


def warm_page_cache(paths: Iterable[Path]) -> None:
    """Read the files once, so that neither uploader is the one that pays for the first read from disk."""
    for path in paths:
        with open(path, "rb", buffering=0) as handle:
            while handle.read(8 * MIB):
                pass


def code_fingerprint() -> str:
    """What the task processes import: the provider's and the example DAG's files (path, size, mtime). Other work
    may change them while the benchmark runs; a run that straddles a change measures two versions."""
    digest = hashlib.sha256()
    for path in sorted([*(REPO / "airflow_provider_omics").rglob("*.py"), DAG_FILE]):
        stat = path.stat()
        digest.update(f"{path.relative_to(REPO)}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:12]


def code_version() -> str:
    """The checkout's commit, and whether the provider or the example DAGs have uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "airflow_provider_omics", "example_dags"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"files {code_fingerprint()}"
    return f"commit {head}{' with uncommitted changes' if dirty else ''}, files {code_fingerprint()}"


# -- CPU accounting ----------------------------------------------------------------------------------------------


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pids: Iterable[int]) -> float:
    """CPU seconds of processes and all their descendants, the exited ones their parents reaped included."""
    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            members = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for member in members:
            try:
                times = member.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system + times.children_user + times.children_system
    return total


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuWindow:
    """CPU seconds over a phase: the whole machine, this benchmark (this process, the emulator and Airflow with
    its task processes), of which the emulator, and the rest: other jobs on the same machine."""

    deployment: AirflowDeployment | None = None
    wall: float = 0.0
    busy: float = 0.0
    ours: float = 0.0
    emulator: float = 0.0
    _start: tuple[float, ...] = ()

    def _sample(self) -> tuple[float, ...]:
        procs = self.deployment.procs if self.deployment else {}
        emulator = [procs["emulator"].pid] if "emulator" in procs else []
        return (
            time.monotonic(),
            machine_busy_seconds(),
            tree_cpu_seconds(proc.pid for proc in procs.values()) + own_cpu_seconds(),
            tree_cpu_seconds(emulator),
        )

    def __enter__(self) -> CpuWindow:
        self._start = self._sample()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.busy, self.ours, self.emulator = (
            end - start for end, start in zip(self._sample(), self._start, strict=True)
        )

    @property
    def others(self) -> float:
        return max(0.0, self.busy - self.ours)

    def describe(self) -> str:
        cores = os.cpu_count() or 1
        return (
            f"machine busy {self.busy:.0f} of {self.wall * cores:.0f} CPU s "
            f"({self.busy / max(self.wall * cores, 1e-9):.0%}): this benchmark {self.ours:.0f} (emulator "
            f"{self.emulator:.0f}), other jobs on the machine {self.others:.0f}"
        )


def wait_for_quiet(
    deployment: AirflowDeployment | None, max_wait: float, cores: float = 0.25, window: float = 5.0
) -> str:
    """Wait (at most ``max_wait`` s) until other jobs use less than ``cores`` of the machine over ``window`` s:
    this machine's cores may be shared with other work, which would slow whichever phase it overlaps."""
    started = time.monotonic()
    while True:
        with CpuWindow(deployment) as sample:
            time.sleep(window)
        if sample.others / window < cores:
            return f"other jobs {sample.others / window:.2f} cores after {time.monotonic() - started:.0f} s of waiting"
        if time.monotonic() - started >= max_wait:
            return f"other jobs still {sample.others / window:.2f} cores after {max_wait:.0f} s: measured anyway"


# -- the deployment ----------------------------------------------------------------------------------------------


class Deployment(AirflowDeployment):
    """The emulator and Airflow's api-server, dag-processor and scheduler, each a process group of its own."""

    def __init__(
        self,
        workdir: Path,
        parallelism: int,
        staging: Path,
        settings: dict[str, str],
        quota_time_scale: float | None = None,
        paced: bool = True,
    ) -> None:
        self.quota_time_scale = quota_time_scale
        self.paced = paced
        super().__init__(
            workdir,
            [DAG_FILE],
            executor="LocalExecutor",
            config={
                "CORE__PARALLELISM": str(parallelism),
                "CORE__MAX_ACTIVE_TASKS_PER_DAG": str(max(16, parallelism)),
                # As in production: the workers may read the staging area and nothing else.
                "OMICS__ALLOWED_LOCAL_ROOTS": str(staging),
                **settings,
            },
            environ={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION},
        )
        self.emulator_dir = workdir / "emulator-data"
        shutil.rmtree(self.emulator_dir, ignore_errors=True)

    def start_all(self) -> None:
        started = time.monotonic()
        extra: dict[str, Any] = {"region_name": REGION}
        if self.quota_time_scale is None:
            # No quotas: the emulator enforces none, the provider paces nothing (hooks/pacing.py).
            self.start_emulator(self.emulator_dir, activation_delay=0)
            extra["omics_quotas"] = False
        else:
            # The service's quotas, time-scaled; the provider paces at the same scale.
            scale = self.quota_time_scale
            self.start_emulator(
                self.emulator_dir,
                activation_delay=0,
                extra_args=["--quotas", "default", "--quota-time-scale", str(scale)],
            )
            paced = {operation: rate * scale for operation, rate in SERVICE_QUOTAS.items()}
            extra["omics_quotas"] = paced if self.paced else False
        extra["endpoint_url"] = self.endpoint_url
        conn = {"conn_type": "aws", "extra": extra}
        self.env["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(conn)
        self.start(dag_id=DAG_ID, api_timeout=180, dag_timeout=240)
        print(f"  Airflow up: api-server, dag-processor, scheduler ({time.monotonic() - started:.0f} s)", flush=True)

    def client(self) -> Any:
        return emulator_client(self.endpoint_url)

    def drop_stored_parts(self, read_set_ids: Iterable[str]) -> None:
        """The stored parts of verified read sets are not needed any more (the metadata stays)."""
        for read_set_id in read_set_ids:
            for source in ("SOURCE1", "SOURCE2"):
                shutil.rmtree(self.emulator_dir / "readsets" / read_set_id / source, ignore_errors=True)

    def stop(self, timeout: float = 30) -> None:
        super().stop(timeout)
        shutil.rmtree(self.emulator_dir, ignore_errors=True)


def store_outcome(client: Any, store_id: str) -> tuple[dict[str, int], int, list[str]]:
    """Read sets of a store by status, uploads left in progress, and the read set ids."""
    statuses: dict[str, int] = {}
    ids: list[str] = []
    token = None
    while True:
        page = client.list_read_sets(sequenceStoreId=store_id, **({"nextToken": token} if token else {}))
        for read_set in page.get("readSets", []):
            statuses[read_set["status"]] = statuses.get(read_set["status"], 0) + 1
            ids.append(read_set["id"])
        token = page.get("nextToken")
        if not token:
            break
    uploads = client.list_multipart_read_set_uploads(sequenceStoreId=store_id).get("uploads", [])
    return statuses, len(uploads), ids


# -- the sequential reference ------------------------------------------------------------------------------------


@dataclass
class ReferenceReport:
    seconds: float
    upload_seconds: list[float]
    wait_seconds: list[float]
    polls: int
    own_cpu: float
    cpu: CpuWindow
    statuses: dict[str, int]


def run_reference(
    deployment: Deployment,
    store_id: str,
    samples: Sequence[Sample],
    part_size: int,
    concurrency: int,
    poll_seconds: float,
) -> ReferenceReport:
    """Each sample by ``TransferManager.upload_read_set`` (create, both files' parts, complete), then a wait
    until it is ACTIVE; one sample after the other, in this process, with one client."""
    import omics.transfer.read_set_upload as tm_upload
    from botocore.config import Config
    from omics.transfer.config import TransferConfig
    from omics.transfer.manager import TransferManager

    # Its part size is a module constant (100 MiB); match the run's part size as bench_upload.py does.
    tm_upload.UPLOAD_PART_SIZE_BYTES = part_size
    uploads: list[float] = []
    waits: list[float] = []
    polls = 0
    cpu_before = time.process_time()
    with CpuWindow(deployment) as window:
        client = emulator_client(deployment.endpoint_url, config=Config(max_pool_connections=max(10, concurrency)))
        with TransferManager(client, TransferConfig(max_request_concurrency=concurrency)) as manager:
            for sample in samples:
                started = time.monotonic()
                read_set_id = manager.upload_read_set(
                    [str(sample.read1), str(sample.read2)],
                    store_id,
                    "FASTQ",
                    sample.sample_id,
                    f"P{sample.sample_id[1:]}",
                    sample.sample_id,
                )
                uploaded = time.monotonic()
                while True:
                    polls += 1
                    status = client.get_read_set_metadata(sequenceStoreId=store_id, id=read_set_id)["status"]
                    if status != "PROCESSING_UPLOAD":
                        break
                    time.sleep(poll_seconds)
                if status != "ACTIVE":
                    raise RuntimeError(f"reference: read set {read_set_id} of {sample.sample_id} is {status}")
                uploads.append(uploaded - started)
                waits.append(time.monotonic() - uploaded)
    statuses, _, _ = store_outcome(deployment.client(), store_id)
    return ReferenceReport(
        seconds=window.wall,
        upload_seconds=uploads,
        wait_seconds=waits,
        polls=polls,
        own_cpu=time.process_time() - cpu_before,
        cpu=window,
        statuses=statuses,
    )


# -- the DAG run -------------------------------------------------------------------------------------------------


def _ts(value: str | None) -> float | None:
    """A metadata database timestamp (UTC) as epoch seconds."""
    if not value:
        return None
    text = str(value).replace("T", " ").split("+")[0].rstrip("Z")
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S"
    return datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp()


@dataclass
class TaskRow:
    task_id: str  # without the task group's prefix
    map_index: int
    state: str
    scheduled: float | None
    queued: float | None
    start: float | None
    end: float | None
    try_number: int
    slot: float | None  # seconds its workload held a LocalExecutor worker slot
    parsed: float | None = None  # the task process had parsed the DAG file ("Worker startup parse complete")
    executing: float | None = None  # the operator's execute() began (the "Pre Execute" group ended)
    executed: float | None = None  # execute() returned ("Post Execute")

    @property
    def parse_seconds(self) -> float | None:
        return None if self.parsed is None or self.start is None else self.parsed - self.start

    @property
    def execute_seconds(self) -> float | None:
        return None if self.executing is None or self.executed is None else self.executed - self.executing

    @property
    def duration(self) -> float:
        return (self.end or 0.0) - (self.start or 0.0)

    @property
    def queue_wait(self) -> float | None:
        return None if self.queued is None or self.start is None else self.start - self.queued


@dataclass
class Node:
    """A task of the DAG; a mapped task's instances taken together (first queued, first start, last end)."""

    task_id: str
    rows: list[TaskRow]
    upstream: list[str]

    @property
    def scheduled(self) -> float | None:
        return min((r.scheduled for r in self.rows if r.scheduled is not None), default=None)

    @property
    def queued(self) -> float | None:
        return min((r.queued for r in self.rows if r.queued is not None), default=None)

    @property
    def start(self) -> float | None:
        return min((r.start for r in self.rows if r.start is not None), default=None)

    @property
    def end(self) -> float | None:
        return max((r.end for r in self.rows if r.end is not None), default=None)


@dataclass
class DagReport:
    run_id: str
    state: str
    triggered: float
    run_queued: float | None
    run_start: float | None
    run_end: float | None
    rows: list[TaskRow]
    nodes: dict[str, Node]
    cpu: CpuWindow
    statuses: dict[str, int]
    uploads_left: int
    read_set_ids: list[str] = field(default_factory=list)
    code_changed: bool = False  # the provider's files changed while the run ran

    @property
    def seconds(self) -> float:
        return (self.run_end or time.time()) - self.triggered

    def critical_path(self) -> list[Node]:
        """From the task that ended last, back through the upstream that ended last, to a root."""
        done = [n for n in self.nodes.values() if n.end is not None]
        if not done:
            return []
        path = [max(done, key=lambda n: n.end or 0.0)]
        while True:
            ups = [self.nodes[u] for u in path[-1].upstream if u in self.nodes and self.nodes[u].end is not None]
            if not ups:
                break
            path.append(max(ups, key=lambda n: n.end or 0.0))
        return path[::-1]


def workload_seconds(scheduler_log: Path) -> dict[str, float]:
    """Task instance id (no dashes) -> seconds its workload held a LocalExecutor worker slot."""
    found: dict[str, float] = {}
    if not scheduler_log.exists():
        return found
    for line in scheduler_log.read_text(errors="replace").splitlines():
        if _WORKLOAD_FINISHED in line:
            duration, workload = _WORKLOAD_DURATION.search(line), _WORKLOAD_ID.search(line)
            if duration and workload:
                found[workload.group(1).replace("-", "")] = float(duration.group(1))
    return found


def log_phases(path: Path) -> tuple[float | None, float | None, float | None]:
    """From a task's log (JSON lines): when the DAG file was parsed, when execute() began and when it returned."""
    parsed = executing = executed = None
    if not path.exists():
        return parsed, executing, executed
    for line in path.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or "timestamp" not in event:
            continue
        text, at = str(event.get("event", "")), _ts(str(event["timestamp"]))
        if text.startswith("Worker startup parse complete"):
            parsed = at
        elif text == "::endgroup::" and parsed is not None and executing is None:
            executing = at
        elif text == "::group::Post Execute":
            executed = at
    return parsed, executing, executed


def task_graph(deployment: Deployment) -> dict[str, list[str]]:
    """Task id -> its upstream task ids, from the REST API (the serialized DAG)."""
    upstream: dict[str, list[str]] = {}
    for task in deployment.api("GET", f"/api/v2/dags/{DAG_ID}/tasks")["tasks"]:
        upstream.setdefault(task["task_id"], [])
        for down in task.get("downstream_task_ids") or []:
            upstream.setdefault(down, []).append(task["task_id"])
    return upstream


def run_dag(
    deployment: Deployment, run_id: str, conf: dict[str, Any], timeout: float, graph: dict[str, list[str]]
) -> DagReport:
    store_id = conf["sequence_store_id"]
    code_before = code_fingerprint()
    with CpuWindow(deployment) as window:
        triggered = time.time()
        deployment.trigger(DAG_ID, run_id, conf)
        state = deployment.wait_run(DAG_ID, run_id, timeout)
    code_changed = code_fingerprint() != code_before
    return read_run(deployment, run_id, store_id, state, triggered, window, graph, code_changed)


def read_run(
    deployment: Deployment,
    run_id: str,
    store_id: str,
    state: str,
    triggered: float,
    window: CpuWindow,
    graph: dict[str, list[str]],
    code_changed: bool = False,
) -> DagReport:
    """What a finished run did, from the metadata database, its task logs, the scheduler's log and the store."""
    (queued_at, run_start, run_end), *_ = deployment.query(
        "SELECT queued_at, start_date, end_date FROM dag_run WHERE dag_id = ? AND run_id = ?", DAG_ID, run_id
    )
    columns = {row[1] for row in deployment.query("PRAGMA table_info(task_instance)")}
    scheduled_column = "scheduled_dttm" if "scheduled_dttm" in columns else "NULL"
    found = deployment.query(
        f"SELECT task_id, map_index, state, {scheduled_column}, queued_dttm, start_date, end_date, try_number, id "
        "FROM task_instance WHERE dag_id = ? AND run_id = ?",
        DAG_ID,
        run_id,
    )
    # The supervisor logs a workload's end once it has noticed its process exit: up to a heartbeat later.
    workloads = {str(row[-1]).replace("-", "") for row in found}
    deadline = time.monotonic() + 15
    slots = workload_seconds(deployment.log_path("scheduler"))
    while not workloads <= set(slots) and time.monotonic() < deadline:
        time.sleep(0.5)
        slots = workload_seconds(deployment.log_path("scheduler"))
    logs = deployment.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
    rows = []
    for task_id, map_index, ti_state, scheduled, queued, start, end, try_number, ti_id in found:
        mapped = f"map_index={map_index}/" if int(map_index) >= 0 else ""
        parsed, executing, executed = log_phases(logs / f"task_id={task_id}" / f"{mapped}attempt={try_number or 1}.log")
        rows.append(
            TaskRow(
                task_id=task_id.rsplit(".", 1)[-1],
                map_index=int(map_index),
                state=str(ti_state),
                scheduled=_ts(scheduled),
                queued=_ts(queued),
                start=_ts(start),
                end=_ts(end),
                try_number=int(try_number or 0),
                slot=slots.get(str(ti_id).replace("-", "")),
                parsed=parsed,
                executing=executing,
                executed=executed,
            )
        )
    short = {task_id: task_id.rsplit(".", 1)[-1] for task_id in graph}
    nodes = {
        short[task_id]: Node(short[task_id], [r for r in rows if r.task_id == short[task_id]], [short[u] for u in ups])
        for task_id, ups in graph.items()
    }
    statuses, uploads_left, ids = store_outcome(deployment.client(), store_id)
    return DagReport(
        run_id=run_id,
        state=state,
        triggered=triggered,
        run_queued=_ts(queued_at),
        run_start=_ts(run_start),
        run_end=_ts(run_end),
        rows=rows,
        nodes=nodes,
        cpu=window,
        statuses=statuses,
        uploads_left=uploads_left,
        read_set_ids=ids,
        code_changed=code_changed,
    )


def slot_gaps(rows: Sequence[TaskRow], slots: int) -> list[float]:
    """Laid on ``slots`` worker slots in start order (each to the slot free the longest), the idle time of a slot
    between the end of one mapped task and the start of the next: the scheduler's latency between them."""
    free: list[float] = []
    gaps: list[float] = []
    for row in sorted((r for r in rows if r.start is not None and r.end is not None), key=lambda r: r.start or 0.0):
        start, end = row.start or 0.0, row.end or 0.0
        ready = [t for t in free if t <= start]
        if ready:
            earliest = min(ready)
            gaps.append(start - earliest)
            free.remove(earliest)
        elif len(free) >= slots:
            free.remove(min(free))
        free.append(end)
    return gaps


def _median(values: Iterable[float | None]) -> float:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else float("nan")


def _rel(value: float | None, zero: float) -> str:
    return f"{value - zero:7.1f}" if value is not None else f"{'-':>7}"


def _gap(later: float | None, earlier: float | None) -> str:
    return f"{later - earlier:7.2f}" if later is not None and earlier is not None else f"{'-':>7}"


def print_dag_report(report: DagReport, parallelism: int, max_tasks: int) -> None:
    zero = report.triggered
    print(f"\nDAG run {report.run_id}: {report.state}; times in s from the trigger (REST API POST)")
    print(
        f"  run queued {_rel(report.run_queued, zero).strip()}, started {_rel(report.run_start, zero).strip()}, "
        f"ended {_rel(report.run_end, zero).strip()}"
    )
    print(
        f"\n  {'task':<13}{'TIs':>4}{'sched':>8}{'queued':>8}{'start':>8}{'end':>8}{'run s':>8}{'q->run':>8}"
        f"{'parse':>7}{'exec':>7}{'slot s':>8}{'tries':>6}  state"
    )
    order = sorted(report.nodes.values(), key=lambda n: (n.start or float("inf"), n.task_id))
    for node in order:
        rows = node.rows
        states = ",".join(sorted({r.state for r in rows})) or "-"
        queue_wait = _median(r.queue_wait for r in rows)
        tries = max((r.try_number for r in rows), default=0)
        slot = _median(r.slot for r in rows)
        running = (node.end or 0.0) - (node.start or 0.0) if node.start and node.end else float("nan")
        print(
            f"  {node.task_id:<13}{len(rows):>4}{_rel(node.scheduled, zero)} {_rel(node.queued, zero)} "
            f"{_rel(node.start, zero)} {_rel(node.end, zero)} {running:7.2f} {queue_wait:7.2f}"
            f"{_median(r.parse_seconds for r in rows):7.2f}{_median(r.execute_seconds for r in rows):7.2f}"
            f"{slot:8.2f}{tries:>6}  {states}"
        )
    print(
        "  (a mapped task's row: first scheduled / queued / start, last end, span; q->run, parse, exec and slot "
        "are medians. parse: start -> DAG file parsed in the task process; exec: the operator's execute(), from "
        "the task log; slot: how long the workload held a LocalExecutor worker, from the scheduler's log)"
    )
    rows = [r for r in report.rows if r.start is not None and r.end is not None]
    running = sum(r.duration for r in rows)
    parse = sum(r.parse_seconds or 0.0 for r in rows)
    execute = sum(r.execute_seconds or 0.0 for r in rows)
    held = sum(r.slot or 0.0 for r in rows)
    wall = (report.run_end or 0.0) - (report.run_start or 0.0)
    print(
        f"  worker slots: {parallelism} x {wall:.1f} s of run = {parallelism * wall:.0f} slot-s; the {len(rows)} task "
        f"instances held them {held:.0f} s: execute() {execute:.0f} s, DAG parse {parse:.0f} s, rest of the "
        f"running time (task start, XCom, state) {running - parse - execute:.0f} s, before start and after end "
        f"(process start, exit noticed) {held - running:.0f} s"
    )

    path = report.critical_path()
    print("\n  critical path (each task after the upstream that ended last):")
    print(f"  {'task':<13}{'ready':>8}{'->sched':>8}{'->queue':>8}{'->start':>8}{'running':>8}")
    totals = {"scheduler": 0.0, "queue": 0.0, "running": 0.0}
    previous_end = report.run_start
    for node in path:
        ready = previous_end
        sched_at = node.scheduled or node.queued
        to_sched = (sched_at - ready) if sched_at is not None and ready is not None else 0.0
        to_queue = (node.queued - sched_at) if node.queued is not None and sched_at is not None else 0.0
        to_start = (node.start - node.queued) if node.start is not None and node.queued is not None else 0.0
        running = (node.end - node.start) if node.end is not None and node.start is not None else 0.0
        totals["scheduler"] += to_sched + to_queue
        totals["queue"] += to_start
        totals["running"] += running
        print(f"  {node.task_id:<13}{_rel(ready, zero)} {to_sched:7.2f} {to_queue:7.2f} {to_start:7.2f} {running:7.2f}")
        previous_end = node.end
    before = (report.run_start or zero) - zero
    after = (report.run_end or 0.0) - (path[-1].end or 0.0) if path and report.run_end else 0.0
    print(
        f"  = trigger to run start {before:.1f} s + scheduler (upstream done -> queued) {totals['scheduler']:.1f} s "
        f"+ queued -> running {totals['queue']:.1f} s + running {totals['running']:.1f} s + last task -> run "
        f"success {after:.1f} s = {before + sum(totals.values()) + after:.1f} s"
    )

    digests = report.nodes.get(DIGEST_TASK)
    if digests and digests.rows:
        print(
            f"\n  mapped {DIGEST_TASK}: {len(digests.rows)} task instances, span "
            f"{(digests.end or 0.0) - (digests.start or 0.0):.1f} s, running "
            f"{min(r.duration for r in digests.rows):.1f} to {max(r.duration for r in digests.rows):.1f} s per task"
        )
    uploads = report.nodes.get(UPLOAD_TASK)
    if uploads and uploads.rows:
        rows = uploads.rows
        span = (uploads.end or 0.0) - (uploads.start or 0.0)
        busy = sum(r.duration for r in rows)
        slot_busy = sum(r.slot or 0.0 for r in rows)
        gaps = slot_gaps(rows, parallelism)
        print(
            f"\n  mapped {UPLOAD_TASK}: {len(rows)} task instances (budget {max_tasks}), span {span:.1f} s; per task: "
            f"running median {_median(r.duration for r in rows):.2f} s (max {max(r.duration for r in rows):.2f}), "
            f"queued -> running median {_median(r.queue_wait for r in rows):.2f} s "
            f"(max {max((r.queue_wait or 0.0) for r in rows):.2f}), slot median {_median(r.slot for r in rows):.2f} s"
        )
        print(
            f"  {parallelism} slots x span = {parallelism * span:.0f} slot-s: tasks running {busy:.0f} s "
            f"({busy / max(parallelism * span, 1e-9):.0%}), workloads holding a slot {slot_busy:.0f} s; a slot's idle "
            f"time between one mapped task's end and the next one's start: median {_median(gaps):.2f} s, "
            f"max {max(gaps, default=0.0):.2f} s over {len(gaps)} hand-overs"
        )


# -- reporting across sizes --------------------------------------------------------------------------------------


@dataclass
class SizePoint:
    """One size: its DAG runs and sequential uploads (one of each per round)."""

    file_mib: int
    samples: int
    total_bytes: int
    dags: list[DagReport] = field(default_factory=list)
    references: list[ReferenceReport] = field(default_factory=list)

    @property
    def counted(self) -> list[DagReport]:
        """The runs that count: successful, on one version of the code (all of them if none is)."""
        clean = [d for d in self.dags if d.state == "success" and not d.code_changed]
        return clean or self.dags

    @property
    def dag_seconds(self) -> float:
        return _median(d.seconds for d in self.counted)

    @property
    def reference_seconds(self) -> float:
        return _median(r.seconds for r in self.references)

    @property
    def dag_cpu(self) -> float:
        return _median(d.cpu.ours for d in self.counted)

    @property
    def reference_cpu(self) -> float:
        return _median(r.cpu.ours for r in self.references)

    @property
    def ratio(self) -> float:
        return self.dag_seconds / self.reference_seconds

    def others(self, windows: Iterable[CpuWindow]) -> float:
        """Median cores other jobs used while these ran."""
        return _median(w.others / max(w.wall, 1e-9) for w in windows)


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least squares ``y = a + b x``."""
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    return mean_y - slope * mean_x, slope


def print_sizes(points: Sequence[SizePoint]) -> None:
    print(
        f"\n{'MiB/file':>9}{'samples':>8}{'GB':>7}{'rounds':>7}{'run s':>8}{'sequential s':>14}{'ratio':>7}"
        f"{'run MB/s':>10}{'seq MB/s':>10}{'CPU s run/seq':>15}{'other jobs (cores) run/seq':>28}"
    )
    for p in points:
        print(
            f"{p.file_mib:>9}{p.samples:>8}{p.total_bytes / 1e9:>7.2f}{len(p.counted):>7}{p.dag_seconds:>8.1f}"
            f"{p.reference_seconds:>14.1f}{p.ratio:>6.2f}x{p.total_bytes / p.dag_seconds / MB:>10.0f}"
            f"{p.total_bytes / p.reference_seconds / MB:>10.0f}{p.dag_cpu:>9.0f} / {p.reference_cpu:<4.0f}"
            f"{p.others(d.cpu for d in p.counted):>16.2f} / {p.others(r.cpu for r in p.references):.2f}"
        )
        if len(p.dags) > 1:
            runs = ", ".join(f"{d.seconds:.1f}{'' if d in p.counted else ' (not counted)'}" for d in p.dags)
            sequential = ", ".join(f"{r.seconds:.1f}" for r in p.references)
            best = min(d.seconds for d in p.counted) / min(r.seconds for r in p.references)
            print(f"{'':>9} runs {runs} s; sequential {sequential} s; best run / best sequential {best:.2f}x")
    print(
        "  (medians over the rounds; a run that failed or straddled a change of the provider's files is not counted "
        "when another one is. CPU s: this benchmark's processes (emulator, Airflow and its task processes, this "
        "process); other jobs: cores the machine's other processes used meanwhile)"
    )
    if len({p.total_bytes for p in points}) < 2:
        print("  (one size of data: give --sizes with larger sizes to fit fixed and per-GB costs and find 1.0x)")
        return
    xs = [p.total_bytes / 1e9 for p in points]
    dag_a, dag_b = fit_line(xs, [p.dag_seconds for p in points])
    ref_a, ref_b = fit_line(xs, [p.reference_seconds for p in points])
    print(
        f"  fitted (least squares over the sizes): run = {dag_a:.1f} s {dag_b:+.2f} s/GB; "
        f"sequential = {ref_a:.1f} s {ref_b:+.2f} s/GB (GB of gzipped FASTQ uploaded)"
    )
    cpu_a, cpu_b = fit_line(xs, [p.dag_cpu for p in points])
    seq_cpu_a, seq_cpu_b = fit_line(xs, [p.reference_cpu for p in points])
    cores = os.cpu_count() or 1
    print(
        f"  CPU seconds, fitted: run = {cpu_a:.0f} {cpu_b:+.1f} /GB, sequential = {seq_cpu_a:.0f} "
        f"{seq_cpu_b:+.1f} /GB: on {cores} cores the run cannot take less than {cpu_a / cores:.0f} s "
        f"{cpu_b / cores:+.1f} s/GB whatever the scheduling"
    )
    samples = points[0].samples
    print("  where the run reaches the sequential script (wall-time fits, as measured on this machine):")
    print_crossings((dag_a, dag_b), (ref_a, ref_b), samples)
    # The run keeps every core busy while the script keeps about one: other jobs on a shared machine slow the run
    # more. Its CPU seconds do not depend on them: on an idle machine it can finish no sooner than CPU / cores.
    print(f"  ... and with the run at its CPU floor on {cores} idle cores (run = CPU / {cores}):")
    print_crossings((cpu_a / cores, cpu_b / cores), (ref_a, ref_b), samples)


def print_crossings(dag: tuple[float, float], reference: tuple[float, float], samples: int) -> None:
    for target in (1.0, TARGET_RATIO):
        at = crossing(dag, reference, target)
        if at is None:
            print(
                f"    {target:.1f}x: not reached at any size (the run's s/GB are not below {target:.1f}x the script's)"
            )
        elif at <= 0:
            print(f"    at most {target:.1f}x at every size")
        else:
            per_file = at * 1e9 / (2 * samples) / MIB
            print(f"    at most {target:.1f}x from {at:.1f} GB on ({samples} samples x 2 files of {per_file:.0f} MiB)")


def crossing(dag: tuple[float, float], reference: tuple[float, float], ratio: float) -> float | None:
    """The size x where ``dag(x) = ratio * reference(x)`` for lines ``a + b x``; None when never above it."""
    (dag_a, dag_b), (ref_a, ref_b) = dag, reference
    if ratio * ref_b <= dag_b:
        return None
    return (dag_a - ratio * ref_a) / (ratio * ref_b - dag_b)


# -- the digest of a pair ----------------------------------------------------------------------------------------


@dataclass
class DigestTiming:
    seconds: float
    cpu: float
    window: CpuWindow
    others: float = 0.0  # CPU seconds other jobs on the machine used meanwhile


def bench_digest_pair(workdir: Path, size_mb: int, repeats: int, concurrency: int, quiet_wait: float) -> None:
    """The run's digest of one pair (both sources in a thread pool, as OmicsDigestRunSourcesOperator does) against
    the digest of its larger source alone, the median of ``repeats`` alternating runs."""
    folder = workdir / "digest"
    folder.mkdir(parents=True, exist_ok=True)
    # Airflow is imported in this process only here: give it a home of its own, away from the staged files.
    os.environ["AIRFLOW_HOME"] = str(workdir / "digest-airflow-home")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__OMICS__ALLOWED_LOCAL_ROOTS"] = str(folder)
    read1, read2 = folder / f"pair-{size_mb}MB_R1.fastq.gz", folder / f"pair-{size_mb}MB_R2.fastq.gz"
    marker = folder / f"pair-{size_mb}MB.json"
    settings = {"version": CACHE_VERSION, "reads_per_block": READS_PER_BLOCK, "level": GZIP_LEVEL}
    known = json.loads(marker.read_text()) if marker.exists() else {}
    sizes = [read1.stat().st_size, read2.stat().st_size] if read1.exists() and read2.exists() else []
    if known.get("settings") != settings or known.get("sizes") != sizes:
        started = time.monotonic()
        size1, size2, uncompressed = write_pair(read1, read2, "pair", 10_001, uncompressed_bytes=size_mb * MB)
        known = {"settings": settings, "sizes": [size1, size2], "uncompressed": uncompressed}
        marker.write_text(json.dumps(known))
        print(f"  wrote the pair in {time.monotonic() - started:.0f} s", flush=True)
    manifest = write_manifest(folder / "manifest.csv", [Sample("D001", read1, read2)])

    from airflow_provider_omics.hooks.omics import OmicsHook
    from airflow_provider_omics.readsets.verify import digest_source
    from airflow_provider_omics.staging.manifests import validate_manifest
    from airflow_provider_omics.staging.sources import allow_lists

    quiet = logging.getLogger("bench_run.digest")
    for logger in (quiet, logging.getLogger("airflow_provider_omics")):
        logger.setLevel(logging.WARNING)
    hook = OmicsHook(aws_conn_id=None)
    _, planned = validate_manifest(str(manifest), source_factory=hook.staged_source, default_file_type="FASTQ")
    sources = planned[0].sources
    roots, prefixes = allow_lists(None, None)
    family = "MD5up"

    def digest(part_source: str) -> Any:
        return digest_source(hook, part_source, sources[part_source], family, roots, prefixes, quiet)

    def pair() -> dict[str, Any]:
        results: dict[str, Any] = {}

        def one(part_source: str) -> None:
            results[part_source] = digest(part_source)

        with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="omics-digest") as pool:
            list(pool.map(one, sorted(sources)))
        return results

    single: list[DigestTiming] = []
    both: list[DigestTiming] = []
    warm_page_cache([read1, read2])
    digests = {s: digest(s) for s in sorted(sources)}  # a warm-up, and what the timed runs must give again
    paths = {"SOURCE1": read1, "SOURCE2": read2}
    larger = max(sorted(sources), key=lambda s: paths[s].stat().st_size)

    def timed(run: Callable[[], object]) -> DigestTiming:
        with CpuWindow() as window:
            cpu, started = time.process_time(), time.perf_counter()
            run()
            timing = DigestTiming(time.perf_counter() - started, time.process_time() - cpu, window)
        timing.others = window.others
        return timing

    if quiet_wait > 0:
        print(f"  {wait_for_quiet(None, quiet_wait)}", flush=True)
    for number in range(repeats):
        runs: list[tuple[list[DigestTiming], Callable[[], object]]] = [(single, lambda: digest(larger)), (both, pair)]
        for bucket, run in runs if number % 2 == 0 else runs[::-1]:
            bucket.append(timed(run))
    if pair() != digests:
        raise RuntimeError("the pair's digests differ from the single digests")

    uncompressed = int(known["uncompressed"])
    cores = os.cpu_count() or 1
    single_s, pair_s = _median(t.seconds for t in single), _median(t.seconds for t in both)
    single_cpu, pair_cpu = _median(t.cpu for t in single), _median(t.cpu for t in both)
    ratio = pair_s / single_s
    print(
        f"\ndigest of a pair: 2 x {uncompressed / MB:.0f} MB uncompressed FASTQ ({read1.stat().st_size / MB:.0f} + "
        f"{read2.stat().st_size / MB:.0f} MB gzip); {family}; "
        f"digest_source in a ThreadPoolExecutor of {concurrency}; median of {repeats}, alternating"
    )
    print(
        f"  larger source alone ({larger}): {single_s:.2f} s ({uncompressed / single_s / MB:.0f} MB/s), "
        f"{single_cpu:.2f} CPU s ({single_cpu / single_s:.2f} cores busy)"
    )
    print(
        f"  both sources at once:        {pair_s:.2f} s ({2 * uncompressed / pair_s / MB:.0f} MB/s), "
        f"{pair_cpu:.2f} CPU s ({pair_cpu / pair_s:.2f} cores busy)"
    )
    floor = max(single_s, pair_cpu / cores) / single_s
    print(
        f"  pair / larger source: {ratio:.2f}x (target <= {TARGET_DIGEST_RATIO:.2f}x: "
        f"{'met' if ratio <= TARGET_DIGEST_RATIO else 'NOT met'}); all single runs "
        f"{', '.join(f'{t.seconds:.2f}' for t in single)} s, pair runs {', '.join(f'{t.seconds:.2f}' for t in both)} s"
    )
    others = [t.others / t.seconds for t in single + both]
    print(f"  other jobs on the machine meanwhile: {_median(others):.2f} cores median, {max(others):.2f} at most")
    print(
        f"  {cores} cores: the pair's {pair_cpu:.2f} CPU s cannot take less than {pair_cpu / cores:.2f} s of wall "
        f"time here, so the best ratio this machine allows is {floor:.2f}x (one source after the other: 2.00x)"
    )


# -- main --------------------------------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[int]:
    return [int(item) for item in text.split(",") if item.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--samples", type=int, default=48, help="paired samples in the manifest (default 48)")
    parser.add_argument(
        "--file-mib", type=int, default=None, help="MiB per gzipped FASTQ file, in steps of about 2 MiB (default 20)"
    )
    parser.add_argument(
        "--sizes", default="", help="more MiB-per-file sizes to measure after --file-mib, comma-separated (e.g. 80,200)"
    )
    parser.add_argument("--max-tasks", type=int, default=32, help="the run's task budget (the form's default, 32)")
    parser.add_argument(
        "--part-size-mib", type=int, default=None, help="part size (the form's default, 100; with --quotas 1)"
    )
    parser.add_argument(
        "--max-concurrency", type=int, default=4, help="parts in flight per upload task, and the reference's (4)"
    )
    parser.add_argument("--parallelism", type=int, default=4, help="LocalExecutor worker slots (default 4)")
    parser.add_argument("--poll-seconds", type=float, default=0.5, help="reference: seconds between ACTIVE polls")
    parser.add_argument("--workdir", default=None, help="where the samples, AIRFLOW_HOME and the logs live")
    parser.add_argument("--run-timeout", type=float, default=3600, help="seconds one DAG run may take")
    parser.add_argument("--keep", action="store_true", help="keep AIRFLOW_HOME (database, task logs)")
    parser.add_argument(
        "--airflow-setting",
        action="append",
        default=[],
        metavar="SECTION__KEY=VALUE",
        help="an Airflow setting for every component, e.g. WORKERS__MIN_HEARTBEAT_INTERVAL=1 (repeatable)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="run and sequential upload per size, alternating (1)")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=300,
        help="before each timed phase, wait at most this many seconds for other jobs to leave the CPU (300; 0: no)",
    )
    parser.add_argument(
        "--no-warmup", action="store_true", help="skip the uncounted one-sample run that warms the deployment up"
    )
    parser.add_argument(
        "--quotas",
        action="store_true",
        help="the run under the service's API quotas (the emulator's --quotas default) instead of the reference: "
        "failed samples, the part rate, throttled calls, the ratio to the quota floor; files of 50 parts of 1 MiB "
        "unless --file-mib and --part-size-mib say otherwise",
    )
    parser.add_argument(
        "--quota-time-scale", type=float, default=1.0, help="with --quotas: every quota this many times higher (1)"
    )
    parser.add_argument(
        "--concurrent", action="store_true", help="with --quotas: also two runs of two manifests into one store at once"
    )
    parser.add_argument(
        "--unpaced",
        action="store_true",
        help="with --quotas: the connection turns the provider's pacing off (omics_quotas off), botocore retries",
    )
    parser.add_argument(
        "--digest-tasks",
        default="",
        help="instead: the run's digest mapped over these task counts, one source at a time each (e.g. 1,2)",
    )
    parser.add_argument("--digest-only", action="store_true", help="only the digest of a pair")
    parser.add_argument("--skip-digest", action="store_true", help="leave the digest of a pair out")
    parser.add_argument("--digest-mb", type=int, default=500, help="uncompressed MB per source of the pair (500)")
    parser.add_argument("--digest-repeat", type=int, default=5, help="runs of each digest; the median counts (5)")
    parser.add_argument("--digest-concurrency", type=int, default=4, help="the digest task's threads (default 4)")
    args = parser.parse_args(argv)
    if args.file_mib is None:
        args.file_mib = QUOTA_FILE_MIB if args.quotas else 20
    if args.part_size_mib is None:
        args.part_size_mib = 1 if args.quotas else 100
    if (args.concurrent or args.unpaced or args.quota_time_scale != 1.0) and not args.quotas:
        parser.error("--concurrent, --unpaced and --quota-time-scale go with --quotas")
    if args.digest_only and args.skip_digest:
        parser.error("--digest-only and --skip-digest exclude each other")
    if any("=" not in item for item in args.airflow_setting):
        parser.error("--airflow-setting takes SECTION__KEY=VALUE")

    workdir = Path(args.workdir or Path(tempfile.gettempdir()) / "omics-bench-run")
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"{os.cpu_count()} CPUs; workdir {workdir}; code: {code_version()}", flush=True)
    if args.digest_tasks:
        run_digest_scaling(args, workdir)
    elif args.quotas:
        run_quota_benchmark(args, workdir)
    elif not args.digest_only:
        run_benchmark(args, workdir)
    if not args.skip_digest:
        bench_digest_pair(workdir, args.digest_mb, args.digest_repeat, args.digest_concurrency, args.quiet_wait)
    print(f"\nbenchmark wall time: {time.monotonic() - started:.0f} s; code at the end: {code_version()}")
    return 0


def run_benchmark(args: argparse.Namespace, workdir: Path) -> None:
    sizes = list(dict.fromkeys([args.file_mib, *parse_sizes(args.sizes)]))
    staging = workdir / "staging"
    print(
        f"{args.samples} paired samples, sizes {', '.join(f'{s} MiB' for s in sizes)} per file; budget "
        f"{args.max_tasks} upload tasks, {args.part_size_mib} MiB parts, {args.max_concurrency} in flight per task; "
        f"LocalExecutor, parallelism {args.parallelism}"
        + (f"; Airflow settings {' '.join(args.airflow_setting)}" if args.airflow_setting else ""),
        flush=True,
    )
    sample_sets = {}
    for file_mib in sizes:
        sample_sets[file_mib] = make_samples(staging, args.samples, file_mib)

    settings = dict(item.split("=", 1) for item in args.airflow_setting)
    deployment = Deployment(workdir, args.parallelism, staging, settings)
    points: list[SizePoint] = []
    try:
        deployment.start_all()
        client = deployment.client()
        graph = task_graph(deployment)
        if not args.no_warmup:
            # The first task of a fresh deployment pays seconds of one-off start-up that a deployment in service
            # has paid long before: one sample through the DAG first, not counted.
            warm = write_manifest(staging / "manifest-warmup.csv", sample_sets[sizes[0]][:1])
            store = client.create_sequence_store(name="bench-run-warmup")["id"]
            conf = dag_conf(args, store, warm)
            report = run_dag(deployment, f"bench_run_warmup_{int(time.time())}", conf, args.run_timeout, graph)
            print(f"  warm-up run (1 sample, not counted): {report.state} in {report.seconds:.1f} s", flush=True)
            deployment.drop_stored_parts(report.read_set_ids)
        for file_mib in sizes:
            samples = sample_sets[file_mib]
            point = SizePoint(file_mib, len(samples), sum(s.size for s in samples))
            points.append(point)
            print(
                f"\n== {len(samples)} samples x 2 x {file_mib} MiB ({point.total_bytes / 1e9:.2f} GB gzipped FASTQ)",
                flush=True,
            )
            manifest = write_manifest(staging / f"manifest-{file_mib}MiB-{len(samples)}.csv", samples)
            for round_number in range(1, args.rounds + 1):
                # Rounds alternate which goes first, so that drift on a shared machine hits both alike.
                order = ["sequential", "run"] if round_number % 2 else ["run", "sequential"]
                for phase in order:
                    warm_page_cache(p for s in samples for p in (s.read1, s.read2))
                    quiet = f"{wait_for_quiet(deployment, args.quiet_wait)}; " if args.quiet_wait > 0 else ""
                    store = client.create_sequence_store(name=f"bench-run-{phase}-{file_mib}-{round_number}")["id"]
                    if phase == "sequential":
                        reference = run_reference(
                            deployment,
                            store,
                            samples,
                            args.part_size_mib * MIB,
                            args.max_concurrency,
                            args.poll_seconds,
                        )
                        point.references.append(reference)
                        print(
                            f"  round {round_number} sequential (TransferManager + wait for ACTIVE): "
                            f"{reference.seconds:.1f} s; read sets {reference.statuses}; {quiet}"
                            f"{reference.cpu.describe()}",
                            flush=True,
                        )
                        deployment.drop_stored_parts(store_outcome(client, store)[2])
                    else:
                        run_id = f"bench_run_{len(samples)}x{file_mib}MiB_{round_number}_{int(time.time())}"
                        dag = run_dag(deployment, run_id, dag_conf(args, store, manifest), args.run_timeout, graph)
                        point.dags.append(dag)
                        changed = "; THE PROVIDER'S FILES CHANGED DURING THIS RUN" if dag.code_changed else ""
                        print(
                            f"  round {round_number} DAG run: {dag.state} in {dag.seconds:.1f} s; read sets "
                            f"{dag.statuses}, uploads left {dag.uploads_left}; {quiet}{dag.cpu.describe()}{changed}",
                            flush=True,
                        )
                        deployment.drop_stored_parts(dag.read_set_ids)
                        print_dag_report(dag, args.parallelism, args.max_tasks)
            report_point(point, args)
    finally:
        deployment.stop()
        if not args.keep:
            shutil.rmtree(deployment.home, ignore_errors=True)
    print_sizes(points)


# -- the mapped digest over more tasks ---------------------------------------------------------------------------


def run_digest_scaling(args: argparse.Namespace, workdir: Path) -> None:
    """The run's digest step mapped over 1, 2, ... tasks (``--digest-tasks``), each hashing one source at a time
    (``digest_concurrency`` 1), so that each task is one worker's core: the step's span (first digest start to last
    digest end) against the one-task span of the same run. No quotas; every run into a fresh store."""
    counts = parse_sizes(args.digest_tasks)
    staging = workdir / "staging"
    samples = make_samples(staging, args.samples, args.file_mib)
    manifest = write_manifest(staging / f"manifest-digest-{args.file_mib}MiB-{len(samples)}.csv", samples)
    print(
        f"the mapped digest: {len(samples)} paired samples x 2 x {args.file_mib} MiB gzipped FASTQ; "
        f"{', '.join(map(str, counts))} digest tasks, one source at a time each; LocalExecutor, parallelism "
        f"{args.parallelism}",
        flush=True,
    )
    settings = dict(item.split("=", 1) for item in args.airflow_setting)
    deployment = Deployment(workdir, args.parallelism, staging, settings)
    spans: dict[int, list[float]] = {}
    try:
        deployment.start_all()
        client = deployment.client()
        graph = task_graph(deployment)
        for round_number in range(1, args.rounds + 1):
            for tasks in counts if round_number % 2 else list(reversed(counts)):
                warm_page_cache(p for s in samples for p in (s.read1, s.read2))
                quiet = f"{wait_for_quiet(deployment, args.quiet_wait)}; " if args.quiet_wait > 0 else ""
                store = client.create_sequence_store(name=f"bench-digest-{tasks}-{round_number}")["id"]
                conf = {**dag_conf(args, store, manifest), "max_digest_tasks": tasks, "digest_concurrency": 1}
                run_id = f"bench_digest_{tasks}_{round_number}_{int(time.time())}"
                report = run_dag(deployment, run_id, conf, args.run_timeout, graph)
                rows = [r for r in report.rows if r.task_id == DIGEST_TASK and r.start and r.end]
                span = max(r.end for r in rows if r.end) - min(r.start for r in rows if r.start) if rows else 0.0
                spans.setdefault(tasks, []).append(span)
                print(
                    f"  round {round_number}, {tasks} digest task(s): run {report.state} in {report.seconds:.1f} s, "
                    f"read sets {report.statuses}; {len(rows)} digest tasks, span {span:.1f} s (running "
                    f"{', '.join(f'{r.duration:.1f}' for r in sorted(rows, key=lambda r: r.map_index))} s); "
                    f"{quiet}{report.cpu.describe()}",
                    flush=True,
                )
                deployment.drop_stored_parts(report.read_set_ids)
    finally:
        deployment.stop()
        if not args.keep:
            shutil.rmtree(deployment.home, ignore_errors=True)
    base = _median(spans[counts[0]])
    uncompressed = sum(uncompressed_size(path) for sample in samples for path in (sample.read1, sample.read2))
    print("\n== the digest step's span by digest tasks (median of rounds)")
    for tasks in counts:
        span = _median(spans[tasks])
        print(
            f"  {tasks:3} task(s): {span:6.1f} s, {base / max(span, 1e-9):.2f}x the {counts[0]}-task span; about "
            f"{uncompressed / max(span, 1e-9) / 1e6:.0f} MB/s of FASTQ hashed"
        )


# -- under the service's quotas -------------------------------------------------------------------------------


def quota_floor(calls: dict[str, dict[str, int]], scale: float) -> float:
    """The seconds the quotas force on the calls a run made that the service admitted: the largest of creates at
    1 TPS, completes at 1 TPS and parts at 10 TPS, plus one create and one complete (the first part follows a
    create; the last complete follows the last part)."""

    def admitted(operation: str) -> int:
        counts = calls.get(operation, {"calls": 0, "throttled": 0})
        return counts["calls"] - counts["throttled"]

    create, complete, part = (
        SERVICE_QUOTAS[op] * scale
        for op in ("CreateMultipartReadSetUpload", "CompleteMultipartReadSetUpload", "UploadReadSetPart")
    )
    spans = (
        admitted("CreateMultipartReadSetUpload") / create,
        admitted("CompleteMultipartReadSetUpload") / complete,
        admitted("UploadReadSetPart") / part,
    )
    return max(spans) + 1 / create + 1 / complete


def print_quota_report(
    label: str, reports: Sequence[DagReport], samples: int, calls: dict[str, dict[str, int]], scale: float
) -> float:
    """Print a run's (or concurrent runs') outcome under the quotas; returns the ratio to the quota floor."""
    statuses: dict[str, int] = {}
    for report in reports:
        for status, count in report.statuses.items():
            statuses[status] = max(statuses.get(status, 0), count)  # runs into one store see the same read sets
    active = statuses.get("ACTIVE", 0)
    seconds = max(r.run_end or time.time() for r in reports) - min(r.triggered for r in reports)
    floor = quota_floor(calls, scale)
    uploads = [row for r in reports for row in r.rows if row.task_id == UPLOAD_TASK and row.start and row.end]
    parts = calls.get("UploadReadSetPart", {"calls": 0, "throttled": 0})
    admitted_parts = parts["calls"] - parts["throttled"]
    span = (max(r.end for r in uploads if r.end) - min(r.start for r in uploads if r.start)) if uploads else 0.0
    rate = admitted_parts / span if span else 0.0
    part_quota = SERVICE_QUOTAS["UploadReadSetPart"] * scale
    print(f"\n== {label}")
    print(f"  runs: {', '.join(f'{r.run_id} {r.state}' for r in reports)}; read sets {statuses}")
    print(f"  failed samples: {samples - active}")
    print(
        f"  part rate: {admitted_parts} parts in {span:.1f} s of upload tasks = {rate:.2f} parts/s against the "
        f"quota's {part_quota:g}/s ({rate / part_quota:.2f} of it)"
    )
    print("  calls per operation (throttled):")
    for operation, counts in calls.items():
        print(f"    {operation:34} {counts['calls']:6} ({counts['throttled']})")
    ratio = seconds / floor
    print(f"  run {seconds:.1f} s; quota floor {floor:.1f} s")
    print(f"  ratio to the quota floor: {ratio:.2f} (target at most {TARGET_QUOTA_RATIO})")
    return ratio


def run_quota_benchmark(args: argparse.Namespace, workdir: Path) -> None:
    """One run of ``--samples`` under the service's quotas and, with ``--concurrent``, two runs of two manifests
    (half the samples each) into one store at once."""
    scale = args.quota_time_scale
    staging = workdir / "staging"
    pacing = "the provider's pacing off" if args.unpaced else "paced"
    print(
        f"under the service's API quotas (time scale {scale:g}, {pacing}): {args.samples} paired samples x 2 x "
        f"{args.file_mib} MiB, {args.part_size_mib} MiB parts; budget {args.max_tasks} upload tasks, "
        f"{args.max_concurrency} in flight per task; LocalExecutor, parallelism {args.parallelism}",
        flush=True,
    )
    samples = make_samples(staging, args.samples, args.file_mib)
    settings = dict(item.split("=", 1) for item in args.airflow_setting)
    deployment = Deployment(
        workdir, args.parallelism, staging, settings, quota_time_scale=scale, paced=not args.unpaced
    )
    try:
        deployment.start_all()
        client = deployment.client()
        graph = task_graph(deployment)
        if not args.no_warmup:
            warm = write_manifest(staging / "manifest-warmup.csv", samples[:1])
            store = client.create_sequence_store(name="bench-quotas-warmup")["id"]
            report = run_dag(
                deployment,
                f"bench_quotas_warmup_{int(time.time())}",
                dag_conf(args, store, warm),
                args.run_timeout,
                graph,
            )
            print(f"  warm-up run (1 sample, not counted): {report.state} in {report.seconds:.1f} s", flush=True)
            deployment.drop_stored_parts(report.read_set_ids)
        warm_page_cache(p for s in samples for p in (s.read1, s.read2))
        if args.quiet_wait > 0:
            print(f"  {wait_for_quiet(deployment, args.quiet_wait)}", flush=True)
        # The store is created before the counts start: what is counted is the run's.
        store = client.create_sequence_store(name="bench-quotas")["id"]
        emulator_admin(deployment.endpoint_url, "quotas", {"reset_counts": True})
        manifest = write_manifest(staging / f"manifest-quotas-{len(samples)}.csv", samples)
        run_id = f"bench_quotas_{len(samples)}_{int(time.time())}"
        report = run_dag(deployment, run_id, dag_conf(args, store, manifest), args.run_timeout, graph)
        calls = emulator_admin(deployment.endpoint_url, "quotas")["counts"]
        print_dag_report(report, args.parallelism, args.max_tasks)
        print_quota_report(f"one run of {len(samples)} samples", [report], len(samples), calls, scale)
        deployment.drop_stored_parts(report.read_set_ids)
        if args.concurrent:
            halves = [samples[: len(samples) // 2], samples[len(samples) // 2 :]]
            store = client.create_sequence_store(name="bench-quotas-concurrent")["id"]
            emulator_admin(deployment.endpoint_url, "quotas", {"reset_counts": True})
            manifests = [write_manifest(staging / f"manifest-quotas-half-{i}.csv", h) for i, h in enumerate(halves)]
            run_ids = [f"bench_quotas_concurrent_{i}_{int(time.time())}" for i in range(2)]
            with CpuWindow(deployment) as window:
                triggered = time.time()
                for run_id, manifest in zip(run_ids, manifests, strict=True):
                    deployment.trigger(DAG_ID, run_id, dag_conf(args, store, manifest))
                states = [deployment.wait_run(DAG_ID, run_id, args.run_timeout) for run_id in run_ids]
            calls = emulator_admin(deployment.endpoint_url, "quotas")["counts"]
            reports = [
                read_run(deployment, run_id, store, state, triggered, window, graph)
                for run_id, state in zip(run_ids, states, strict=True)
            ]
            print_quota_report(
                f"two runs of {len(halves[0])} and {len(halves[1])} samples into one store at once",
                reports,
                len(samples),
                calls,
                scale,
            )
            deployment.drop_stored_parts(reports[0].read_set_ids)
    finally:
        deployment.stop()
        if not args.keep:
            shutil.rmtree(deployment.home, ignore_errors=True)


def dag_conf(args: argparse.Namespace, store_id: str, manifest: Path) -> dict[str, Any]:
    """The trigger form's params of omics_upload_sequencing_run."""
    return {
        "sequence_store_id": store_id,
        "manifest": str(manifest),
        "default_file_type": "FASTQ",
        "default_reference_arn": None,
        "part_size_mib": args.part_size_mib,
        "max_tasks": args.max_tasks,
        "max_concurrency": args.max_concurrency,
    }


def report_point(point: SizePoint, args: argparse.Namespace) -> None:
    reference = sorted(point.references, key=lambda r: r.seconds)[(len(point.references) - 1) // 2]
    print(
        f"\n  sequential reference (median round): {reference.seconds:.1f} s = uploads "
        f"(TransferManager.upload_read_set: create, parts, complete) {sum(reference.upload_seconds):.1f} s (median "
        f"{_median(reference.upload_seconds):.2f} s per sample) + waits for ACTIVE {sum(reference.wait_seconds):.1f} s "
        f"(median {_median(reference.wait_seconds):.2f} s, {reference.polls} polls every {args.poll_seconds} s); "
        f"this process {reference.own_cpu:.0f} CPU s"
    )
    instances = max(len(d.rows) for d in point.dags)
    states = ", ".join(sorted({d.state for d in point.counted}))
    ratio_met = point.ratio <= TARGET_RATIO
    bound = args.max_tasks + DIGEST_TASKS + TARGET_EXTRA_TASKS
    tis_met = instances <= bound
    print(
        f"  RESULT {point.samples} x 2 x {point.file_mib} MiB: run {point.dag_seconds:.1f} s ({states}) / sequential "
        f"{point.reference_seconds:.1f} s = {point.ratio:.2f}x (target <= {TARGET_RATIO:.1f}x: "
        f"{'met' if ratio_met else 'NOT met'}); task instances {instances}, budget {args.max_tasks} uploads + "
        f"{DIGEST_TASKS} digests + {TARGET_EXTRA_TASKS} = {bound} ({'met' if tis_met else 'NOT met'})"
    )


if __name__ == "__main__":
    sys.exit(main())
