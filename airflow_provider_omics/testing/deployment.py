"""A real Airflow deployment in local processes, for end-to-end tests and benchmarks of DAGs against the emulator.

:class:`AirflowDeployment` runs Airflow 3's own components under one temporary ``AIRFLOW_HOME``, each in a
process group of its own with its log in a file: ``api-server`` (the REST API and the Execution API that task
processes talk to), ``dag-processor`` and ``scheduler``. The metadata database is sqlite: Airflow 3 accepts it
with any executor, because task processes no longer write to the database themselves, only the scheduler, the
dag-processor and the API server do.

For a distributed executor, :meth:`AirflowDeployment.start_redis` starts a Redis broker (Debian's
``redis-server``) and :meth:`AirflowDeployment.start_celery_worker` starts ``airflow celery worker`` processes,
each with a home, a copy of the DAG files, task logs and a hostname of its own, and no access to the metadata
database: what Celery workers on other machines (MWAA's, say) have.

    deployment = AirflowDeployment(workdir, [dag_file], executor="LocalExecutor")
    try:
        deployment.start_emulator(workdir / "emulator")
        deployment.start(dag_id="omics_upload_read_set")
        deployment.trigger("omics_upload_read_set", "run-1", conf)
        assert deployment.wait_run("omics_upload_read_set", "run-1", timeout=600) == "success"
    finally:
        deployment.stop()
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

HOSTNAME_ENV = "OMICS_AIRFLOW_HOSTNAME"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_hostname() -> str:
    """A ``[core] hostname_callable``: the hostname in ``$OMICS_AIRFLOW_HOSTNAME``, else the machine's FQDN.

    Task instances record the hostname of the worker that ran them; several workers on one machine would all
    record the same FQDN.
    """
    return os.environ.get(HOSTNAME_ENV) or socket.getfqdn()


def process_groups(pid: int) -> set[int]:
    """The process groups of ``pid`` and of all its descendants, never the caller's own."""
    found = set()
    try:
        root = psutil.Process(pid)
        members = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        members = []
    for member in members:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            found.add(os.getpgid(member.pid))
    return found - {os.getpgid(0)}


def signal_groups(groups: Iterable[int], sig: int) -> None:
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)


def clean_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without Airflow's settings and AWS profiles: a deployment configures itself."""
    env = dict(os.environ if environ is None else environ)
    for name in list(env):
        if name.startswith("AIRFLOW_") or name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            del env[name]
    return env


class AirflowDeployment:
    """Airflow's api-server, dag-processor and scheduler (and, optionally, Redis, Celery workers and the
    HealthOmics emulator), each a process group of its own, logging to ``workdir/NAME.log``.

    :param workdir: where ``airflow-home``, the workers' directories and the components' logs go.
    :param dag_files: copied into the DAGs folder (and into each worker's).
    :param executor: ``[core] executor``.
    :param config: more settings, ``{"SECTION__KEY": value}`` (``AIRFLOW__SECTION__KEY`` for every component).
    :param environ: more environment variables for every component (``AIRFLOW_CONN_...``, say).
    :param api_port: the api-server's port on 127.0.0.1 (default: a free one).
    """

    def __init__(
        self,
        workdir: Path,
        dag_files: Iterable[Path],
        *,
        executor: str = "LocalExecutor",
        config: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
        api_port: int = 0,
    ) -> None:
        self.workdir = Path(workdir)
        self.home = self.workdir / "airflow-home"
        shutil.rmtree(self.home, ignore_errors=True)
        self.dags = self.home / "dags"
        self.dags.mkdir(parents=True)
        self.dag_files = [Path(f) for f in dag_files]
        for dag_file in self.dag_files:
            shutil.copy(dag_file, self.dags / dag_file.name)
        self.db_path = self.home / "airflow.db"
        self.api_port = api_port or free_port()
        self.procs: dict[str, subprocess.Popen[Any]] = {}
        self.groups: dict[str, set[int]] = {}
        self.endpoint_url = ""
        self.broker_url = ""
        self.worker_homes: dict[str, Path] = {}
        self._token = ""
        settings = {
            "CORE__DAGS_FOLDER": str(self.dags),
            "CORE__LOAD_EXAMPLES": "False",
            "CORE__EXECUTOR": executor,
            "CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            "CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db_path}",
            "API__HOST": "127.0.0.1",
            "API__PORT": str(self.api_port),
            "API__WORKERS": "1",
            # The scheduler signs the task processes' tokens and the API server checks them: one secret.
            "API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "LOGGING__LOGGING_LEVEL": "INFO",
            **(config or {}),
        }
        self.env = clean_environ()
        self.env["AIRFLOW_HOME"] = str(self.home)
        self.env.update({f"AIRFLOW__{key.upper()}": value for key, value in settings.items()})
        self.env.update(environ or {})

    # -- processes -----------------------------------------------------------------------------------------

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def start_process(
        self, name: str, argv: list[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[Any]:
        with open(self.log_path(name), "wb") as log:
            proc = subprocess.Popen(
                argv,
                env=dict(self.env if env is None else env),
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def start_emulator(
        self, data_dir: Path, *, activation_delay: float = 0.2, timeout: float = 60, extra_args: Sequence[str] = ()
    ) -> str:
        """The HealthOmics emulator's command line in its own process, logging to ``emulator.log``; returns (and
        keeps) its URL. ``extra_args``: more of its options (``["--quotas", "default"]``, say)."""
        port = free_port()
        argv = [sys.executable, "-m", "airflow_provider_omics.testing.emulator", "--port", str(port)]
        argv += ["--data-dir", str(data_dir), "--activation-delay", str(activation_delay), *extra_args]
        self.start_process("emulator", argv)
        self.wait(lambda: "listening on" in self.log_path("emulator").read_text(errors="replace"), timeout, "emulator")
        self.endpoint_url = f"http://127.0.0.1:{port}"
        return self.endpoint_url

    def start_redis(self, timeout: float = 60) -> str:
        """Debian's ``redis-server`` on a free loopback port, without persistence; returns its broker URL."""
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise FileNotFoundError("redis-server is not installed (make services installs it)")
        port = free_port()
        data = self.workdir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        argv = [redis_server, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data)]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes"]
        self.start_process("redis", argv)
        self.wait(lambda: _redis_ping(port), timeout, "redis-server to answer PING")
        self.broker_url = f"redis://127.0.0.1:{port}/0"
        return self.broker_url

    def migrate(self, timeout: float = 600) -> None:
        argv = [sys.executable, "-m", "airflow", "db", "migrate"]
        result = subprocess.run(argv, env=self.env, capture_output=True, check=False, timeout=timeout)
        self.log_path("db-migrate").write_bytes(result.stdout + result.stderr)
        if result.returncode:
            raise RuntimeError(f"airflow db migrate failed ({result.returncode}); see {self.log_path('db-migrate')}")

    def start(
        self,
        dag_id: str | None = None,
        api_timeout: float = 120,
        dag_timeout: float = 180,
        then: Callable[[], object] | None = None,
    ) -> None:
        """Migrate the database, start api-server, dag-processor and scheduler (and ``then``, say workers, while
        they boot), and wait until the API answers (and ``dag_id`` is serialized)."""
        self.migrate()
        airflow = [sys.executable, "-m", "airflow"]
        self.start_process("api-server", [*airflow, "api-server", "--port", str(self.api_port)])
        self.start_process("dag-processor", [*airflow, "dag-processor"])
        self.start_process("scheduler", [*airflow, "scheduler"])
        if then is not None:
            then()
        self.wait(self.api_ready, api_timeout, "the API server to answer")
        if dag_id is not None:
            self.wait(lambda: self.dag_ready(dag_id), dag_timeout, f"the dag-processor to serialize {dag_id}")

    def start_celery_worker(
        self, name: str, *, concurrency: int, config: Mapping[str, str] | None = None
    ) -> subprocess.Popen[Any]:
        """``airflow celery worker`` named ``name`` (its Celery hostname and the task instances' hostname), in a
        directory of its own: its home, its copy of the DAG files, its task logs, and a database of its own that
        stays without tables (only the CLI's audit log tries it, and tolerates that): workers reach Airflow
        through the broker and the Execution API alone."""
        if not self.broker_url:
            raise RuntimeError("start_redis() first: the workers need the broker")
        root = self.workdir / name
        shutil.rmtree(root, ignore_errors=True)
        (root / "dags").mkdir(parents=True)
        for dag_file in self.dag_files:
            shutil.copy(dag_file, root / "dags" / dag_file.name)
        settings = {
            "CORE__DAGS_FOLDER": str(root / "dags"),
            "CORE__HOSTNAME_CALLABLE": f"{__name__}.env_hostname",
            "DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root / 'not-the-metadata.db'}",
            "LOGGING__BASE_LOG_FOLDER": str(root / "logs"),
            "LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            **(config or {}),
        }
        env = dict(self.env)
        env.update({f"AIRFLOW__{key.upper()}": value for key, value in settings.items()})
        env.update({"AIRFLOW_HOME": str(root), HOSTNAME_ENV: name})
        argv = [sys.executable, "-m", "airflow", "celery", "worker", "--celery-hostname", name]
        argv += ["--concurrency", str(concurrency), "--pid", str(root / "worker.pid")]
        # The test reads task logs from the worker's folder; a log server per worker would only cost CPU.
        argv += ["--skip-serve-logs", "--without-mingle", "--without-gossip"]
        self.worker_homes[name] = root
        return self.start_process(name, argv, env=env, cwd=root)

    def wait_celery_worker(self, name: str, timeout: float = 120) -> None:
        self.wait(lambda: f"{name} ready" in self.log_path(name).read_text(errors="replace"), timeout, f"{name}")

    def wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``ready`` until it holds; a component that exits meanwhile, or the timeout, raises."""
        deadline = time.monotonic() + timeout
        while not ready():
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
            time.sleep(0.5)

    def check_alive(self, *, except_for: Iterable[str] = ()) -> None:
        for name, proc in self.procs.items():
            if name not in except_for and proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}); see {self.log_path(name)}")

    def kill(self, name: str) -> None:
        """SIGKILL a component's process group and the groups of its descendants (a worker's task processes
        have groups of their own), as a machine that dies would; wait until it is gone."""
        proc = self.procs[name]
        signal_groups(process_groups(proc.pid) | {proc.pid}, signal.SIGKILL)
        proc.wait(timeout=60)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM every component that still runs (the last started first), then SIGKILL what is left of them
        and of their descendants' process groups."""
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                self.groups[name] = process_groups(proc.pid) | {proc.pid}
                signal_groups([proc.pid], signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for name, proc in self.procs.items():
            signal_groups(self.groups.get(name, set()), signal.SIGKILL)
            if proc.poll() is None:
                proc.wait(timeout=30)

    def tail(self, name: str, lines: int = 60) -> str:
        path = self.log_path(name)
        if not path.exists():
            return f"(no log {path})"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- Airflow -------------------------------------------------------------------------------------------

    def api_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health", timeout=2):
                return True
        except OSError:
            return False

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Read the metadata database."""
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30) as db:
            return db.execute(sql, args).fetchall()

    def dag_ready(self, dag_id: str) -> bool:
        try:
            return bool(self.query("SELECT 1 FROM serialized_dag WHERE dag_id = ?", dag_id))
        except sqlite3.Error:
            return False

    def api(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        """Call the REST API (``/api/v2/...``) as an admin; returns the decoded answer."""
        base = f"http://127.0.0.1:{self.api_port}"
        if not self._token:
            with urllib.request.urlopen(f"{base}/auth/token", timeout=timeout) as response:
                self._token = str(json.load(response)["access_token"])
        request = urllib.request.Request(
            f"{base}{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._token}"},
            method=method,
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)

    def trigger(self, dag_id: str, run_id: str, conf: Mapping[str, Any]) -> None:
        """Trigger a run with a conf, as the UI's trigger form does."""
        self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"dag_run_id": run_id, "logical_date": None, "conf": conf})

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", dag_id, run_id)
        return str(rows[0][0]) if rows else None

    def wait_run(self, dag_id: str, run_id: str, timeout: float, *, except_for: Iterable[str] = ()) -> str:
        """Wait until the run succeeds or fails; components in ``except_for`` may be gone meanwhile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.run_state(dag_id, run_id)
            if state in ("success", "failed"):
                return str(state)
            self.check_alive(except_for=except_for)
            time.sleep(1)
        raise TimeoutError(f"run {run_id} did not finish in {timeout:.0f} s")


# Where the simple auth manager writes the generated passwords (as ``airflow standalone`` does), in AIRFLOW_HOME.
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"


def emulator_connection(endpoint: str, **extra: Any) -> str:
    """The JSON of an ``aws`` connection to the emulator at ``endpoint`` (for ``AIRFLOW_CONN_AWS_DEFAULT``), with
    ``extra`` in its extra (``omics_quotas=False``, say). Its key and secret are 6+ characters: the secret masker
    skips shorter secrets, and says so in every task log."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": "emulator-key",
            "password": "emulator-secret",
            "extra": {"region_name": REGION, "endpoint_url": endpoint, **extra},
        }
    )


def ui_deployment(workdir: Path, allowed_root: Path, *, api_port: int = 0) -> AirflowDeployment:
    """A deployment to sign in to as a person does: the example DAGs' folder, the simple auth manager's ``admin``
    with a generated password (:func:`admin_password`), a free port for the log server (another deployment on the
    machine may hold the default one) and ``allowed_root`` as the workers' only allowed local root."""
    return AirflowDeployment(
        workdir,
        [],
        config={
            "CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
            "CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "OMICS__ALLOWED_LOCAL_ROOTS": str(allowed_root),
        },
        api_port=api_port,
    )


def admin_password(deployment: AirflowDeployment, timeout: float = 60) -> str:
    """The admin's password, once the api-server of a :func:`ui_deployment` has written it."""
    passwords = deployment.home / PASSWORDS_FILE
    deployment.wait(passwords.exists, timeout, f"the api-server to write {passwords}")
    return str(json.loads(passwords.read_text())["admin"])


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False
