"""Throughput of the FASTQ ETag digest (``digest_file``) against ``gzip -dc | md5sum`` on a generated FASTQ.gz.

Generates a gzipped FASTQ of ``--size-mb`` MB (uncompressed; random 150 bp reads, about 3.5x compression)
in a temporary directory, then reports MB/s of uncompressed data for:

- ``gzip -dc | <hash>sum``: the reference a user would run, two processes on two cores;
- ``digest_file``: ISA-L inflate in a reader thread, hashing in the caller;
- single-threaded zlib + hashlib and single-threaded ISA-L + hashlib: where the speed comes from;
- the hash alone over in-memory bytes on one core: the ceiling, since the hash is sequential.

Each figure is the best of ``--repeat`` runs, taken in turns, because the machine may be shared; the CPU
seconds (both threads, or both processes of the pipe) show the work done whatever the contention. Prints
numbers only: no assertion.

    python benchmarks/bench_digest.py --size-mb 512 --family MD5up
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from airflow_provider_omics.staging.digests import ETAG_FAMILIES, digest_file, family_of

MB = 1_000_000
READ_LENGTH = 150
# Reads per generated block: ~16 MiB of FASTQ, compressed as one gzip member (what `cat *.gz`,
# bcl2fastq-style writers and parallel compressors produce); "single" makes one member of the whole file.
READS_PER_BLOCK = 48_000
BASES = bytes(b"ACGT"[i % 4] for i in range(256))
# Binned Illumina-style qualities, weighted like a good run: mostly F, some : and , (low entropy).
QUALITIES = bytes(b"FFFFFFFFFFFFF:::,"[i % 17] for i in range(256))
HASH_TOOLS = {"md5": "md5sum", "sha256": "sha256sum", "sha512": "sha512sum"}


def fastq_blocks(size: int, seed: int) -> Iterator[bytes]:
    """Blocks of FASTQ records totalling at least ``size`` bytes."""
    rng = random.Random(seed)
    written = 0
    block_no = 0
    while written < size:
        noise = rng.randbytes(READS_PER_BLOCK * 2 * READ_LENGTH)
        records = []
        for i in range(READS_PER_BLOCK):
            at = 2 * READ_LENGTH * i
            seq = noise[at : at + READ_LENGTH].translate(BASES)
            qual = noise[at + READ_LENGTH : at + 2 * READ_LENGTH].translate(QUALITIES)
            read_no = block_no * READS_PER_BLOCK + i
            records.append(
                b"@A00123:45:HVWXYDSXY:1:%d:%d:%d 1:N:0:ACGTACGT+TTGCAGTA\n%s\n+\n%s\n"
                % (1101 + read_no // 400_000, 1000 + read_no % 31_000, 1000 + (read_no * 7919) % 37_000, seq, qual)
            )
        block = b"".join(records)
        written += len(block)
        block_no += 1
        yield block


def gzip_member(data: bytes, level: int) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def generate(path: Path, size: int, level: int, single_member: bool, seed: int) -> tuple[int, bytes]:
    """Write a FASTQ.gz of about ``size`` uncompressed bytes; return its uncompressed size and first block."""
    total = 0
    first = b""
    with path.open("wb") as out:
        if single_member:
            compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            for block in fastq_blocks(size, seed):
                first = first or block
                total += len(block)
                out.write(compressor.compress(block))
            out.write(compressor.flush())
            return total, first
        # zlib releases the GIL: compress blocks on both cores while the next block is generated.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            pending = []
            for block in fastq_blocks(size, seed):
                first = first or block
                total += len(block)
                pending.append(pool.submit(gzip_member, block, level))
                while len(pending) > 4:
                    out.write(pending.pop(0).result())
            for future in pending:
                out.write(future.result())
    return total, first


def reference_pipe(path: Path, algorithm: str) -> str:
    tool = HASH_TOOLS[algorithm]
    result = subprocess.run(f"gzip -dc '{path}' | {tool}", shell=True, check=True, capture_output=True, text=True)
    return result.stdout.split()[0]


def single_thread(path: Path, algorithm: str, new_decompressor: Callable[[], object], chunk: int = 4 << 20) -> str:
    """Read, inflate every member and hash, all in one thread: the obvious implementation."""
    hasher = hashlib.new(algorithm)
    with path.open("rb") as src:
        pending = b""
        decompressor = None
        while True:
            data = pending or src.read(chunk)
            pending = b""
            if not data:
                break
            if decompressor is None:
                decompressor = new_decompressor()
            hasher.update(decompressor.decompress(data))  # type: ignore[attr-defined]
            if decompressor.eof:  # type: ignore[attr-defined]
                pending = decompressor.unused_data  # type: ignore[attr-defined]
                decompressor = None
    return hasher.hexdigest()


def cpu_seconds() -> float:
    """CPU time of this process and its finished children: comparable across runs when cores are shared."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def memory_hash_rate(block: bytes, algorithm: str, total: int) -> float:
    hasher = hashlib.new(algorithm)
    started = time.perf_counter()
    for _ in range(max(1, total // len(block))):
        hasher.update(block)
    return max(1, total // len(block)) * len(block) / (time.perf_counter() - started) / MB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=512, help="uncompressed FASTQ size in MB (default 512)")
    parser.add_argument("--family", default="MD5up", help="ETag family: MD5up, SHA256up, SHA512up")
    parser.add_argument("--level", type=int, default=4, help="gzip level used to generate the file (default 4)")
    parser.add_argument("--single-member", action="store_true", help="one gzip member instead of ~16 MiB ones")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the best counts")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()

    family = family_of(args.family)
    algorithm = ETAG_FAMILIES[family]
    if not (shutil.which("gzip") and shutil.which(HASH_TOOLS[algorithm])):
        print(f"needs gzip and {HASH_TOOLS[algorithm]} on PATH", file=sys.stderr)
        return 2
    try:
        from isal import igzip_lib
    except ImportError:
        igzip_lib = None  # type: ignore[assignment]

    with tempfile.TemporaryDirectory(prefix="bench-digest-") as tmp:
        path = Path(tmp) / "reads.fastq.gz"
        started = time.perf_counter()
        size, sample = generate(path, args.size_mb * MB, args.level, args.single_member, args.seed)
        compressed = path.stat().st_size
        print(
            f"generated {size / MB:.0f} MB of FASTQ -> {compressed / MB:.0f} MB gzip "
            f"(ratio {size / compressed:.2f}x, level {args.level}, "
            f"{'one member' if args.single_member else '~16 MiB members'}) in {time.perf_counter() - started:.1f}s"
        )
        print(f"family {family} ({algorithm}); best of {args.repeat}; load average {os.getloadavg()[0]:.2f}")

        runs: dict[str, Callable[[], str]] = {
            f"gzip -dc | {HASH_TOOLS[algorithm]}": lambda: reference_pipe(path, algorithm),
            "digest_file": lambda: digest_file(path, family).hexdigest,
            "1 thread zlib + hashlib": lambda: single_thread(
                path, algorithm, lambda: zlib.decompressobj(16 + zlib.MAX_WBITS)
            ),
        }
        if igzip_lib is not None:
            runs["1 thread isal + hashlib"] = lambda: single_thread(
                path, algorithm, lambda: igzip_lib.IgzipDecompressor(flag=igzip_lib.DECOMP_GZIP)
            )
        best = dict.fromkeys(runs, 0.0)
        cpu = dict.fromkeys(runs, float("inf"))
        digests: dict[str, str] = {}
        for _ in range(args.repeat):
            for name, run in runs.items():
                cpu_before = cpu_seconds()
                started = time.perf_counter()
                digests[name] = run()
                best[name] = max(best[name], size / (time.perf_counter() - started) / MB)
                cpu[name] = min(cpu[name], cpu_seconds() - cpu_before)
        memory_rate = max(memory_hash_rate(sample, algorithm, size) for _ in range(args.repeat))

        reference = next(iter(runs))
        width = max(map(len, runs)) + 2
        for name in runs:
            same = "ok" if digests[name] == digests[reference] else "DIGEST DIFFERS"
            print(f"{name:<{width}} {best[name]:8.0f} MB/s  {cpu[name]:6.2f} s CPU  {same}")
        print(f"{algorithm + ' alone, in memory, 1 core':<{width}} {memory_rate:8.0f} MB/s")
        print(f"digest_file / reference: {best['digest_file'] / best[reference]:.2f}x (target >= 2.0x)")
        print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
