"""How long a sequencing-run manifest takes to read and check, or to refuse, and the memory it takes.

Builds in a temporary directory: a 100,000-row CSV and JSON manifest (above ``MAX_MANIFEST_ROWS``: refused), a
10,000-row CSV and JSON manifest (the largest accepted: every row checked), and JSON nested 10,000 deep and 16 MiB
deep (above ``MAX_MANIFEST_DEPTH``: refused). Each case runs ``read_manifest`` in its own process: the best wall
time of ``--repeat`` runs, the growth of the process's peak RSS (``resource.getrusage``) over what the imports
took, and the peak of Python's allocations in one more run under ``tracemalloc``. Prints numbers only: no
assertion.

    .venv/bin/python benchmarks/bench_manifest.py
    .venv/bin/python benchmarks/bench_manifest.py --no-row-limit   # also the 100,000 rows checked row by row
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

HEADER = "sample_id,subject_id,name,read1,read2,file_type\n"


def _sample(index: int) -> str:
    return f"S{index:06d}"


def write_csv(path: Path, rows: int) -> None:
    with path.open("w") as out:
        out.write(HEADER)
        for index in range(1, rows + 1):
            sample = _sample(index)
            out.write(f"{sample},P{index:06d},{sample},/d/{sample}_R1.fastq.gz,/d/{sample}_R2.fastq.gz,FASTQ\n")


def write_json(path: Path, rows: int) -> None:
    items = []
    for index in range(1, rows + 1):
        sample = _sample(index)
        items.append(
            {
                # Single-end: 100,000 paired items would pass MAX_MANIFEST_BYTES and be refused unread.
                "sourceFiles": {"source1": f"/d/{sample}_R1.fastq.gz"},
                "sourceFileType": "FASTQ",
                "subjectId": f"P{index:06d}",
                "sampleId": sample,
                "name": sample,
            }
        )
    path.write_text(json.dumps({"sources": items}, separators=(",", ":")))


def write_deep(path: Path, depth: int) -> None:
    path.write_text('{"sources": ' + "[" * depth + "]" * depth + "}")


def build(directory: Path) -> dict[str, Path]:
    cases = {
        "csv, 100,000 rows (refused)": ("rows100k.csv", lambda p: write_csv(p, 100_000)),
        "json, 100,000 rows (refused)": ("rows100k.json", lambda p: write_json(p, 100_000)),
        "csv, 10,000 rows (accepted)": ("rows10k.csv", lambda p: write_csv(p, 10_000)),
        "json, 10,000 rows (accepted)": ("rows10k.json", lambda p: write_json(p, 10_000)),
        "json, 10,000 deep (refused)": ("deep10k.json", lambda p: write_deep(p, 10_000)),
        "json, 16 MiB of brackets (refused)": ("deep16m.json", lambda p: write_deep(p, 8 * 1024 * 1024 - 8)),
    }
    paths = {}
    for label, (name, writer) in cases.items():
        path = directory / name
        writer(path)
        paths[label] = path
    return paths


def _max_rss_mib() -> float:
    # ru_maxrss is KiB on Linux (bytes on macOS).
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def measure(path: str, repeat: int, no_row_limit: bool) -> dict[str, object]:
    """In the child: read_manifest on ``path``, timed, then once under tracemalloc."""
    from airflow_provider_omics.staging import manifests as manifest

    if no_row_limit:
        manifest.MAX_MANIFEST_ROWS = 10**9
    baseline = _max_rss_mib()

    def run() -> str:
        try:
            rows = manifest.read_manifest(path).rows
        except manifest.ManifestError as err:
            return "refused: " + str(err).splitlines()[0][len(f"Manifest {path} ") :][:110]
        return f"accepted: {len(rows):,} rows"

    best = float("inf")
    outcome = ""
    for _ in range(repeat):
        start = time.perf_counter()
        outcome = run()
        best = min(best, time.perf_counter() - start)
    rss = _max_rss_mib() - baseline
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"seconds": best, "rss_mib": rss, "traced_mib": peak / 2**20, "outcome": outcome}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the best time is shown")
    parser.add_argument(
        "--no-row-limit", action="store_true", help="also check the 100,000-row manifests row by row (slow)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.repeat, args.no_row_limit)))
        return

    with tempfile.TemporaryDirectory(prefix="bench_manifest_") as tmp:
        paths = build(Path(tmp))
        runs = [(label, path, False) for label, path in paths.items()]
        if args.no_row_limit:
            runs += [(label.replace("(refused)", "without the row limit"), paths[label], True) for label in paths][:2]
        print(f"{'case':<44} {'MiB':>6} {'seconds':>8} {'peak RSS +MiB':>14} {'traced MiB':>11}  outcome")
        for label, path, unlimited in runs:
            command = [sys.executable, __file__, "--child", str(path), "--repeat", str(args.repeat)]
            if unlimited:
                command.append("--no-row-limit")
            env = {**os.environ, "PYTHONWARNINGS": "ignore"}
            done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            size = path.stat().st_size / 2**20
            print(
                f"{label:<44} {size:>6.1f} {result['seconds']:>8.3f} {result['rss_mib']:>14.1f} "
                f"{result['traced_mib']:>11.1f}  {result['outcome']}"
            )


if __name__ == "__main__":
    main()
