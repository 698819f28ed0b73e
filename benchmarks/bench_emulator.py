"""Ingest throughput and memory of the HealthOmics emulator: is it fast enough not to be the bottleneck?

Starts the emulator in its own process (the foreground CLI), generates a FASTQ file (1 GiB by default),
uploads it with boto3 over loopback in 100 MiB parts, a few at a time, and prints the ingest rate and the
emulator's peak resident memory (VmHWM from /proc/<pid>/status). Then completes the upload and reports how
long the read set took to become ACTIVE (the content check: FASTQ records and the MD5 ETag).

Later rounds re-send the same parts, which replaces them: on a virtual machine whose free memory goes back to
the host, the first round also pays for the host faulting in fresh page-cache pages (about 1 s of kernel
time per GiB where this was measured); later rounds reuse freed pages and show the emulator's own cost.

    .venv/bin/python benchmarks/bench_emulator.py --size 1G --concurrency 4
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from s3transfer.utils import ReadFileChunk

from airflow_provider_omics.testing.cli import spawn
from airflow_provider_omics.testing.samples import write_fastq_of_size

MIB = 1024 * 1024
UNITS = {"K": 1024, "M": MIB, "G": 1024 * MIB}


def parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in UNITS:
        return int(float(text[:-1]) * UNITS[text[-1]])
    return int(text)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G", help="bytes to upload (suffixes K, M, G; default 1G)")
    parser.add_argument("--part-size", default="100M", help="part size (default 100M, the service maximum)")
    parser.add_argument("--concurrency", type=int, default=4, help="parts in flight at once (default 4)")
    parser.add_argument("--workdir", default=None, help="where to put the file and the emulator's data")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="upload the parts this many times (each round replaces the previous one's parts; default 2)",
    )
    args = parser.parse_args()
    size, part_size = parse_size(args.size), parse_size(args.part_size)

    with tempfile.TemporaryDirectory(prefix="bench-emulator-", dir=args.workdir) as tmp:
        source = Path(tmp) / "bench.fastq"
        started = time.perf_counter()
        md5 = write_fastq_of_size(source, size)
        size = source.stat().st_size
        print(f"generated {size / MIB:.0f} MiB of FASTQ in {time.perf_counter() - started:.1f} s")

        server, endpoint_url = spawn(Path(tmp) / "data", activation_delay=0)
        try:
            print(f"emulator at {endpoint_url}")
            client: Any = boto3.session.Session().client(
                "omics",
                endpoint_url=endpoint_url,
                region_name="us-east-1",
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
                config=Config(
                    inject_host_prefix=False,
                    max_pool_connections=args.concurrency + 2,
                    retries={"mode": "standard"},
                    read_timeout=300,
                ),
            )
            store = client.create_sequence_store(name="bench")["id"]
            upload = client.create_multipart_read_set_upload(
                sequenceStoreId=store, sourceFileType="FASTQ", subjectId="bench", sampleId="bench", name="bench"
            )["uploadId"]
            ranges = [(n + 1, start, min(part_size, size - start)) for n, start in enumerate(range(0, size, part_size))]

            def send(number: int, start: int, length: int) -> dict[str, object]:
                with ReadFileChunk.from_filename(str(source), start, length) as body:
                    response = client.upload_read_set_part(
                        sequenceStoreId=store, uploadId=upload, partSource="SOURCE1", partNumber=number, payload=body
                    )
                return {"partNumber": number, "partSource": "SOURCE1", "checksum": response["checksum"]}

            for round_number in range(1, args.rounds + 1):
                server_cpu, client_cpu = cpu_seconds(server.pid), cpu_seconds(os.getpid())
                started = time.perf_counter()
                with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
                    parts = list(pool.map(lambda r: send(*r), ranges))
                elapsed = time.perf_counter() - started
                server_cpu = cpu_seconds(server.pid) - server_cpu
                client_cpu = cpu_seconds(os.getpid()) - client_cpu
                print(
                    f"round {round_number} ingest: {size / MIB:.0f} MiB in {len(parts)} parts of "
                    f"{part_size / MIB:.0f} MiB, {args.concurrency} at once: {elapsed:.2f} s = "
                    f"{size / elapsed / 1e6:.0f} MB/s ({size / elapsed / MIB:.0f} MiB/s); CPU: emulator "
                    f"{server_cpu:.2f} s ({server_cpu / elapsed:.0%} of a core), boto3 client {client_cpu:.2f} s"
                )
            print(f"emulator peak RSS (VmHWM) after ingest: {peak_rss_mib(server.pid):.1f} MiB")

            started = time.perf_counter()
            read_set = client.complete_multipart_read_set_upload(sequenceStoreId=store, uploadId=upload, parts=parts)
            while True:
                meta = client.get_read_set_metadata(sequenceStoreId=store, id=read_set["readSetId"])
                if meta["status"] != "PROCESSING_UPLOAD":
                    break
                time.sleep(0.1)
            print(
                f"complete -> {meta['status']} in {time.perf_counter() - started:.2f} s "
                f"(ETag {'matches' if meta.get('etag', {}).get('source1') == md5 else 'DOES NOT match'} the MD5)"
            )
            print(f"emulator peak RSS after activation: {peak_rss_mib(server.pid):.1f} MiB")
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("AWS_DISABLE_HOST_PREFIX_INJECTION", "true")
    sys.exit(main())
