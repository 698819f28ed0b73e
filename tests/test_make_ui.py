"""``make ui`` (``scripts/ui.py``) as a user runs it: it comes up printing the URL, the login and the forms' values;
a run of the printed manifest with those values succeeds and the downstream DAG runs on its asset event; Ctrl-C
stops everything it started."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Bounds on how long a step may take on a loaded machine, not expectations of how long it takes.
START_TIMEOUT = 420
RUN_TIMEOUT = 600


class Output:
    """The script's output, read line by line in a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))
        self.done.set()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text)
            if found:
                return found
            if self.done.is_set():
                break
            time.sleep(0.5)
        raise AssertionError(f"no {pattern!r} in the output of make ui:\n{self.text}")


def _api(base: str, token: str, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"{base}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def _until(what: str, probe: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"gave up waiting for {what}")


def test_make_ui_comes_up_runs_the_printed_forms_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    workdir = tmp_path / "ui"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "ui.py"), "--port", "0", "--workdir", str(workdir), "--samples", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    output = Output(proc)
    try:
        up = output.wait_for(
            r"Airflow is up in \d+ s: (http://127\.0\.0\.1:\d+)\n  sign in as admin, password (\S+)", START_TIMEOUT
        )
        base, password = up.group(1), up.group(2)
        store_id = output.wait_for(r"Sequence store id   (\d+)", 5).group(1)
        manifest = output.wait_for(r"Manifest            (\S+)", 5).group(1)
        assert Path(manifest).is_file() and str(workdir) in manifest
        # Signing in as the printed login works.
        login = urllib.request.Request(
            f"{base}/auth/token",
            data=json.dumps({"username": "admin", "password": password}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(login, timeout=60) as response:
            token = json.load(response)["access_token"]
        # The form's values as printed, the rest as the form has them.
        conf = {"sequence_store_id": store_id, "manifest": manifest}
        _api(
            base,
            token,
            "POST",
            "/api/v2/dags/omics_upload_sequencing_run/dagRuns",
            {"dag_run_id": "ui-1", "logical_date": None, "conf": conf},
        )

        def finished() -> str | None:
            state = _api(base, token, "GET", "/api/v2/dags/omics_upload_sequencing_run/dagRuns/ui-1")["state"]
            return state if state in ("success", "failed") else None

        assert _until("the run", finished, RUN_TIMEOUT) == "success"

        def downstream() -> list[str]:
            runs = _api(base, token, "GET", "/api/v2/dags/omics_analyze_arriving_read_sets/dagRuns")["dag_runs"]
            return [r["state"] for r in runs if r["state"] in ("success", "failed")]

        # The downstream DAG listens on the printed store's asset and is unpaused: the run's event starts it.
        assert _until("the downstream DAG's run", downstream, RUN_TIMEOUT) == ["success"]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            # Ctrl-C pressed twice, as impatient users do: the second must not cut the stop short.
            output.wait_for(r"Stopping \.\.\.", 60)
            proc.send_signal(signal.SIGINT)
        try:
            returncode = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    output.done.wait(30)
    assert returncode == 0, output.text
    assert output.text.rstrip().endswith("Stopped."), output.text
    # Nothing it started still answers: neither Airflow's API nor the emulator.
    emulator = re.search(r"  (http://127\.0\.0\.1:\d+): sequence store", output.text)
    assert emulator, output.text
    for url in (f"{base}/api/v2/version", f"{emulator.group(1)}/"):
        with pytest.raises(urllib.error.URLError) as refused:
            urllib.request.urlopen(url, timeout=10)
        # An HTTP error is an answer: the connection itself must be refused.
        assert not isinstance(refused.value, urllib.error.HTTPError), (url, refused.value)
