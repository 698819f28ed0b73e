"""Upload throughput and memory of the provider's part upload, against AWS's TransferManager and raw HTTP.

One emulator runs in its own process (the foreground CLI) with its data directory on the same disk as the
source file. The same file (random bytes, uploaded as UBAM: the emulator's post-complete check stops at the
first bytes, so its ingest is all that is measured on its side) is uploaded with the same part plan:

- ``provider``: the split plan of ``utils/parts.py`` run by ``OmicsHook.upload_parts`` in one process,
  ``--concurrency`` parts in flight;
- ``provider-procs``: the same plan cut into ``--concurrency`` batches, one worker process each with its own
  hook and client (one part at a time), the way mapped tasks on Airflow workers run it;
- ``transfer-manager``: ``omics.transfer.manager.TransferManager.upload_read_set`` (aws-healthomics-tools),
  ``max_request_concurrency`` = ``--concurrency``;
- ``raw``: no SDK: ``http.client`` keep-alive connections, one per thread, streaming each byte range from the
  file in 1 MiB blocks to the UploadReadSetPart URL (unsigned: the emulator runs without credentials).

Each uploader runs in a child process that reports its resident memory before the upload (the baseline: the
interpreter and its imports) and its peak (``VmHWM``, reset after the baseline is taken), builds its client,
then on the parent's go creates the upload, uploads the parts and completes it: that transfer is what MB/s
measures (``--client-in-timing`` times the client set-up with it). CPU seconds per GiB of the uploaders and of
the emulator show the work done whatever the load on shared cores. The stored parts are deleted before the
next run, so that the disk stays bounded (see :meth:`Emulator.drop_retired` for why then).

Also printed: the planning time of a 10,000-part split, the peak memory of one part-upload task
(``OmicsHook.upload_parts`` as the mapped task runs it) for two part sizes, and the FASTQ digest benchmark
(``bench_digest.py``) when it is present.

    .venv/bin/python benchmarks/bench_upload.py --size-mib 512 --concurrency 4
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

MIB = 1024 * 1024
MB = 1_000_000
STORE_NAME = "bench-upload"
REGION = "us-east-1"
CONN_ID = "bench_omics"
# Lines of the child protocol on stdout; anything else a library prints there is ignored.
MARK = "@@bench "
METHODS = ("raw", "provider", "provider-procs", "transfer-manager")
# Block size of the raw HTTP reference: large enough that Python's per-block cost vanishes.
RAW_BLOCK = 1024 * 1024
# Pause before each timed upload, for memory freed by the previous uploader's exit to be handed back to the VM's
# host (free page reporting waits about 2 s) before the run rather than during it (see Emulator.drop_retired).
SETTLE_SECONDS = 3.0
# Parts uploaded by the one-task memory probe (at the operator's default max_concurrency).
TASK_PROBE_PARTS = 8
TASK_PROBE_CONCURRENCY = 4


# -- /proc helpers -------------------------------------------------------------------------------------------


def proc_status_kib(field: str, pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the peak measures only what follows."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def cpu_seconds(pid: int | str = "self") -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the child processes -------------------------------------------------------------------------------------


def child_env(endpoint_url: str, workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    home = workdir / "airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    # The emulator enforces no quotas here: no client-side pacing either (hooks/pacing.py).
    extra = {"endpoint_url": endpoint_url, "region_name": REGION, "omics_quotas": False}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps({"conn_type": "aws", "extra": extra}),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            # Clients built by libraries (AWS's uploader) must not prepend host prefixes to the emulator's host.
            "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
            "PYTHONUNBUFFERED": "1",
        }
    )
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(var, None)
    return env


def _say(kind: str, payload: dict[str, Any]) -> None:
    sys.stdout.write(f"{MARK}{kind} {json.dumps(payload)}\n")
    sys.stdout.flush()


def _boto_client(endpoint_url: str, pool: int) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(inject_host_prefix=False, max_pool_connections=max(10, pool))
    return boto3.session.Session().client(
        "omics",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )


def _plan(size: int, part_size: int, first: int = 1, last: int | None = None) -> list[Any]:
    from airflow_provider_omics.utils.parts import check_part_count, part_range

    count = check_part_count("SOURCE1", size, part_size)
    return [part_range("SOURCE1", n, size, part_size) for n in range(first, (last or count) + 1)]


def _create(client: Any, store_id: str, label: str) -> str:
    response = client.create_multipart_read_set_upload(
        sequenceStoreId=store_id, sourceFileType="UBAM", subjectId="bench", sampleId="bench", name=label
    )
    return str(response["uploadId"])


def _complete(client: Any, store_id: str, upload_id: str, parts: list[dict[str, Any]]) -> str:
    from airflow_provider_omics.utils.parts import check_complete_parts

    response = client.complete_multipart_read_set_upload(
        sequenceStoreId=store_id, uploadId=upload_id, parts=check_complete_parts(parts)
    )
    return str(response["readSetId"])


def _run_provider(spec: dict[str, Any]) -> dict[str, Any]:
    """The provider's path in one process: create, ``OmicsHook.upload_parts``, complete."""
    from airflow_provider_omics.hooks.omics import OmicsHook
    from airflow_provider_omics.staging.sources import parse_source
    from airflow_provider_omics.utils.parts import check_complete_parts

    def prepare() -> OmicsHook:
        hook = OmicsHook(aws_conn_id=CONN_ID)
        if not spec["client_in_timing"]:
            hook.get_upload_client(spec["concurrency"])
        return hook

    def run(hook: OmicsHook) -> dict[str, Any]:
        source = parse_source(spec["path"])
        fingerprint = source.stat()
        ranges = _plan(fingerprint.size, spec["part_size"])
        upload_id = hook.create_multipart_read_set_upload(spec["store_id"], "UBAM", "provider", "bench", "bench")[
            "uploadId"
        ]
        parts = hook.upload_parts(
            spec["store_id"], upload_id, source, fingerprint, ranges, max_concurrency=spec["concurrency"]
        )
        read_set_id = hook.complete_multipart_read_set_upload(spec["store_id"], upload_id, check_complete_parts(parts))
        return {"read_set_id": read_set_id, "bytes": fingerprint.size}

    return _measured(prepare, run, spec["client_in_timing"])


def _run_provider_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One mapped task's share: parts ``first``..``last`` of an upload the parent created."""
    from airflow_provider_omics.hooks.omics import OmicsHook
    from airflow_provider_omics.staging.sources import parse_source

    def prepare() -> OmicsHook:
        hook = OmicsHook(aws_conn_id=CONN_ID)
        if not spec["client_in_timing"]:
            hook.get_upload_client(spec["concurrency"])
        return hook

    def run(hook: OmicsHook) -> dict[str, Any]:
        source = parse_source(spec["path"])
        fingerprint = source.stat()
        ranges = _plan(fingerprint.size, spec["part_size"], spec["first"], spec["last"])
        parts = hook.upload_parts(
            spec["store_id"], spec["upload_id"], source, fingerprint, ranges, max_concurrency=spec["concurrency"]
        )
        return {"parts": parts, "bytes": sum(r.length for r in ranges)}

    return _measured(prepare, run, spec["client_in_timing"])


def _run_transfer_manager(spec: dict[str, Any]) -> dict[str, Any]:
    """AWS's uploader: ``TransferManager.upload_read_set`` on the file name, at the same concurrency."""
    import boto3  # noqa: F401 - imported before the baseline, as in the other uploaders
    import omics.transfer.read_set_upload as tm_upload
    from omics.transfer.config import TransferConfig
    from omics.transfer.manager import TransferManager

    # Its part size is a module constant (100 MiB); match the plan when another part size is asked for.
    tm_upload.UPLOAD_PART_SIZE_BYTES = spec["part_size"]

    def prepare() -> TransferManager:
        client = _boto_client(spec["endpoint_url"], spec["concurrency"])
        return TransferManager(client, TransferConfig(max_request_concurrency=spec["concurrency"]))

    def run(manager: TransferManager) -> dict[str, Any]:
        with manager:
            read_set_id = manager.upload_read_set(
                spec["path"], spec["store_id"], "UBAM", "transfer-manager", "bench", "bench"
            )
        return {"read_set_id": read_set_id, "bytes": os.path.getsize(spec["path"])}

    return _measured(prepare, run, spec["client_in_timing"])


class _RangeBody:
    """The raw reference's body: ``length`` bytes at ``offset`` of a file, read in whatever blocks are asked."""

    def __init__(self, handle: IO[bytes], offset: int, length: int) -> None:
        self._handle = handle
        self._remaining = length
        handle.seek(offset)

    def read(self, size: int = -1) -> bytes:
        size = self._remaining if size < 0 else min(size, self._remaining)
        data = self._handle.read(size) if size else b""
        self._remaining -= len(data)
        return data


class _NoDelayConnection(http.client.HTTPConnection):
    """Keep-alive HTTP/1.1 with Nagle's algorithm off, as urllib3 (hence botocore) sets it."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _run_raw(spec: dict[str, Any]) -> dict[str, Any]:
    """The floor: plain keep-alive PUTs of the same byte ranges, ``concurrency`` threads, no SDK on the path.

    Create and complete go through boto3 (two small calls); the parts do not.
    """
    import queue
    from urllib.parse import urlsplit

    import boto3  # noqa: F401 - for create and complete; imported before the baseline like the other uploaders

    endpoint = urlsplit(spec["endpoint_url"])

    def put_parts(upload_id: str, ranges: list[Any]) -> list[dict[str, Any]]:
        todo: queue.Queue[Any] = queue.Queue()
        for part in ranges:
            todo.put(part)
        parts: list[dict[str, Any]] = []
        errors: list[BaseException] = []

        def worker() -> None:
            conn = _NoDelayConnection(endpoint.hostname or "127.0.0.1", endpoint.port, blocksize=RAW_BLOCK)
            try:
                with open(spec["path"], "rb", buffering=0) as handle:
                    while not errors:
                        try:
                            part = todo.get_nowait()
                        except queue.Empty:
                            return
                        url = (
                            f"/sequencestore/{spec['store_id']}/upload/{upload_id}/part"
                            f"?partNumber={part.part_number}&partSource={part.part_source}"
                        )
                        body = _RangeBody(handle, part.offset, part.length)
                        headers = {"Content-Length": str(part.length), "Content-Type": "application/octet-stream"}
                        conn.request("PUT", url, body=body, headers=headers)
                        response = conn.getresponse()
                        answer = response.read()
                        if response.status != 200:
                            raise RuntimeError(f"part {part.part_number}: HTTP {response.status} {answer[:200]!r}")
                        checksum = json.loads(answer)["checksum"]
                        parts.append(
                            {"partNumber": part.part_number, "partSource": part.part_source, "checksum": checksum}
                        )
            except BaseException as err:
                errors.append(err)
            finally:
                conn.close()

        threads = [threading.Thread(target=worker) for _ in range(spec["concurrency"])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return parts

    def prepare() -> Any:
        return _boto_client(spec["endpoint_url"], 1)

    def run(client: Any) -> dict[str, Any]:
        size = os.path.getsize(spec["path"])
        upload_id = _create(client, spec["store_id"], "raw")
        parts = put_parts(upload_id, _plan(size, spec["part_size"]))
        return {"read_set_id": _complete(client, spec["store_id"], upload_id, parts), "bytes": size}

    return _measured(prepare, run, spec["client_in_timing"])


def _run_task_probe(spec: dict[str, Any]) -> dict[str, Any]:
    """One part-upload task's memory: ``OmicsHook.upload_parts`` as the mapped operator runs it; aborted after."""
    from airflow_provider_omics.hooks.omics import OmicsHook
    from airflow_provider_omics.staging.sources import parse_source

    def run(hook: OmicsHook) -> dict[str, Any]:
        source = parse_source(spec["path"])
        fingerprint = source.stat()
        ranges = _plan(fingerprint.size, spec["part_size"], 1, spec["last"])
        upload_id = hook.create_multipart_read_set_upload(spec["store_id"], "UBAM", "task", "bench", "bench")[
            "uploadId"
        ]
        try:
            hook.upload_parts(
                spec["store_id"], upload_id, source, fingerprint, ranges, max_concurrency=spec["concurrency"]
            )
        finally:
            hook.abort_multipart_read_set_upload(spec["store_id"], upload_id)
        return {"bytes": sum(r.length for r in ranges)}

    return _measured(lambda: OmicsHook(aws_conn_id=CONN_ID), run, False)


def _measured(
    prepare: Callable[[], Any], run: Callable[[Any], dict[str, Any]], client_in_timing: bool
) -> dict[str, Any]:
    """Measure one uploader in this process.

    The baseline is the resident memory of the interpreter and its imports; the peak covers everything after
    it, client set-up included. The set-up (hook, Airflow connection, client) is timed on its own, before the
    parent's go, so that the timed transfer of every uploader starts with a ready client; with
    ``client_in_timing`` it is part of the timed transfer instead, and its own time is reported as zero.
    """
    baseline = proc_status_kib("VmRSS")
    reset_peak_rss()
    started = time.monotonic()
    state = None if client_in_timing else prepare()
    setup_seconds = time.monotonic() - started
    _say("ready", {"baseline_kib": baseline})
    sys.stdin.readline()
    cpu0, started = cpu_seconds(), time.monotonic()
    result = run(prepare() if client_in_timing else state)
    result.update(
        seconds=time.monotonic() - started,
        setup_seconds=0.0 if client_in_timing else setup_seconds,
        cpu_seconds=cpu_seconds() - cpu0,
        baseline_kib=baseline,
        peak_kib=proc_status_kib("VmHWM"),
    )
    return result


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "provider": _run_provider,
    "provider-worker": _run_provider_worker,
    "transfer-manager": _run_transfer_manager,
    "raw": _run_raw,
    "task-probe": _run_task_probe,
}


def child_main(mode: str, spec_json: str) -> int:
    try:
        result = CHILDREN[mode](json.loads(spec_json))
    except BaseException as err:
        _say("error", {"error": f"{type(err).__name__}: {err}"})
        raise
    _say("result", result)
    return 0


# -- the parent ----------------------------------------------------------------------------------------------


class Child:
    """An uploader in its own process, driven over stdin/stdout."""

    def __init__(self, mode: str, spec: dict[str, Any], env: dict[str, str]) -> None:
        self.mode = mode
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--child", mode, json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.ready = self._expect("ready")

    def _messages(self) -> Iterator[tuple[str, dict[str, Any]]]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(MARK):
                kind, _, payload = line[len(MARK) :].partition(" ")
                yield kind, json.loads(payload)

    def _expect(self, kind: str) -> dict[str, Any]:
        for got, payload in self._messages():
            if got == kind:
                return payload
            if got == "error":
                raise RuntimeError(f"{self.mode} child failed: {payload['error']}")
        raise RuntimeError(f"{self.mode} child exited ({self.proc.wait()}) without a {kind!r} message")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self) -> dict[str, Any]:
        """The child's report; its exit (an interpreter with Airflow loaded takes a while) is not waited for."""
        try:
            return self._expect("result")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Emulator:
    """The emulator CLI in its own process, on a free port, with its data directory under the workdir."""

    def __init__(self, data_dir: Path) -> None:
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
        self.data_dir = data_dir
        from airflow_provider_omics.testing.cli import spawn

        self.proc, self.endpoint_url = spawn(data_dir, activation_delay=0)
        self.client = _boto_client(self.endpoint_url, 1)
        self._retired: list[tuple[str, str]] = []

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def peak_rss_mib(self) -> float:
        return proc_status_kib("VmHWM", self.proc.pid) / 1024

    def retire(self, store_id: str, read_set_id: str) -> None:
        """Mark a read set whose stored parts the next run deletes."""
        self._retired.append((store_id, read_set_id))

    def drop_retired(self, timeout: float = 120.0) -> None:
        """Let freed memory settle, then delete the stored parts of retired read sets (the metadata stays).

        Called just before an upload starts, on purpose. This VM hands freed memory back to its host a couple
        of seconds after it is freed (free page reporting), and the emulator writes parts into page cache two
        to three times slower while that happens or when its pages must be faulted back in from the host: a
        run that started right after the previous uploader's process exited was slow whatever the uploader.
        Waiting :data:`SETTLE_SECONDS` after the uploader is ready, then freeing the previous run's page cache
        right before the go, gives every uploader the same warm page cache.
        """
        time.sleep(SETTLE_SECONDS)
        deadline = time.monotonic() + timeout
        for store_id, read_set_id in self._retired:
            while time.monotonic() < deadline:
                status = self.client.get_read_set_metadata(sequenceStoreId=store_id, id=read_set_id)["status"]
                if status != "PROCESSING_UPLOAD":
                    break
                time.sleep(0.05)
            for source in ("SOURCE1", "SOURCE2"):
                shutil.rmtree(self.data_dir / "readsets" / read_set_id / source, ignore_errors=True)
        self._retired.clear()

    def drop_uploads(self, store_id: str) -> None:
        """Abort whatever upload a failed or probing run left behind."""
        for upload in self.client.list_multipart_read_set_uploads(sequenceStoreId=store_id).get("uploads", []):
            self.client.abort_multipart_read_set_upload(sequenceStoreId=store_id, uploadId=upload["uploadId"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def make_source(path: Path, size: int) -> None:
    """Random bytes, reused when a file of the right size is already there (UBAM content is not checked)."""
    if path.exists() and path.stat().st_size == size:
        return
    block = os.urandom(16 * MIB)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as handle:
        written = 0
        counter = 0
        while written < size:
            # A counter in each block, so that no two blocks of the file are the same.
            chunk = (counter.to_bytes(8, "little") + block[8:])[: size - written]
            handle.write(chunk)
            written += len(chunk)
            counter += 1
    tmp.replace(path)


def run_method(
    method: str, emulator: Emulator, spec: dict[str, Any], env: dict[str, str], size: int, part_size: int
) -> dict[str, Any]:
    """One timed upload by ``method``; returns throughput, memory and CPU. Its stored parts are kept until the
    next run is about to start (see :meth:`Emulator.drop_retired`)."""
    if method != "provider-procs":
        child = Child(method, spec, env)
        emulator.drop_retired()
        emu_cpu = emulator.cpu_seconds()
        child.go()
        result = child.result()
        child.close()
        seconds = result["seconds"]
        peaks = [result["peak_kib"]]
        above = [result["peak_kib"] - result["baseline_kib"]]
        client_cpu = result["cpu_seconds"]
        setup = result["setup_seconds"]
        read_set_id = result["read_set_id"]
    else:
        from airflow_provider_omics.utils.parts import batch_parts, check_part_count

        count = check_part_count("SOURCE1", size, part_size)
        batches = batch_parts([count], spec["concurrency"])
        upload_id = _create(emulator.client, spec["store_id"], "provider-procs")
        worker_spec = {**spec, "upload_id": upload_id, "concurrency": 1}
        workers = [
            Child("provider-worker", {**worker_spec, "first": b.first_part, "last": b.last_part}, env) for b in batches
        ]
        emulator.drop_retired()
        emu_cpu = emulator.cpu_seconds()
        started = time.monotonic()
        for worker in workers:
            worker.go()
        results = [worker.result() for worker in workers]
        parts = [part for r in results for part in r["parts"]]
        read_set_id = _complete(emulator.client, spec["store_id"], upload_id, parts)
        seconds = time.monotonic() - started
        for worker in workers:
            worker.close()
        peaks = [r["peak_kib"] for r in results]
        above = [r["peak_kib"] - r["baseline_kib"] for r in results]
        client_cpu = sum(r["cpu_seconds"] for r in results)
        setup = max(r["setup_seconds"] for r in results)
    emu_cpu = emulator.cpu_seconds() - emu_cpu
    emulator.retire(spec["store_id"], read_set_id)
    return {
        "method": method,
        "processes": len(peaks),
        "seconds": seconds,
        "setup": setup,
        "mb_s": size / seconds / MB,
        "peak_mib": sum(peaks) / 1024,
        "above_mib": max(above) / 1024,
        "client_cpu": client_cpu,
        "emulator_cpu": emu_cpu,
    }


def planning_seconds(parts: int = 10_000) -> float:
    """Pure planning of a ``parts``-part source: the limit checks, the batches and every byte range."""
    from airflow_provider_omics.utils.parts import MAX_PARTS_PER_SOURCE, batch_parts, check_part_count, part_range

    size, part_size = parts * MIB, MIB
    started = time.perf_counter()
    count = check_part_count("SOURCE1", size, part_size)
    batches = batch_parts([count], 1024)
    ranges = [
        part_range(b.part_source, n, size, part_size) for b in batches for n in range(b.first_part, b.last_part + 1)
    ]
    elapsed = time.perf_counter() - started
    assert len(ranges) == parts <= MAX_PARTS_PER_SOURCE
    return elapsed


def print_table(rows: list[dict[str, Any]], size: int, concurrency: int) -> None:
    gib = size / (1024 * MIB)
    print()
    print(
        f"{'method':<18}{'procs':>6}{'MB/s':>8}{'wall s':>8}{'setup s':>9}{'peak RSS MiB':>14}{'above base':>12}"
        f"{'client CPU s/GiB':>18}{'emulator CPU s/GiB':>20}"
    )
    for row in rows:
        print(
            f"{row['method']:<18}{row['processes']:>6}{row['mb_s']:>8.0f}{row['seconds']:>8.2f}{row['setup']:>9.2f}"
            f"{row['peak_mib']:>14.0f}{row['above_mib']:>12.1f}{row['client_cpu'] / gib:>18.2f}"
            f"{row['emulator_cpu'] / gib:>20.2f}"
        )
    by_method = {row["method"]: row["mb_s"] for row in rows}
    print()
    print(
        f"concurrency {concurrency}. MB/s = 10^6 bytes/s of the timed transfer (create, parts, complete) with a ready "
        "client; 'setup s' is the client set-up before it (hook, Airflow connection, boto3 client), the largest of "
        "the workers'. Peak RSS sums the uploading processes; 'above base' is the largest peak above its own "
        "process's baseline (interpreter and imports)."
    )
    for provider in ("provider", "provider-procs"):
        for other in ("transfer-manager", "raw"):
            if provider in by_method and other in by_method:
                print(f"  {provider} / {other}: {by_method[provider] / by_method[other]:.2f}x")


def median_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method, the run of median throughput (rounds alternate methods, so drift hits all alike)."""
    rows = []
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = sorted((r for r in runs if r["method"] == method), key=lambda r: r["mb_s"])
        rows.append(mine[(len(mine) - 1) // 2] if len(mine) % 2 else mine[len(mine) // 2 - 1])
    return rows


def run_digest_benchmark(workdir: Path) -> None:
    script = Path(__file__).with_name("bench_digest.py")
    print()
    if not script.exists():
        print("FASTQ digest benchmark: skipped (benchmarks/bench_digest.py is not there).")
        return
    print("FASTQ digest benchmark (benchmarks/bench_digest.py, its default arguments):", flush=True)
    subprocess.run([sys.executable, str(script)], check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=2048, help="size of the uploaded file (default 2048)")
    parser.add_argument("--part-size-mib", type=int, default=100, help="part size (default 100, the maximum)")
    parser.add_argument("--concurrency", type=int, default=10, help="parts in flight at once (default 10)")
    parser.add_argument("--workdir", default=None, help="where the file and the emulator's data live")
    parser.add_argument("--rounds", type=int, default=3, help="uploads per method (default 3); the median is shown")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {METHODS}")
    parser.add_argument("--skip-extras", action="store_true", help="only the throughput table")
    parser.add_argument(
        "--client-in-timing",
        action="store_true",
        help="time the client set-up (hook, Airflow connection, boto3 client) as part of each transfer",
    )
    args = parser.parse_args(argv)

    workdir = Path(args.workdir or Path(tempfile.gettempdir()) / "omics-bench")
    workdir.mkdir(parents=True, exist_ok=True)
    size, part_size = args.size_mib * MIB, args.part_size_mib * MIB
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {METHODS}")

    source = workdir / f"source-{args.size_mib}MiB.bin"
    started = time.monotonic()
    make_source(source, size)
    print(
        f"source: {source} ({args.size_mib} MiB, ready in {time.monotonic() - started:.1f} s); "
        f"parts of {args.part_size_mib} MiB; concurrency {args.concurrency}; {os.cpu_count()} CPUs",
        flush=True,
    )

    emulator = Emulator(workdir / "emulator-data")
    try:
        env = child_env(emulator.endpoint_url, workdir)
        store_id = emulator.client.create_sequence_store(name=STORE_NAME)["id"]
        spec = {
            "endpoint_url": emulator.endpoint_url,
            "store_id": store_id,
            "path": str(source),
            "part_size": part_size,
            "concurrency": args.concurrency,
            "client_in_timing": args.client_in_timing,
        }
        # The first upload into a fresh emulator writes into memory the VM has not used yet; it is not counted.
        warmup = run_method("raw", emulator, spec, env, size, part_size)
        print(f"  warm-up raw              {warmup['mb_s']:8.0f} MB/s  {warmup['seconds']:6.2f} s", flush=True)
        runs = []
        for round_number in range(1, args.rounds + 1):
            # Each round starts one method later, so that no method always follows the same one.
            shift = (round_number - 1) % len(methods)
            for method in methods[shift:] + methods[:shift]:
                row = run_method(method, emulator, spec, env, size, part_size)
                print(
                    f"  round {round_number} {method:<17} {row['mb_s']:8.0f} MB/s  {row['seconds']:6.2f} s", flush=True
                )
                runs.append(row)
        print_table(median_rows(runs), size, args.concurrency)
        print(f"emulator peak RSS: {emulator.peak_rss_mib():.0f} MiB")

        if not args.skip_extras:
            print()
            timings = [planning_seconds() for _ in range(5)]
            print(
                "split planning, 10,000 parts (limits, batches, every range): "
                f"{statistics.median(timings) * 1e3:.1f} ms"
            )
            probe_parts = max(1, min(TASK_PROBE_PARTS, size // (100 * MIB)))
            print(f"one part-upload task (OmicsHook.upload_parts, max_concurrency={TASK_PROBE_CONCURRENCY}):")
            for probe_mib in (100, 10):
                last = max(1, min(probe_parts * 100 // probe_mib, size // (probe_mib * MIB)))
                probe_spec = {**spec, "part_size": probe_mib * MIB, "last": last, "concurrency": TASK_PROBE_CONCURRENCY}
                child = Child("task-probe", probe_spec, env)
                emulator.drop_retired()
                child.go()
                result = child.result()
                child.close()
                print(
                    f"  {probe_mib:>3} MiB parts x {last}: peak {result['peak_kib'] / 1024:.0f} MiB, "
                    f"{(result['peak_kib'] - result['baseline_kib']) / 1024:.1f} MiB above its baseline "
                    f"({result['baseline_kib'] / 1024:.0f} MiB), {result['bytes'] / result['seconds'] / MB:.0f} MB/s"
                )
            emulator.drop_uploads(store_id)
    finally:
        emulator.stop()
        # The source file stays for the next run; what the emulator stored does not.
        shutil.rmtree(emulator.data_dir, ignore_errors=True)
    if not args.skip_extras:
        run_digest_benchmark(workdir)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.exit(child_main(sys.argv[2], sys.argv[3]))
    sys.exit(main())
