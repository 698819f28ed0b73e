"""The emulator's command line: run the HealthOmics emulator in the foreground, for demos and for Airflow
workers in other processes; :func:`spawn` starts it as a child process.

    python -m airflow_provider_omics.testing.emulator --port 8787 --data-dir /tmp/omics

prints ``OmicsEmulator listening on http://127.0.0.1:8787`` once it accepts requests, and stops cleanly on
SIGTERM or SIGINT. ``--hold-activations`` starts it with read sets held in PROCESSING_UPLOAD (release them
with ``POST /_emulator/activations {"hold": false}``). ``--s3-endpoint-url`` names the S3 endpoint that read set
import jobs read from; ``--hold-import-jobs`` starts it with import jobs held at SUBMITTED (release them with
``POST /_emulator/importjobs {"hold": false}``). ``--quotas default`` enforces the service's API quotas
(ThrottlingException above them), ``--quota UploadReadSetPart=20`` raises one, ``--quota-time-scale 10`` runs them
ten times faster.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from airflow_provider_omics.testing.omics_emulator import OmicsEmulator
from airflow_provider_omics.testing.quotas import QuotaConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_omics.testing.emulator",
        description="Run the HealthOmics emulator in the foreground.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    parser.add_argument("--data-dir", default=None, help="state directory (default: a temporary one)")
    parser.add_argument("--access-key", default=None, help="require SigV4 signatures with this access key")
    parser.add_argument("--secret-key", default=None, help="... and this secret key")
    parser.add_argument("--activation-delay", type=float, default=0.2, help="seconds before a read set activates")
    parser.add_argument(
        "--hold-activations",
        action="store_true",
        help="keep read sets in PROCESSING_UPLOAD until released (POST /_emulator/activations)",
    )
    parser.add_argument(
        "--release-after-reads",
        type=int,
        default=None,
        metavar="N",
        help="with --hold-activations: release each read set once it was answered PROCESSING_UPLOAD N times "
        "(by GetReadSetMetadata, or listed by ListReadSets)",
    )
    parser.add_argument(
        "--import-job-delay", type=float, default=0.2, help="seconds before a read set import job starts"
    )
    parser.add_argument("--s3-endpoint-url", default=None, help="S3 endpoint that import jobs read sources from")
    parser.add_argument("--s3-region", default=None, help="region of that S3 endpoint (default us-east-1)")
    parser.add_argument("--s3-access-key", default=None, help="S3 access key (default: boto3's credential chain)")
    parser.add_argument("--s3-secret-key", default=None, help="... and secret key")
    parser.add_argument(
        "--hold-import-jobs",
        nargs="?",
        const="SUBMITTED",
        default=None,
        choices=("SUBMITTED", "IN_PROGRESS"),
        metavar="STATUS",
        help="keep import jobs at SUBMITTED (or the STATUS given) until released (POST /_emulator/importjobs)",
    )
    parser.add_argument(
        "--quotas",
        choices=("off", "default"),
        default="off",
        help="enforce the service's API quotas per operation (default: off)",
    )
    parser.add_argument(
        "--quota",
        action="append",
        default=[],
        metavar="OPERATION=TPS",
        help="with --quotas default: this operation's quota instead of the service's (repeatable)",
    )
    parser.add_argument(
        "--quota-time-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="with --quotas default: every quota X times higher (a benchmark's time scale)",
    )
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    if (args.access_key is None) != (args.secret_key is None):
        parser.error("give both --access-key and --secret-key, or neither")
    if args.release_after_reads is not None and (not args.hold_activations or args.release_after_reads < 1):
        parser.error("--release-after-reads takes a positive number and goes with --hold-activations")
    if (args.s3_access_key is None) != (args.s3_secret_key is None):
        parser.error("give both --s3-access-key and --s3-secret-key, or neither")
    quotas = None
    if args.quotas == "default":
        try:
            overrides = {op: float(tps) for op, _, tps in (item.partition("=") for item in args.quota)}
            quotas = QuotaConfig.default(overrides, time_scale=args.quota_time_scale)
        except ValueError as err:
            parser.error(f"--quota takes OPERATION=TPS: {err}")
    elif args.quota or args.quota_time_scale != 1.0:
        parser.error("--quota and --quota-time-scale go with --quotas default")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    emulator = OmicsEmulator(
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        access_key=args.access_key,
        secret_key=args.secret_key,
        activation_delay=args.activation_delay,
        import_job_delay=args.import_job_delay,
        s3_endpoint_url=args.s3_endpoint_url,
        s3_region=args.s3_region,
        s3_access_key=args.s3_access_key,
        s3_secret_key=args.s3_secret_key,
        quotas=quotas,
    )
    if args.hold_activations:
        emulator.hold_activations(release_after_reads=args.release_after_reads)
    if args.hold_import_jobs is not None:
        emulator.hold_import_jobs(at=args.hold_import_jobs)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    emulator.start()
    try:
        print(f"OmicsEmulator listening on {emulator.endpoint_url}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


def spawn(
    data_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    activation_delay: float = 0.2,
    start_new_session: bool = False,
    s3_endpoint_url: str | None = None,
    extra_args: Sequence[str] = (),
) -> tuple[subprocess.Popen[str], str]:
    """Start this command line in its own process and wait until it serves; returns the process and its URL.

    For demos and benchmarks whose Airflow workers (or measurements) must see the emulator as another process.
    ``s3_endpoint_url``: where its read set import jobs read from (S3 keys come from the environment).
    ``extra_args``: more of this command line's options (``["--quotas", "default"]``, say).
    """
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "airflow_provider_omics.testing.emulator", "--host", host, "--port", str(port)),
            *("--data-dir", str(data_dir), "--activation-delay", str(activation_delay)),
            *(("--s3-endpoint-url", s3_endpoint_url) if s3_endpoint_url else ()),
            *extra_args,
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=start_new_session,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        process.wait()
        raise RuntimeError(f"the emulator did not start: {line!r}")
    return process, line.rsplit(" ", 1)[-1].strip()
