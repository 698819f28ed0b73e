"""A working Airflow UI with the provider's example DAGs on the HealthOmics emulator: ``make ui``.

    .venv/bin/python scripts/ui.py [--port PORT] [--workdir DIR] [--samples N]

One command from a fresh clone to a UI to try the provider in: it starts the HealthOmics emulator (the service's
API quotas on, the provider pacing itself within them), creates a sequence store, writes staged sample files (a
paired gzipped FASTQ per sample) and a ready manifest of them, then Airflow's api-server, dag-processor,
scheduler and triggerer on loopback (:class:`~airflow_provider_omics.testing.deployment.AirflowDeployment`), with
the DAGs folder ``example_dags/``, the connection ``aws_default`` pointing at the emulator, the staging folder as
the workers' allowed root, and the downstream DAG ``omics_analyze_arriving_read_sets`` listening on the store's
asset (``OMICS_SEQUENCE_STORE_ARN`` set, every DAG unpaused). It prints the URL, the login, and what to type in
the forms of ``omics_upload_sequencing_run`` and ``omics_upload_read_set``; Ctrl-C stops everything it started.

Its working directory (default ``.ui/`` in the repository) holds the Airflow home, the components' logs
(``*.log``), the staged files and the emulator's data; it is emptied at each start.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import signal
import sys
import time
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]
DOWNSTREAM_DAG = "omics_analyze_arriving_read_sets"
RUN_DAG = "omics_upload_sequencing_run"
READ_SET_DAG = "omics_upload_read_set"


def write_samples(staging: Path, count: int) -> tuple[Path, list[tuple[Path, Path]]]:
    """``count`` paired gzipped FASTQs (about 3.3 MB a file) and a CSV manifest of them; returns both."""
    from airflow_provider_omics.testing.samples import write_fastq

    staging.mkdir(parents=True, exist_ok=True)
    pairs = []
    for n in range(1, count + 1):
        pairs.append(
            tuple(
                write_fastq(staging / f"S{n}_R{read}.fastq.gz", 20_000, compress=True, seed=10 * n + read)
                for read in (1, 2)
            )
        )
    manifest = staging / "manifest.csv"
    with open(manifest, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["sample_id", "subject_id", "name", "read1", "read2"])
        for n, (read1, read2) in enumerate(pairs, start=1):
            writer.writerow([f"S{n}", f"subject-{n}", f"S{n}-reads", read1, read2])
    return manifest, pairs  # type: ignore[return-value]


def ignore_stop_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--port", type=int, default=8080, help="the UI's port on 127.0.0.1 (default 8080; 0: a free one)"
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / ".ui", help="where everything lives (default .ui/)")
    parser.add_argument("--samples", type=int, default=3, help="paired samples staged and in the manifest (3)")
    args = parser.parse_args(argv)

    from airflow_provider_omics.testing import emulator_client
    from airflow_provider_omics.testing.deployment import admin_password, emulator_connection, ui_deployment

    # Ctrl-C and a polite kill both stop what was started.
    def terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    workdir = args.workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    staging = workdir / "staging"
    started = time.monotonic()
    print(f"Staging {args.samples} paired samples and their manifest in {staging} ...", flush=True)
    manifest, pairs = write_samples(staging, args.samples)
    deployment = ui_deployment(workdir, staging, api_port=args.port)
    try:
        print("Starting the HealthOmics emulator (the service's API quotas on) ...", flush=True)
        endpoint = deployment.start_emulator(workdir / "emulator", extra_args=["--quotas", "default"])
        client = emulator_client(endpoint)
        store = client.create_sequence_store(name="ui-store")
        deployment.env["OMICS_SEQUENCE_STORE_ARN"] = store["arn"]
        deployment.env["AIRFLOW_CONN_AWS_DEFAULT"] = emulator_connection(endpoint)
        print(f"  {endpoint}: sequence store {store['id']} ({store['arn']})", flush=True)
        print("Starting Airflow (db migrate, api-server, dag-processor, scheduler, triggerer) ...", flush=True)
        deployment.start(
            dag_id=RUN_DAG,
            then=lambda: deployment.start_process("triggerer", [sys.executable, "-m", "airflow", "triggerer"]),
        )
        deployment.wait(
            lambda: deployment.dag_ready(DOWNSTREAM_DAG), 180, f"the dag-processor to serialize {DOWNSTREAM_DAG}"
        )
        password = admin_password(deployment)
        url = f"http://127.0.0.1:{deployment.api_port}"
        (read1, read2) = pairs[0]
        print(
            f"""
Airflow is up in {time.monotonic() - started:.0f} s: {url}
  sign in as admin, password {password}
  (components' logs: {workdir}/*.log; task logs: {deployment.home}/logs)

Upload a sequencing run: open DAG {RUN_DAG}, "Trigger", and type
  Sequence store id   {store["id"]} (filled in: the store of OMICS_SEQUENCE_STORE_ARN)
  Manifest            {manifest}
  (the rest as it is; "Upload tuning" holds the part size and the task budgets)
Each verified run announces its read sets on the store's asset: DAG {DOWNSTREAM_DAG} runs on it.

Upload one read set: open DAG {READ_SET_DAG}, "Trigger", and type
  Sequence store id   {store["id"]} (filled in)
  Read 1              {read1}
  Read 2              {read2}
  Sample id / subject id / name: any (for example S1, subject-1, S1-reads)

Ctrl-C stops Airflow and the emulator.""",
            flush=True,
        )
        while True:
            time.sleep(5)
            deployment.check_alive()
    except KeyboardInterrupt:
        # At once: a second Ctrl-C (or a wrapper's forwarded one) would otherwise interrupt the handler itself.
        ignore_stop_signals()
        print("\nStopping ...", flush=True)
    except Exception as err:
        print(f"\nmake ui failed: {type(err).__name__}: {err}\nLogs: {workdir}/*.log", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C (or the SIGTERM of a wrapper that got the first) must not cut the stop short: that would
        # leave Airflow's components and the emulator running.
        ignore_stop_signals()
        deployment.stop()
    print("Stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
