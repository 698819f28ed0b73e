"""Import job against direct upload: the same paired FASTQ on S3 into one emulator, trigger to ACTIVE and CPU.

One paired gzipped FASTQ (``--size-mib`` in all, 1 GiB by default: two files of about 512 MiB, well-formed
records of :mod:`airflow_provider_omics.testing.samples` gzipped as repeated members, cached under
``--workdir``) is staged on moto's S3 server, which runs in its own process (``python -m moto.server``: inside
this process it would share the GIL and the CPU count with the worker being measured). One emulator CLI process,
started with ``--s3-endpoint-url`` on that server so that import jobs read the objects from it, serves every
measurement. Two paths, each a DAG run with ``dag.test()`` in this process, each into a fresh sequence store:

- ``upload``: the task group ``upload_read_set`` (split, create, the mapped part uploads reading S3 ranges
  through the source connection, complete, wait for ACTIVE, the digest of the sources and verify);
- ``import``: ``OmicsStartReadSetImportJobOperator`` (checks, StartReadSetImportJob, wait for the job; the
  emulator reads the objects from S3 and checks the read set as after an upload).

Per run: the seconds from the trigger (the ``dag.test()`` call) until the worker saw the read set ACTIVE (the end
of ``wait_active``; of the import task, whose job is COMPLETED only once its read sets are ACTIVE), the whole
run, the CPU seconds of this process (the worker: ``getrusage`` of itself and of its children, before and
after), and those of the emulator and of moto (``psutil``), which show where the byte work went. Both waits poll
every ``--waiter-delay`` seconds. Each round runs both paths, in alternating order, after a warm-up run of each
on a tiny pair (imports, first database writes). The table shows medians and the ratios import / upload.

dag.test() runs the tasks one after another in this process, so the mapped part uploads run one after the
other, each with ``--max-concurrency`` parts in flight; ``--max-tasks`` 2 gives one task per source.

    .venv/bin/python benchmarks/bench_import.py                     # 2 x 512 MiB, 3 rounds
    .venv/bin/python benchmarks/bench_import.py --size-mib 256 --repeats 1
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from airflow_provider_omics.testing.samples import fastq_records

MIB = 1024 * 1024
MB = 1_000_000
REGION = "us-east-1"
OMICS_CONN = "bench_omics"
S3_CONN = "bench_s3"
BUCKET = "bench-import"
ROLE_ARN = "arn:aws:iam::123456789012:role/omics-import"
UPLOAD_DAG = "bench_upload_read_set"
IMPORT_DAG = "bench_import_read_set"
# One block of records per mate (about 4 MiB of FASTQ), gzipped once and written as many members as the size
# needs: both mates then hold the same number of records, as the emulator's pair check wants.
READS_PER_BLOCK = 13_000
GZIP_LEVEL = 6
CACHE_VERSION = 1
# This VM hands freed memory back to its host a couple of seconds after it is freed; a run that starts during
# that is slower whatever it does (see bench_upload.py). Each timed run waits this long first.
SETTLE_SECONDS = 3.0


# -- the sample ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    read1: Path
    read2: Path
    uncompressed: int

    @property
    def size(self) -> int:
        return self.read1.stat().st_size + self.read2.stat().st_size


def write_pair(folder: Path, size: int, prefix: str = "bench") -> Pair:
    """A paired gzipped FASTQ of about ``size`` bytes in all, reused when the cache index matches."""
    folder.mkdir(parents=True, exist_ok=True)
    index_path = folder / "index.json"
    read1, read2 = folder / f"{prefix}_R1.fastq.gz", folder / f"{prefix}_R2.fastq.gz"
    settings = {"version": CACHE_VERSION, "reads": READS_PER_BLOCK, "level": GZIP_LEVEL, "size": size}
    if index_path.exists():
        index = json.loads(index_path.read_text())
        sizes = [index.get("read1"), index.get("read2")]
        present = all(p.exists() for p in (read1, read2))
        if index.get("settings") == settings and present and sizes == [read1.stat().st_size, read2.stat().st_size]:
            return Pair(read1, read2, int(index["uncompressed"]))
    blocks = [fastq_records(READS_PER_BLOCK, seed=mate, prefix=prefix, mate=mate) for mate in (1, 2)]
    members = [gzip.compress(block, compresslevel=GZIP_LEVEL, mtime=0) for block in blocks]
    count = max(1, round(size / 2 / len(members[0])))
    for path, member in zip((read1, read2), members, strict=True):
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as out:
            for _ in range(count):
                out.write(member)
        tmp.replace(path)
    uncompressed = count * (len(blocks[0]) + len(blocks[1]))
    index = {
        "settings": settings,
        "read1": read1.stat().st_size,
        "read2": read2.stat().st_size,
        "uncompressed": uncompressed,
    }
    index_path.write_text(json.dumps(index))
    return Pair(read1, read2, uncompressed)


def write_tiny_pair(folder: Path) -> Pair:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"tiny_R{mate}.fastq.gz" for mate in (1, 2)]
    for mate, path in enumerate(paths, start=1):
        path.write_bytes(gzip.compress(fastq_records(200, seed=mate, prefix="tiny", mate=mate), mtime=0))
    return Pair(paths[0], paths[1], 0)


# -- the processes ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def aws_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION})
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        env.pop(var, None)
    return env


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def worker_cpu() -> float:
    """CPU seconds of this process and of its waited-for children (dag.test() runs the tasks in this process)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Service:
    """A server in its own process; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, proc: subprocess.Popen[str], endpoint_url: str) -> None:
        self.proc = proc
        self.endpoint_url = endpoint_url

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return process_cpu(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_moto(log: Path, timeout: float = 60) -> Service:
    """moto's S3 server (``python -m moto.server``, werkzeug, threaded) on a free port."""
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=aws_env(),
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto's server exited ({proc.returncode}); see {log}")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                return Service(proc, url)
        except urllib.error.HTTPError:
            return Service(proc, url)  # it answers
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"moto's server did not answer within {timeout} s; see {log}")


def start_emulator(data_dir: Path, s3_endpoint_url: str, import_job_delay: float) -> Service:
    """The emulator CLI, its import jobs reading from ``s3_endpoint_url``, read sets checked at once."""
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "airflow_provider_omics.testing.emulator", "--port", "0"),
            *("--data-dir", str(data_dir), "--activation-delay", "0"),
            *("--import-job-delay", str(import_job_delay), "--s3-endpoint-url", s3_endpoint_url),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=aws_env(),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the emulator did not start: {line!r}")
    return Service(proc, line.rsplit(" ", 1)[-1].strip())


def s3_client(endpoint_url: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(s3={"addressing_style": "path"}),
    )


def stage(client: Any, pair: Pair, prefix: str) -> list[str]:
    """Put both files on S3 (single PUTs); returns their URIs."""
    uris = []
    for path in (pair.read1, pair.read2):
        key = f"{prefix}/{path.name}"
        with open(path, "rb") as body:
            client.put_object(Bucket=BUCKET, Key=key, Body=body)
        uris.append(f"s3://{BUCKET}/{key}")
    return uris


# -- Airflow ---------------------------------------------------------------------------------------------------


def configure_airflow(home: Path, omics_url: str, s3_url: str) -> None:
    """A private AIRFLOW_HOME on sqlite and the two connections; before Airflow is imported."""
    shutil.rmtree(home, ignore_errors=True)
    (home / "dags").mkdir(parents=True)
    os.environ.update(aws_env())
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
            f"AIRFLOW_CONN_{OMICS_CONN.upper()}": json.dumps(
                {"conn_type": "aws", "extra": {"endpoint_url": omics_url, "region_name": REGION, "omics_quotas": False}}
            ),
            f"AIRFLOW_CONN_{S3_CONN.upper()}": json.dumps(
                {"conn_type": "aws", "extra": {"endpoint_url": s3_url, "region_name": REGION}}
            ),
        }
    )
    from airflow.utils.db import resetdb

    resetdb(skip_init=False)


PARAMS: dict[str, Any] = {"sequence_store_id": "", "read1": "", "read2": "", "name": "bench"}
# dag.test() runs a DAG only once its bundle (the DAGs folder) has been parsed into the database: the two DAGs are
# written there as a file, their settings in the environment, and that same file is imported to run them.
DAG_FILE = f"""
import json
import os

from airflow.sdk import DAG

from airflow_provider_omics.operators.omics_import import OmicsStartReadSetImportJobOperator
from airflow_provider_omics.task_groups import upload_read_set

SETTINGS = json.loads(os.environ["BENCH_IMPORT_DAGS"])
PARAMS = {PARAMS!r}
DEFAULT_ARGS = {{"retries": 0, "aws_conn_id": {OMICS_CONN!r}}}
WAIT = {{"deferrable": False, "waiter_delay": SETTINGS["waiter_delay"], "waiter_max_attempts": 3600}}

with DAG(dag_id={UPLOAD_DAG!r}, schedule=None, params=PARAMS, default_args=DEFAULT_ARGS) as upload_dag:
    upload_read_set(
        sequence_store_id="{{{{ params.sequence_store_id }}}}",
        sources=["{{{{ params.read1 }}}}", "{{{{ params.read2 }}}}"],
        source_file_type="FASTQ",
        name="{{{{ params.name }}}}",
        subject_id="bench-subject",
        sample_id="bench-sample",
        max_tasks=SETTINGS["max_tasks"],
        max_concurrency=SETTINGS["max_concurrency"],
        aws_conn_id={OMICS_CONN!r},
        source_aws_conn_id={S3_CONN!r},
        **WAIT,
    )

with DAG(dag_id={IMPORT_DAG!r}, schedule=None, params=PARAMS, default_args=DEFAULT_ARGS) as import_dag:
    OmicsStartReadSetImportJobOperator(
        task_id="import_read_sets",
        sequence_store_id="{{{{ params.sequence_store_id }}}}",
        role_arn={ROLE_ARN!r},
        sources=[
            {{
                "sourceFiles": {{"source1": "{{{{ params.read1 }}}}", "source2": "{{{{ params.read2 }}}}"}},
                "sourceFileType": "FASTQ",
                "subjectId": "bench-subject",
                "sampleId": "bench-sample",
                "name": "{{{{ params.name }}}}",
            }}
        ],
        source_aws_conn_id={S3_CONN!r},
        **WAIT,
    )
"""


def load_dags(home: Path, max_tasks: int, max_concurrency: int, waiter_delay: int) -> dict[str, Any]:
    """Write the DAG file into the DAGs folder and import it; returns the two DAGs by path."""
    import importlib.util

    os.environ["BENCH_IMPORT_DAGS"] = json.dumps(
        {"max_tasks": max_tasks, "max_concurrency": max_concurrency, "waiter_delay": waiter_delay}
    )
    dag_file = home / "dags" / "bench_import_dags.py"
    dag_file.write_text(DAG_FILE)
    spec = importlib.util.spec_from_file_location("bench_import_dags", dag_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"upload": module.upload_dag, "import": module.import_dag}


# -- one measurement -------------------------------------------------------------------------------------------


@dataclass
class Run:
    path: str
    to_active: float
    run: float
    worker_cpu: float
    emulator_cpu: float
    s3_cpu: float
    etags: dict[str, str]
    detail: str


def _task_seconds(dag_run: Any) -> dict[str, list[tuple[float, float]]]:
    """Task id (without its group) -> (start, end) epoch seconds of each of its instances."""
    found: dict[str, list[tuple[float, float]]] = {}
    for ti in dag_run.get_task_instances():
        if ti.start_date and ti.end_date:
            name = ti.task_id.rsplit(".", 1)[-1]
            found.setdefault(name, []).append((ti.start_date.timestamp(), ti.end_date.timestamp()))
    return found


class Bench:
    def __init__(self, dags: dict[str, Any], emulator: Service, moto: Service, settle: float) -> None:
        from airflow_provider_omics.testing import emulator_client

        self.dags = dags
        self.emulator = emulator
        self.moto = moto
        self.settle = settle
        self.client = emulator_client(emulator.endpoint_url)
        self.data_dir: Path | None = None

    def measure(self, path: str, uris: list[str], label: str) -> Run:
        store_id = self.client.create_sequence_store(name=f"bench-{path}-{label}-{time.monotonic_ns()}")["id"]
        conf = {**PARAMS, "sequence_store_id": store_id, "read1": uris[0], "read2": uris[1], "name": label}
        time.sleep(self.settle)
        cpu, emulator_cpu, s3_cpu = worker_cpu(), self.emulator.cpu(), self.moto.cpu()
        triggered = time.time()
        dag_run = self.dags[path].test(run_conf=conf)
        ended = time.time()
        cpu, emulator_cpu, s3_cpu = (
            worker_cpu() - cpu,
            self.emulator.cpu() - emulator_cpu,
            self.moto.cpu() - s3_cpu,
        )
        tasks = _task_seconds(dag_run)
        if dag_run.state != "success":
            raise RuntimeError(f"{path} run {dag_run.run_id} is {dag_run.state}: tasks {sorted(tasks)}")
        read_sets = self.client.list_read_sets(sequenceStoreId=store_id)["readSets"]
        if len(read_sets) != 1:
            raise RuntimeError(f"{path} run left {len(read_sets)} read sets in store {store_id}")
        metadata = self.client.get_read_set_metadata(sequenceStoreId=store_id, id=read_sets[0]["id"])
        if metadata["status"] != "ACTIVE":
            raise RuntimeError(f"{path} read set {metadata['id']} is {metadata['status']}")
        if path == "upload":
            active = max(end for _, end in tasks["wait_active"])
            uploads = sum(end - start for start, end in tasks["upload_parts"])
            digest = sum(end - start for start, end in tasks["digest"])
            waited = sum(end - start for start, end in tasks["wait_active"])
            detail = (
                f"part tasks {uploads:.1f} s (x{len(tasks['upload_parts'])}), digest {digest:.1f} s, "
                f"wait_active {waited:.1f} s"
            )
        else:
            active = max(end for _, end in tasks["import_read_sets"])
            [job] = self.client.list_read_set_import_jobs(sequenceStoreId=store_id)["importJobs"]
            job_seconds = (job["completionTime"] - job["creationTime"]).total_seconds()
            detail = f"job {job_seconds:.1f} s (created to COMPLETED)"
        self.drop(metadata["id"])
        return Run(path, active - triggered, ended - triggered, cpu, emulator_cpu, s3_cpu, metadata["etag"], detail)

    def drop(self, read_set_id: str) -> None:
        """Delete the stored parts of a measured read set (its metadata stays): the disk stays bounded."""
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir / "readsets" / read_set_id, ignore_errors=True)


# -- the report ------------------------------------------------------------------------------------------------

COLUMNS = ("to_active", "run", "worker_cpu", "emulator_cpu", "s3_cpu")


def print_table(runs: list[Run], pair: Pair) -> None:
    medians = {
        path: {column: statistics.median(getattr(r, column) for r in runs if r.path == path) for column in COLUMNS}
        for path in ("upload", "import")
    }
    count = sum(r.path == "upload" for r in runs)
    print()
    print(
        f"{'path':<8}{'runs':>5}{'to ACTIVE s':>13}{'run s':>8}{'MB/s':>7}{'worker CPU s':>14}"
        f"{'emulator CPU s':>16}{'S3 (moto) CPU s':>17}"
    )
    for path, row in medians.items():
        print(
            f"{path:<8}{count:>5}{row['to_active']:>13.1f}{row['run']:>8.1f}{pair.size / row['to_active'] / MB:>7.0f}"
            f"{row['worker_cpu']:>14.2f}{row['emulator_cpu']:>16.2f}{row['s3_cpu']:>17.2f}"
        )
    upload, imported = medians["upload"], medians["import"]
    print(
        f"import / upload: to ACTIVE {imported['to_active'] / upload['to_active']:.2f}x, "
        f"worker CPU {imported['worker_cpu'] / upload['worker_cpu']:.2f}x, "
        f"emulator CPU {imported['emulator_cpu'] / upload['emulator_cpu']:.2f}x"
    )
    etags = {json.dumps(r.etags, sort_keys=True) for r in runs}
    print(f"ETags: {'the same for every read set of both paths' if len(etags) == 1 else f'{len(etags)} different'}")
    print(
        "Medians. to ACTIVE: dag.test() call to the worker seeing the read set ACTIVE (end of wait_active; of the "
        "import task, whose job completes once its read sets are ACTIVE); run: to the run's end; MB/s: compressed "
        "bytes / to ACTIVE; CPU: user + system seconds during the run."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="both FASTQ files together, gzipped (1024)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each path (3); medians shown")
    parser.add_argument("--workdir", default=None, help="where the sample, AIRFLOW_HOME and the emulator live")
    parser.add_argument("--max-tasks", type=int, default=2, help="mapped part-upload tasks (2: one per source)")
    parser.add_argument("--max-concurrency", type=int, default=4, help="parts in flight per task (4, the default)")
    parser.add_argument("--waiter-delay", type=int, default=1, help="seconds between two looks while waiting (1)")
    parser.add_argument("--import-job-delay", type=float, default=0.2, help="emulator: seconds a job stays SUBMITTED")
    parser.add_argument("--settle-seconds", type=float, default=SETTLE_SECONDS, help="pause before each timed run")
    args = parser.parse_args(argv)

    workdir = Path(args.workdir or Path(tempfile.gettempdir()) / "omics-bench-import")
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    pair = write_pair(workdir / f"sample-{args.size_mib}MiB", args.size_mib * MIB)
    tiny = write_tiny_pair(workdir / "tiny")
    print(
        f"sample: {pair.read1.name} {pair.read1.stat().st_size / MIB:.1f} MiB + {pair.read2.name} "
        f"{pair.read2.stat().st_size / MIB:.1f} MiB gzipped ({pair.uncompressed / MIB:.0f} MiB of FASTQ), "
        f"ready in {time.monotonic() - started:.1f} s; {os.cpu_count()} CPUs; load average "
        + " ".join(f"{x:.2f}" for x in os.getloadavg()),
        flush=True,
    )

    moto = start_moto(workdir / "moto.log")
    emulator: Service | None = None
    try:
        s3 = s3_client(moto.endpoint_url)
        s3.create_bucket(Bucket=BUCKET)
        started = time.monotonic()
        uris, tiny_uris = stage(s3, pair, "run"), stage(s3, tiny, "tiny")
        print(f"staged on moto's S3 server (pid {moto.pid}) in {time.monotonic() - started:.1f} s", flush=True)
        emulator = start_emulator(workdir / "emulator-data", moto.endpoint_url, args.import_job_delay)
        print(f"emulator CLI pid {emulator.pid} at {emulator.endpoint_url}, reading S3 from moto", flush=True)
        configure_airflow(workdir / "airflow-home", emulator.endpoint_url, moto.endpoint_url)
        dags = load_dags(workdir / "airflow-home", args.max_tasks, args.max_concurrency, args.waiter_delay)
        bench = Bench(dags, emulator, moto, args.settle_seconds)
        bench.data_dir = workdir / "emulator-data"
        for path in ("upload", "import"):
            warm = bench.measure(path, tiny_uris, "warm-up")
            print(f"  warm-up {path:<7} {warm.to_active:6.1f} s to ACTIVE", flush=True)
        runs: list[Run] = []
        for round_number in range(1, args.repeats + 1):
            order = ("upload", "import") if round_number % 2 else ("import", "upload")
            for path in order:
                run = bench.measure(path, uris, f"r{round_number}")
                runs.append(run)
                print(
                    f"  round {round_number} {path:<7} to ACTIVE {run.to_active:6.1f} s  run {run.run:6.1f} s  "
                    f"worker CPU {run.worker_cpu:6.2f} s  emulator CPU {run.emulator_cpu:6.2f} s  "
                    f"S3 CPU {run.s3_cpu:6.2f} s  ({run.detail})",
                    flush=True,
                )
        print_table(runs, pair)
        print("load average at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    finally:
        if emulator is not None:
            emulator.stop()
        moto.stop()
        shutil.rmtree(workdir / "emulator-data", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
