"""``OmicsEmulator``: a local HealthOmics sequence-store endpoint for tests, demos and users' own DAG tests.

It serves the emulated API (see :mod:`.models` and :mod:`.responses`) on ``127.0.0.1`` and a free port in a
background thread, so that the real boto3 client talks to it over real HTTP::

    with OmicsEmulator() as emu:
        client = emu.client()
        store = client.create_sequence_store(name="demo")

An emulator in another process is steered through its admin endpoints (see :mod:`.responses`), with
:func:`emulator_admin`.

Read set import jobs (StartReadSetImportJob) read their sources from an S3 endpoint given to the emulator,
moto's server in tests::

    with OmicsEmulator(s3_endpoint_url="http://127.0.0.1:5000") as emu:
        emu.hold_import_jobs()  # jobs stay SUBMITTED until released
        job = emu.client().start_read_set_import_job(sequenceStoreId=store, roleArn=role, sources=[...])
        emu.hold_import_jobs(at="IN_PROGRESS")  # they start, but stay IN_PROGRESS
        emu.wait_for_import_job(job["id"], "IN_PROGRESS")
        emu.release_import_jobs()
        emu.wait_for_import_job(job["id"], ("COMPLETED", "COMPLETED_WITH_FAILURES", "FAILED"))
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from airflow_provider_omics.testing.auth import SigV4Verifier
from airflow_provider_omics.testing.faults import FaultConfig, FaultInjector, HeldRequest
from airflow_provider_omics.testing.gates import check_import_hold, check_release_after_reads
from airflow_provider_omics.testing.models import OmicsBackend
from airflow_provider_omics.testing.quotas import QuotaConfig, QuotaEnforcer
from airflow_provider_omics.testing.responses import OmicsHTTPServer

DUMMY_ACCESS_KEY = "testing"
DUMMY_SECRET_KEY = "testing"

# One boto3 session for every client built here: it caches the parsed service model, which makes a new
# client ~10x cheaper. Sessions are not thread-safe, so clients are built under a lock (using them is safe).
_session_lock = threading.Lock()
_session: Any = None


def emulator_client(endpoint_url: str, **client_kwargs: Any) -> Any:
    """A boto3 ``omics`` client for an emulator at ``endpoint_url`` (one running in another process, say).

    Region ``us-east-1``, dummy keys and ``inject_host_prefix=False`` unless given; a ``config`` is merged
    over the one that disables the host prefix.
    """
    import boto3
    from botocore.config import Config

    config = Config(inject_host_prefix=False)
    if client_kwargs.get("config") is not None:
        config = config.merge(client_kwargs["config"])
    client_kwargs["config"] = config
    client_kwargs.setdefault("region_name", "us-east-1")
    client_kwargs.setdefault("aws_access_key_id", DUMMY_ACCESS_KEY)
    client_kwargs.setdefault("aws_secret_access_key", DUMMY_SECRET_KEY)
    global _session
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client("omics", endpoint_url=endpoint_url, **client_kwargs)


def emulator_admin(endpoint_url: str, path: str, body: Any = None, timeout: float = 30) -> Any:
    """Call an admin endpoint (``path`` under ``/_emulator/``: ``"requests"``, ``"faults"``, ...) of the emulator
    at ``endpoint_url``: ``GET`` without a ``body``, else ``POST`` it as JSON; returns the decoded answer."""
    request = urllib.request.Request(
        f"{endpoint_url.rstrip('/')}/_emulator/{path.lstrip('/')}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


class OmicsEmulator:
    """The emulated service on ``host:port`` (``port=0``: a free one), persisting under ``data_dir``.

    :param data_dir: where stores, uploads, parts and read sets live; ``None``: a temporary directory removed
        on stop. An emulator started on the directory of a previous one carries on where it stopped.
    :param access_key: with ``secret_key``, every request must carry a valid SigV4 signature with these keys
        (else AccessDeniedException); without them any signer is accepted.
    :param faults: fault injection from the start (off by default); see :meth:`set_faults`.
    :param activation_delay: seconds a completed (or imported) read set stays PROCESSING_UPLOAD, at least.
    :param import_job_delay: seconds a read set import job stays SUBMITTED, at least.
    :param s3_endpoint_url: the S3 endpoint that read set import jobs read their ``s3://`` sources from (moto's
        ``ThreadedMotoServer``, MinIO, ...); ``None``: boto3's own configuration (``AWS_ENDPOINT_URL_S3``,
        ``AWS_ENDPOINT_URL``, else AWS). The emulator reads with its own credentials; it does not assume the
        job's ``roleArn``.
    :param s3_region: the region of the S3 client (default: ``region``).
    :param s3_access_key: with ``s3_secret_key``, the S3 client's keys; without them, boto3's credential chain
        (moto's server takes any keys).
    :param quotas: the service's API quotas, answered with ThrottlingException above them (:mod:`.quotas`):
        ``"default"`` (the service's defaults), a mapping of operation to TPS (the defaults with those
        overrides), a :class:`~.quotas.QuotaConfig` (a time scale, say), or ``None`` (the default: no quotas).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        access_key: str | None = None,
        secret_key: str | None = None,
        faults: FaultConfig | None = None,
        activation_delay: float = 0.2,
        region: str = "us-east-1",
        import_job_delay: float = 0.2,
        s3_endpoint_url: str | None = None,
        s3_region: str | None = None,
        s3_access_key: str | None = None,
        s3_secret_key: str | None = None,
        quotas: str | Mapping[str, float] | QuotaConfig | None = None,
    ) -> None:
        if (access_key is None) != (secret_key is None):
            raise ValueError("give both access_key and secret_key, or neither")
        if (s3_access_key is None) != (s3_secret_key is None):
            raise ValueError("give both s3_access_key and s3_secret_key, or neither")
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self.host = host
        self._port = port
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.activation_delay = activation_delay
        self.import_job_delay = import_job_delay
        self.s3_endpoint_url = s3_endpoint_url
        self.s3_region = s3_region
        self._s3_keys = (s3_access_key, s3_secret_key)
        self._faults = FaultInjector(faults)
        self._quotas = QuotaEnforcer(QuotaConfig.of(quotas))
        self._server: OmicsHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._backend: OmicsBackend | None = None
        self._temp_dir: str | None = None
        # A hold asked for before start: applied before the backend resumes pending activations.
        self._hold_at_start: tuple[int | None] | None = None
        # Likewise for import jobs: (at, release_after_reads).
        self._import_hold_at_start: tuple[str, int | None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> OmicsEmulator:
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        if self._data_dir is None:
            self._temp_dir = tempfile.mkdtemp(prefix="omics-emulator-")
        data_dir = self._data_dir if self._data_dir is not None else Path(self._temp_dir or "")
        backend = OmicsBackend(
            data_dir,
            region=self.region,
            activation_delay=self.activation_delay,
            import_job_delay=self.import_job_delay,
            s3_endpoint_url=self.s3_endpoint_url,
            s3_region=self.s3_region,
            s3_access_key=self._s3_keys[0],
            s3_secret_key=self._s3_keys[1],
        )
        verifier = None
        if self.access_key is not None and self.secret_key is not None:
            verifier = SigV4Verifier(self.access_key, self.secret_key)
        self._server = OmicsHTTPServer((self.host, self._port), backend, self._faults, verifier, self._quotas)
        self._backend = backend
        if self._hold_at_start is not None:
            backend.hold_activations(release_after_reads=self._hold_at_start[0])
            self._hold_at_start = None
        if self._import_hold_at_start is not None:
            at, release_after_reads = self._import_hold_at_start
            backend.hold_import_jobs(at=at, release_after_reads=release_after_reads)
            self._import_hold_at_start = None
        backend.start()
        self._faults.gate.resume()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="omics-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end open connections and background activations; remove a temporary data dir."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            # Held requests are dropped unserved, so that their threads end with the server.
            self._faults.gate.shutdown()
            server.close_connections()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._backend is not None:
            self._backend.close()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def serve_forever(self) -> None:
        """Block until :meth:`stop` is called from another thread (or a signal handler)."""
        thread = self._thread
        if thread is None:
            raise RuntimeError("the emulator is not running")
        while thread.is_alive():
            thread.join(0.5)

    def __enter__(self) -> OmicsEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- what tests use ------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return self._server.server_port

    @property
    def endpoint_url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.model.data_dir

    @property
    def model(self) -> OmicsBackend:
        """The backend: state and rules (stores, uploads, read sets), for inspection in tests."""
        if self._backend is None:
            raise RuntimeError("the emulator has not been started")
        return self._backend

    def client(self, **client_kwargs: Any) -> Any:
        """A boto3 ``omics`` client for this emulator (keyword arguments go to ``Session.client``).

        The endpoint, region, keys (the emulator's, or dummy ones) and ``inject_host_prefix=False`` are set
        unless given; a ``config`` is merged over the one that disables the host prefix.
        """
        client_kwargs.setdefault("region_name", self.region)
        client_kwargs.setdefault("aws_access_key_id", self.access_key or DUMMY_ACCESS_KEY)
        client_kwargs.setdefault("aws_secret_access_key", self.secret_key or DUMMY_SECRET_KEY)
        return emulator_client(client_kwargs.pop("endpoint_url", None) or self.endpoint_url, **client_kwargs)

    def set_faults(self, faults: FaultConfig) -> None:
        """Replace the fault config (reseeding its random generator); counts keep accumulating."""
        self._faults.set_config(faults)

    @property
    def faults(self) -> FaultConfig:
        return self._faults.config

    @property
    def fault_counts(self) -> dict[str, int]:
        """How many of each fault were injected: error names, ``"drop"``, ``"drop_response"`` and ``"latency"``."""
        return self._faults.counts

    def set_quotas(self, quotas: str | Mapping[str, float] | QuotaConfig | None) -> None:
        """Enforce these quotas from now on (see the ``quotas`` parameter); ``None`` turns them off."""
        self._quotas.set_config(QuotaConfig.of(quotas))

    @property
    def quotas(self) -> QuotaConfig | None:
        return self._quotas.config

    def quota_counts(self) -> dict[str, dict[str, int]]:
        """``{operation: {"calls": n, "throttled": m}}``: every call served so far, quotas on or off."""
        return self._quotas.counts()

    def reset_quota_counts(self) -> None:
        self._quotas.reset_counts()

    def inject(self, error: str, operation: str | None = None, count: int = 1) -> None:
        """Answer the next ``count`` requests (of ``operation``, or any) with ``error``, or ``"drop"`` them
        unserved, or serve them and ``"drop_response"`` (the answer is lost, the change is not)."""
        self._faults.inject(error, operation, count)

    def hold_activations(self, release_after_reads: int | None = None) -> None:
        """Keep read sets in PROCESSING_UPLOAD until :meth:`release_activations`, or until clients were answered
        PROCESSING_UPLOAD ``release_after_reads`` times for each, by GetReadSetMetadata or in a ListReadSets
        answer (see :meth:`OmicsBackend.hold_activations`).

        Called before :meth:`start`, it holds from the start, the read sets a previous emulator left in
        PROCESSING_UPLOAD on the same data directory included.
        """
        if self._backend is None:
            self._hold_at_start = (check_release_after_reads(release_after_reads),)
        else:
            self._backend.hold_activations(release_after_reads=release_after_reads)

    def release_activations(self) -> None:
        """Let every held read set move on, and hold no more."""
        if self._backend is None:
            self._hold_at_start = None
        else:
            self._backend.release_activations()

    def hold_import_jobs(self, at: str = "SUBMITTED", release_after_reads: int | None = None) -> None:
        """Keep read set import jobs at status ``at`` at the furthest until :meth:`release_import_jobs`, or until
        GetReadSetImportJob has answered that status ``release_after_reads`` times for each (see
        :meth:`OmicsBackend.hold_import_jobs`).

        ``at="SUBMITTED"`` (the default): jobs do not start. ``at="IN_PROGRESS"``: jobs start and import their
        sources (read set activations still follow :meth:`hold_activations`) but do not finish. Moving the
        hold from SUBMITTED to IN_PROGRESS lets held jobs start; :meth:`wait_for_import_job` waits until one
        has. Called before :meth:`start`, it holds from the start, the jobs a previous emulator left
        unfinished on the same data directory included. Steered from another process by ``POST
        /_emulator/importjobs``.
        """
        if self._backend is None:
            self._import_hold_at_start = (check_import_hold(at), check_release_after_reads(release_after_reads))
        else:
            self._backend.hold_import_jobs(at=at, release_after_reads=release_after_reads)

    def release_import_jobs(self) -> None:
        """Let every held import job move on, and hold no more."""
        if self._backend is None:
            self._import_hold_at_start = None
        else:
            self._backend.release_import_jobs()

    def wait_for_import_job(self, job_id: str, statuses: str | Iterable[str], timeout: float = 30.0) -> dict[str, Any]:
        """Block until import job ``job_id`` has one of ``statuses`` (``"IN_PROGRESS"``, or a tuple of them);
        returns its GetReadSetImportJob answer. It waits on the job's own changes, so that a test needs no
        sleep; ``timeout`` only catches a hang (:class:`TimeoutError`)."""
        return self.model.wait_for_import_job(job_id, statuses, timeout)

    def wait_for_import_job_read_sets(self, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """Block until import job ``job_id`` has written the read set of each source (or failed the source), in
        whatever status their activations have reached (:meth:`hold_activations` keeps them PROCESSING_UPLOAD);
        returns its GetReadSetImportJob answer. It waits on the job's own changes; ``timeout`` only catches a
        hang (:class:`TimeoutError`)."""
        return self.model.wait_for_import_job_read_sets(job_id, timeout)

    def hold_requests(self, operation: str) -> None:
        """Hold every request of ``operation`` from now on, once its headers are read and before its body is,
        until :meth:`release_request`, :meth:`release_requests` or :meth:`open_requests` lets it through.

        Held requests wait without a timeout (their clients' own timeouts still apply); :meth:`stop` drops them
        unserved. Called before :meth:`start`, it holds from the first request.
        """
        self._faults.gate.hold(operation)

    def held_requests(self, operation: str | None = None) -> list[HeldRequest]:
        """The requests held now (of ``operation``, or all), oldest first."""
        return self._faults.gate.held(operation)

    def wait_held_requests(
        self, count: int = 1, operation: str | None = None, timeout: float = 60.0
    ) -> list[HeldRequest]:
        """Block until at least ``count`` requests (of ``operation``, or any) are held; returns them.
        ``timeout`` only catches a hang (:class:`TimeoutError`)."""
        return self._faults.gate.wait_held(count, operation, timeout)

    def release_request(self, request_id: int) -> HeldRequest:
        """Serve one held request (:attr:`HeldRequest.id`); the next ones are still held. :class:`KeyError`
        if it is not held (any more)."""
        return self._faults.gate.release(request_id)

    def release_requests(self, operation: str | None = None) -> list[HeldRequest]:
        """Serve every held request (of ``operation``, or all); the next ones are still held."""
        return self._faults.gate.release_all(operation)

    def open_requests(self, operation: str | None = None) -> list[HeldRequest]:
        """Hold ``operation`` (every operation when ``None``) no more, and serve what was held; returns that."""
        return self._faults.gate.open(operation)

    @property
    def holding_requests(self) -> frozenset[str]:
        """The operations whose requests are held."""
        return self._faults.gate.holding
