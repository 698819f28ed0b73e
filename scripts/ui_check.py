"""Check the ``omics_upload_read_set`` trigger form and task views in a real browser, as a person would use them.

    .venv/bin/python scripts/ui_check.py [--screenshots DIR] [--timeout SECONDS] [--keep]

It needs Playwright's Python package and Debian's Chromium (Playwright's own browser download is not used):

    .venv/bin/pip install -e '.[ui]'      # or: .venv/bin/pip install 'playwright>=1.40'
    apt-get install -y chromium           # /usr/bin/chromium; another binary: --chromium PATH

What it does, in a temporary directory: starts the HealthOmics emulator, creates a sequence store, writes a small
paired gzipped FASTQ, and starts Airflow's api-server, dag-processor and scheduler
(:class:`~airflow_provider_omics.testing.deployment.AirflowDeployment`) on free loopback ports with the DAGs
folder ``example_dags/``, the connection ``aws_default`` pointing at the emulator and the simple auth manager's
login (the admin password is read from ``$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated``, where
``airflow standalone`` writes it too). Then, in headless Chromium:

1. signs in, opens the DAG, clicks Trigger and submits the form with a store *name*: the form must refuse it in
   words (``01-form-refuses-store-name.png``) and no run may start; the "Upload tuning" section is shown
   (``02-form-upload-tuning.png``);
2. submits it again with the store id; the run must succeed;
3. the mapped upload tasks must be named like "sample-1 read 1 parts 1-2 of 4" (``03-mapped-upload-tasks.png``);
4. ``complete`` and ``verify`` must show the "HealthOmics Read Set" console link (``04-complete-link.png``,
   ``05-verify-link.png``);
5. a run with a well-formed but unknown store id must fail once, clearly, before anything is created: ``plan``
   fails alone with "Sequence store ... does not exist in region ..." (every other task upstream-failed or
   skipped) (``06-unknown-store-plan-log.png``, and ``07-unknown-store-plan-log-wrapped.png`` with the log viewer's
   Wrap on);
6. the form offers how the files get into the store (``method``, default auto; ``08-form-method.png``), and the
   successful run took the direct upload for the local files: ``import`` skipped, and ``plan``'s log says why.

Then the sequencing run, ``omics_upload_sequencing_run``, on three good paired FASTQs and a fourth sample, S4, whose
file is not FASTQ, each run triggered from its form:

7. the form, as it opens (``09-run-form.png``, ``10-run-form-upload-tuning.png``; it prints how many fields it
   flags before anything is typed: the manifest at most, the store id filled in from ``OMICS_SEQUENCE_STORE_ARN``);
8. a manifest whose S4 row names a missing file fails in ``plan`` alone, its first line "The manifest has 1 problem
   in 1 row; nothing was uploaded.", naming row, sample and file, and stores nothing
   (``11-run-bad-row-plan-log.png``);
9. the manifest with S4's bad file: the run fails, the three good samples are verified, and the grid shows the
   failed task ``failed_sample`` named "S4 failed at wait_active" (``12-run-failed-sample-grid.png``,
   ``13-run-failed-sample-task.png``), failing with a first line under 100 characters
   (``14-run-failed-sample-log.png``); ``wait_active``'s XCom tab holds the run so far, "after wait_active: 0
   verified, 0 already stored, 1 failed, 3 on their way (of 4 samples)" (``20-run-so-far-xcom.png``);
10. its one asset event announces S1, S2 and S3, in the Assets view (``15-assets.png``), and the downstream DAG
    ``omics_analyze_arriving_read_sets`` runs on it and succeeds (``16-downstream-run.png``);
11. S4's file fixed and the same manifest triggered again: it resumes, "1 uploaded and verified, 3 already stored,
    0 failed" (``17-resume-summary-log.png``), announcing S4 alone (``18-assets-resumed.png``,
    ``19-downstream-run-resumed.png``).

No component log or task log may contain "Skipping masking for a secret". Screenshots go to ``--screenshots``
(default: a new temporary directory, printed at the end). Everything it starts, it stops; its working directory
is removed unless ``--keep`` is given or a check failed (then its path is printed, with the components' logs).
It exits 0 when every check passed, 1 with the failed check's message otherwise, 2 when something it needs is
missing. About four minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "omics_upload_read_set"
GROUP = "upload_read_set"
REGION = "us-east-1"
UNKNOWN_STORE = "1234567890"
# What Chromium needs on a machine with a closed network: without the background-networking flags it keeps
# trying Google's hosts.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MAPPED_NAME = re.compile(r"\S+ read [12] (?:part \d+|parts \d+-\d+) of \d+")
UI_TIMEOUT_MS = 60_000


class CheckFailed(Exception):
    """A check of the UI did not hold: the message says which and what was seen."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def missing_requirements(chromium: str) -> list[str]:
    problems = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append(
            "Playwright's Python package is not installed: `.venv/bin/pip install -e '.[ui]'` "
            "(or `.venv/bin/pip install 'playwright>=1.40'`). Do not run `playwright install`: "
            "this script drives Debian's Chromium."
        )
    if not Path(chromium).exists():
        problems.append(
            f"Chromium is not at {chromium}: `apt-get update && apt-get install -y chromium` (Debian's package), "
            "or give the binary with --chromium PATH."
        )
    return problems


class Step:
    """Prints what the check is doing and how long each step took."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    @contextmanager
    def __call__(self, what: str) -> Iterator[None]:
        began = time.monotonic()
        print(f"[{began - self.started:6.1f} s] {what} ...", flush=True)
        yield
        print(f"           done in {time.monotonic() - began:.1f} s", flush=True)


def write_staged_fastq(staging: Path) -> tuple[Path, Path]:
    from airflow_provider_omics.testing.samples import write_fastq

    staging.mkdir(parents=True, exist_ok=True)
    # 20,000 reads are about 3.3 MB gzipped: four 1 MiB parts per file, enough for several mapped tasks.
    read1 = write_fastq(staging / "sample-1_R1.fastq.gz", 20_000, compress=True, seed=1)
    read2 = write_fastq(staging / "sample-1_R2.fastq.gz", 20_000, compress=True, seed=2)
    return read1, read2


def task_log_events(home: Path, run_id: str, task_id: str, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
    """The structured events of a task's latest attempt, as the task runner wrote them."""
    folder = home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    attempts = sorted(folder.glob("**/attempt=*.log"))
    if not attempts:
        return []
    events = []
    for line in attempts[-1].read_text(errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            events.append({"event": line})
    return events


def failure_message(events: list[dict[str, Any]]) -> str | None:
    """The message of the exception the task failed with."""
    for event in reversed(events):
        for detail in event.get("error_detail") or []:
            return str(detail.get("exc_value"))
    return None


def task_states(deployment: Any, run_id: str, dag_id: str = DAG_ID, group: str = GROUP) -> dict[str, str]:
    rows = deployment.query(
        "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ? AND run_id = ?", dag_id, run_id
    )
    return {
        (task if index < 0 else f"{task}[{index}]").removeprefix(f"{group}."): str(state) for task, index, state in rows
    }


class Browser:
    """One signed-in Chromium page on the Airflow UI."""

    def __init__(self, page: Any, base_url: str, shots: Path) -> None:
        self.page = page
        self.base_url = base_url
        self.shots = shots

    def screenshot(self, name: str) -> Path:
        path = self.shots / name
        self.page.screenshot(path=str(path))
        print(f"           screenshot {path}", flush=True)
        return path

    def sign_in(self, username: str, password: str) -> None:
        page = self.page
        page.goto(f"{self.base_url}/", timeout=UI_TIMEOUT_MS)
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/auth/login" not in url, timeout=UI_TIMEOUT_MS)

    def run_url(self, run_id: str, suffix: str = "", dag_id: str = DAG_ID) -> str:
        run = urllib.parse.quote(run_id, safe="")
        return f"{self.base_url}/dags/{dag_id}/runs/{run}{suffix}"

    def open_trigger_form(self, dag_id: str = DAG_ID) -> Any:
        page = self.page
        page.goto(f"{self.base_url}/dags/{dag_id}", timeout=UI_TIMEOUT_MS)
        page.get_by_role("button", name="Trigger").first.click(timeout=UI_TIMEOUT_MS)
        dialog = page.get_by_role("dialog")
        dialog.locator("#element_sequence_store_id").wait_for(timeout=UI_TIMEOUT_MS)
        return dialog

    @staticmethod
    def show_section(dialog: Any, title: str, field: str) -> None:
        """Open the form's section ``title`` unless ``field`` shows: the form opens one section at a time."""
        if not dialog.locator(f"[name=element_{field}]").first.is_visible():
            dialog.get_by_text(title, exact=True).click()
            dialog.locator(f"[name=element_{field}]").first.wait_for(state="visible", timeout=UI_TIMEOUT_MS)

    def fill_form(self, dialog: Any, store_id: str, read1: Path, read2: Path) -> None:
        self.show_section(dialog, "Run Parameters", "sequence_store_id")
        dialog.locator("#element_sequence_store_id").fill(store_id)
        dialog.locator("#element_read1").fill(str(read1))
        dialog.locator("#element_read2").fill(str(read2))
        dialog.locator("#element_sample_id").fill("sample-1")
        dialog.locator("#element_subject_id").fill("subject-1")
        dialog.locator("#element_name").fill("ui-check-read-set")
        self.show_section(dialog, "Upload tuning", "part_size_mib")
        dialog.locator("input[name=element_part_size_mib]").fill("1")
        dialog.locator("input[name=element_max_tasks]").fill("6")
        dialog.locator("input[name=element_max_concurrency]").fill("2")

    def wait_for_text(self, text: str | re.Pattern[str], what: str) -> None:
        try:
            self.page.get_by_text(text).first.wait_for(timeout=UI_TIMEOUT_MS)
        except Exception:
            raise CheckFailed(f"{what}: the page does not show {text!r}") from None

    def submit(self, dialog: Any) -> None:
        dialog.get_by_role("button", name="Trigger").click()

    def submit_for_run(self, dialog: Any) -> str:
        """Submit the form and return the run id of the run page the UI opens."""
        self.submit(dialog)
        self.page.wait_for_url(re.compile(r"/runs/[^/]+$"), timeout=UI_TIMEOUT_MS)
        return urllib.parse.unquote(self.page.url.rsplit("/runs/", 1)[1])


def check_form_refuses_store_name(browser: Browser, deployment: Any, read1: Path, read2: Path) -> None:
    dialog = browser.open_trigger_form()
    text = dialog.inner_text()
    check(
        "10 to 36 digits" in text and "Not its name" in text,
        "the trigger form does not say, before submit, that the store id is 10 to 36 digits and not its name",
    )
    check("FASTQ only" in text, "read 2's description does not say that it is for FASTQ only")
    check("BAM and CRAM only" in text, "the reference's description does not say that it is for BAM and CRAM only")
    check(
        "How the files get into the store" in text and "auto: import when every file is on S3" in text,
        "the form does not offer the path (method) with a description of auto",
    )
    dialog.get_by_text("How the files get into the store").first.scroll_into_view_if_needed()
    browser.screenshot("08-form-method.png")
    browser.fill_form(dialog, "my-store", read1, read2)
    tuning = dialog.inner_text()
    for title in ("Part size (MiB)", "Upload tasks at most", "Parts in flight per task"):
        check(title in tuning, f"the form's 'Upload tuning' section has no field {title!r}")
    check("MiB per uploaded part" in tuning, "the part size's description does not speak of MiB like its title")
    dialog.get_by_text("Upload tuning", exact=True).scroll_into_view_if_needed()
    browser.screenshot("02-form-upload-tuning.png")

    browser.submit(dialog)
    refusal = dialog.get_by_text("Invalid input for param sequence_store_id")
    try:
        refusal.wait_for(timeout=UI_TIMEOUT_MS)
    except Exception as err:
        raise CheckFailed(f"the form accepted the store name 'my-store' or said nothing: {err}") from None
    first_line = refusal.inner_text().strip().splitlines()[0]
    print(f"           the form says: {first_line}", flush=True)
    check(
        "10 to 36 digits" in first_line and "not the store name" in first_line,
        f"the refusal of a store name does not say in words what is expected: {first_line!r}",
    )
    # The refusal above the field it is about, with the field's own description.
    browser.show_section(dialog, "Run Parameters", "sequence_store_id")
    refusal.scroll_into_view_if_needed()
    browser.screenshot("01-form-refuses-store-name.png")
    runs = deployment.query("SELECT run_id FROM dag_run WHERE dag_id = ?", DAG_ID)
    check(not runs, f"a run started although the form refused the store name: {runs}")


def check_method_choice(deployment: Any, run_id: str) -> None:
    """The form's default method is auto: local files are uploaded, the import task skips, the plan says why."""
    states = task_states(deployment, run_id)
    check(
        states.get("import") == "skipped" and states.get("create") == "success",
        f"auto with local files did not take the direct upload: {states}",
    )
    said = [
        str(event.get("event"))
        for event in task_log_events(deployment.home, run_id, f"{GROUP}.plan")
        if "method=auto" in str(event.get("event"))
    ]
    check(
        any("upload the read set(s): 2 of 2 source(s) are not on S3" in line for line in said),
        f"the plan's log does not say that it chose a direct upload because the files are not on S3: {said}",
    )
    print(f"           plan says: {said[0]}", flush=True)


def check_mapped_task_names(browser: Browser, deployment: Any, run_id: str) -> None:
    page = browser.page
    page.goto(browser.run_url(run_id, f"/tasks/{GROUP}.upload_parts/mapped"), timeout=UI_TIMEOUT_MS)
    expected = int(
        deployment.query(
            "SELECT COUNT(*) FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = ?",
            DAG_ID,
            run_id,
            f"{GROUP}.upload_parts",
        )[0][0]
    )
    page.get_by_text(MAPPED_NAME).first.wait_for(timeout=UI_TIMEOUT_MS)
    names = MAPPED_NAME.findall(page.locator("body").inner_text())
    print(f"           mapped tasks: {', '.join(sorted(names))}", flush=True)
    check(
        expected > 1 and len(set(names)) == expected,
        f"the mapped task list shows {len(set(names))} names like 'sample-1 read 1 parts 1-2 of 4' "
        f"for {expected} upload tasks: {names}",
    )
    browser.screenshot("03-mapped-upload-tasks.png")


def check_console_link(browser: Browser, run_id: str, task: str, store_id: str, screenshot: str) -> None:
    page = browser.page
    page.goto(browser.run_url(run_id, f"/tasks/{GROUP}.{task}/details"), timeout=UI_TIMEOUT_MS)
    link = page.locator("a", has_text="HealthOmics Read Set")
    try:
        link.first.wait_for(timeout=UI_TIMEOUT_MS)
    except Exception:
        raise CheckFailed(f"the {task} task instance shows no 'HealthOmics Read Set' link") from None
    href = link.first.get_attribute("href") or ""
    print(f"           {task}: HealthOmics Read Set -> {href}", flush=True)
    check(
        f"region={REGION}" in href and f"/sequenceStore/{store_id}/readSet/" in href,
        f"the {task} task's console link does not point at a read set of store {store_id}: {href!r}",
    )
    browser.screenshot(screenshot)


def check_unknown_store_failure(browser: Browser, deployment: Any, run_id: str) -> None:
    states = task_states(deployment, run_id)
    failed = sorted(task for task, state in states.items() if state == "failed")
    print(f"           failed tasks: {', '.join(failed)}; abort: {states.get('abort')}", flush=True)
    # The plan checks the store before anything exists on the service: it alone fails, nothing is created.
    check(failed == ["plan"], f"a run with an unknown store should fail in plan alone, not in {failed}: {states}")
    messages = {task: failure_message(task_log_events(deployment.home, run_id, f"{GROUP}.{task}")) for task in failed}
    for task, message in messages.items():
        check(
            message is not None and f"Sequence store {UNKNOWN_STORE} does not exist in region {REGION}" in message,
            f"{task} did not fail with 'Sequence store {UNKNOWN_STORE} does not exist in region {REGION}': {message!r}",
        )
    check(len(set(messages.values())) == 1, f"the failed tasks give different messages: {messages}")
    message = next(iter(messages.values()))
    print(f"           message ({len(message or '')} characters): {message}", flush=True)

    page = browser.page
    page.goto(browser.run_url(run_id, f"/tasks/{GROUP}.plan"), timeout=UI_TIMEOUT_MS)
    shown = page.get_by_text(f"Sequence store {UNKNOWN_STORE} does not exist", exact=False)
    try:
        shown.first.wait_for(timeout=UI_TIMEOUT_MS)
    except Exception:
        raise CheckFailed("the plan task's log in the UI does not show the unknown store's message") from None
    browser.screenshot("06-unknown-store-plan-log.png")
    # The log viewer's own Wrap toggle (its "w" shortcut); [api] default_wrap turns it on for everyone.
    page.locator("body").press("w")
    page.wait_for_timeout(1000)
    browser.screenshot("07-unknown-store-plan-log-wrapped.png")


# -- the sequencing run: omics_upload_sequencing_run and the DAG downstream of its asset ---------------------------

RUN_DAG = "omics_upload_sequencing_run"
RUN_GROUP = "upload_sequencing_run"
DOWNSTREAM_DAG = "omics_analyze_arriving_read_sets"
RUN_SAMPLES = ("S1", "S2", "S3")
FAILING_SAMPLE = "S4"
FAILED_NAME = f"{FAILING_SAMPLE} failed at wait_active"
# What wait_active leaves under its XCom key run_so_far in the run where S4 fails.
RUN_SO_FAR_TOTALS = "after wait_active: 0 verified, 0 already stored, 1 failed, 3 on their way (of 4 samples)"
# As the XCom tab shows it: in a code view that spaces with no-break spaces and wraps its lines.
RUN_SO_FAR = re.compile(r"\s+".join(re.escape(word) for word in RUN_SO_FAR_TOTALS.split()))


class RunFiles:
    """A run's staged files: three good paired FASTQs and a fourth sample, S4, whose file is not FASTQ (the service
    fails its read set at activation) until :meth:`fix` writes a good one; the manifest ``run.csv`` lists all four,
    ``bad-row.csv`` the same with S4's read 1 pointing at a file that does not exist."""

    def __init__(self, root: Path) -> None:
        from airflow_provider_omics.testing.samples import write_fastq

        root.mkdir(parents=True, exist_ok=True)
        rows = []
        for n, sample in enumerate(RUN_SAMPLES, start=1):
            reads = [
                write_fastq(root / f"{sample}_R{read}.fastq.gz", 4_000, compress=True, seed=100 * n + read)
                for read in (1, 2)
            ]
            rows.append(f"{sample},subject-{n},{sample}-reads,{reads[0]},{reads[1]}")
        self.failing = root / f"{FAILING_SAMPLE}_R1.fastq"
        self.failing.write_bytes(b"this is not a FASTQ record\n" * 200)
        header = "sample_id,subject_id,name,read1,read2"
        self.manifest = root / "run.csv"
        self.manifest.write_text("\n".join([header, *rows, f"S4,subject-4,S4-reads,{self.failing},"]) + "\n")
        self.bad_row = root / "bad-row.csv"
        missing = root / "S4_R1-missing.fastq.gz"
        self.bad_row.write_text("\n".join([header, *rows, f"S4,subject-4,S4-reads,{missing},"]) + "\n")

    def fix(self) -> None:
        from airflow_provider_omics.testing.samples import write_fastq

        write_fastq(self.failing, 4_000, seed=404, prefix="S4r1")


def trigger_run(browser: Browser, deployment: Any, store_id: str, manifest: Path, timeout: float) -> tuple[str, str]:
    """Trigger the run DAG from its form with ``manifest`` (the rest as the form has it); returns run id and state."""
    dialog = browser.open_trigger_form(RUN_DAG)
    dialog.locator("#element_sequence_store_id").fill(store_id)
    dialog.locator("#element_manifest").fill(str(manifest))
    run_id = browser.submit_for_run(dialog)
    return run_id, deployment.wait_run(RUN_DAG, run_id, timeout=timeout)


def check_run_form(browser: Browser) -> int:
    """The run's form, as it opens: its fields and sections; returns how many fields it flags as required before
    anything is typed."""
    dialog = browser.open_trigger_form(RUN_DAG)
    browser.page.wait_for_timeout(1000)
    text = dialog.inner_text()
    for title in ("Sequence store id", "Manifest", "Default file type", "How the files get into the store"):
        check(title in text, f"the run's trigger form has no field {title!r}")
    check("CSV sample sheet" in text, "the manifest's description does not say what a manifest is")
    flagged = dialog.get_by_text("This field is required").count()
    browser.screenshot("09-run-form.png")
    browser.show_section(dialog, "Upload tuning", "part_size_mib")
    tuning = dialog.inner_text()
    for title in ("Upload tasks at most", "Digest tasks at most"):
        check(title in tuning, f"the run form's 'Upload tuning' section has no field {title!r}")
    dialog.get_by_text("Upload tuning", exact=True).scroll_into_view_if_needed()
    browser.screenshot("10-run-form-upload-tuning.png")
    browser.page.keyboard.press("Escape")
    return flagged


def check_bad_row(browser: Browser, deployment: Any, run_id: str, state: str, client: Any, store_id: str) -> None:
    """A manifest with one bad row fails in plan alone, naming the row and the sample, and creates nothing."""
    states = task_states(deployment, run_id, RUN_DAG, RUN_GROUP)
    failed = sorted(task for task, task_state in states.items() if task_state == "failed")
    check(state == "failed" and failed == ["plan"], f"a bad row should fail the run in plan alone: {state}, {states}")
    message = failure_message(task_log_events(deployment.home, run_id, f"{RUN_GROUP}.plan", RUN_DAG)) or ""
    lines = message.splitlines()
    print(f"           plan says: {' / '.join(line.strip() for line in lines[:3])}", flush=True)
    check(
        lines and lines[0] == "The manifest has 1 problem in 1 row; nothing was uploaded.",
        f"the plan's first line does not say in short what is wrong: {lines[:1]}",
    )
    check(all(len(line) <= 120 for line in lines[:1]), f"the plan's first line is long: {lines[:1]}")
    check(
        any("sample S4" in line and "S4_R1-missing.fastq.gz" in line for line in lines),
        f"the plan's message does not name the sample and the file of the bad row: {message!r}",
    )
    names = {f"{sample}-reads" for sample in (*RUN_SAMPLES, FAILING_SAMPLE)}
    read_sets = [rs for rs in client.list_read_sets(sequenceStoreId=store_id)["readSets"] if rs["name"] in names]
    check(not read_sets, f"a manifest with a bad row stored read sets: {read_sets}")
    browser.page.goto(browser.run_url(run_id, f"/tasks/{RUN_GROUP}.plan", RUN_DAG), timeout=UI_TIMEOUT_MS)
    browser.wait_for_text("The manifest has 1 problem in 1 row", "the plan task's log")
    browser.screenshot("11-run-bad-row-plan-log.png")


def failed_sample_tasks(deployment: Any, run_id: str) -> list[tuple[int, str, str]]:
    rows = deployment.query(
        "SELECT map_index, state, rendered_map_index FROM task_instance WHERE dag_id = ? AND run_id = ? "
        "AND task_id = ? ORDER BY map_index",
        RUN_DAG,
        run_id,
        f"{RUN_GROUP}.failed_sample",
    )
    return [(int(index), str(state), str(name)) for index, state, name in rows]


def check_failed_sample(browser: Browser, deployment: Any, run_id: str, state: str) -> None:
    """One sample failing at activation fails the run; the grid shows it as a failed task named by it."""
    states = task_states(deployment, run_id, RUN_DAG, RUN_GROUP)
    check(state == "failed", f"a run with a failing sample ended {state}: {states}")
    check(
        states.get("verify") == "success" and states.get("summary") == "failed",
        f"the good samples should be verified and the summary fail: {states}",
    )
    tasks = failed_sample_tasks(deployment, run_id)
    check(tasks == [(0, "failed", FAILED_NAME)], f"the failed sample's task is not {FAILED_NAME!r}: {tasks}")
    page = browser.page
    page.goto(f"{browser.base_url}/dags/{RUN_DAG}", timeout=UI_TIMEOUT_MS)
    page.get_by_role("button", name="Expand all task groups").click()
    browser.wait_for_text(re.compile(r"^failed_sample"), "the grid, its groups expanded")
    browser.screenshot("12-run-failed-sample-grid.png")
    page.goto(browser.run_url(run_id, "", RUN_DAG), timeout=UI_TIMEOUT_MS)
    browser.wait_for_text(FAILED_NAME, "the run's task instances")
    page.get_by_text(FAILED_NAME).first.scroll_into_view_if_needed()
    browser.screenshot("13-run-failed-sample-task.png")
    page.goto(browser.run_url(run_id, f"/tasks/{RUN_GROUP}.failed_sample/mapped/0", RUN_DAG), timeout=UI_TIMEOUT_MS)
    browser.wait_for_text(f"{FAILING_SAMPLE}/S4-reads failed at wait_active", "the failed sample's log")
    browser.screenshot("14-run-failed-sample-log.png")
    message = failure_message(
        task_log_events(deployment.home, run_id, f"{RUN_GROUP}.failed_sample/map_index=0", RUN_DAG)
    )
    first = (message or "").splitlines()[:1]
    print(f"           failed_sample says: {first}", flush=True)
    check(first and len(first[0]) <= 100, f"the failed sample's first line is not short: {first}")
    # The run so far, as wait_active left it, in that task's XCom tab: there before the summary runs.
    page.goto(browser.run_url(run_id, f"/tasks/{RUN_GROUP}.wait_active/xcom", RUN_DAG), timeout=UI_TIMEOUT_MS)
    browser.wait_for_text("run_so_far", "wait_active's XCom tab")
    # The tab opens each value folded, as "{...}": a user unfolds them.
    page.get_by_role("button", name="Expand all extra JSON").click(timeout=UI_TIMEOUT_MS)
    browser.wait_for_text(RUN_SO_FAR, "wait_active's XCom tab, unfolded")
    page.get_by_text(RUN_SO_FAR).first.scroll_into_view_if_needed()
    browser.screenshot("20-run-so-far-xcom.png")


def asset_events_of(deployment: Any, run_id: str) -> list[dict[str, Any]]:
    rows = deployment.query("SELECT extra FROM asset_event WHERE source_run_id = ? ORDER BY id", run_id)
    return [json.loads(extra) if isinstance(extra, str) else extra for (extra,) in rows]


def downstream_runs(deployment: Any) -> list[tuple[str, str | None]]:
    rows = deployment.query("SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id", DOWNSTREAM_DAG)
    return [(str(run_id), state) for run_id, state in rows]


def check_announced(
    browser: Browser, deployment: Any, run_id: str, samples: list[str], downstream: int, shots: tuple[str, str]
) -> None:
    """The run's one asset event lists exactly ``samples``; the downstream DAG runs on it (its ``downstream``-th
    run) and succeeds. Screenshots: the asset's events, and that run."""
    from airflow_provider_omics.assets.omics import event_read_sets

    events = asset_events_of(deployment, run_id)
    check(len(events) == 1, f"run {run_id} should announce once: {len(events)} asset events")
    announced = sorted(str(entry["sample_id"]) for entry in event_read_sets(events[0]))
    check(announced == samples, f"run {run_id} announced {announced}, not {samples}")
    print(f"           one asset event, announcing {', '.join(announced)}", flush=True)
    deployment.wait(
        lambda: (
            len(downstream_runs(deployment)) >= downstream
            and all(state in ("success", "failed") for _, state in downstream_runs(deployment))
        ),
        UI_TIMEOUT_MS / 1000 * 5,
        f"{DOWNSTREAM_DAG} to run on the event",
    )
    runs = downstream_runs(deployment)
    check(len(runs) == downstream and runs[-1][1] == "success", f"{DOWNSTREAM_DAG}'s runs: {runs}")
    page = browser.page
    page.goto(f"{browser.base_url}/assets", timeout=UI_TIMEOUT_MS)
    page.get_by_text(re.compile(r"^omics://")).first.click()
    browser.wait_for_text(RUN_DAG, "the asset's events")
    browser.screenshot(shots[0])
    page.goto(browser.run_url(runs[-1][0], "", DOWNSTREAM_DAG), timeout=UI_TIMEOUT_MS)
    browser.wait_for_text("analyze", f"the run of {DOWNSTREAM_DAG}")
    browser.screenshot(shots[1])


def check_resume(browser: Browser, deployment: Any, run_id: str, state: str) -> None:
    """The same manifest again once S4 is fixed: the stored samples are skipped, S4 alone is uploaded."""
    states = task_states(deployment, run_id, RUN_DAG, RUN_GROUP)
    check(state == "success", f"the resumed run ended {state}: {states}")
    check(failed_sample_tasks(deployment, run_id) == [(0, "success", "no sample failed")], "no 'no sample failed'")
    page = browser.page
    page.goto(browser.run_url(run_id, f"/tasks/{RUN_GROUP}.summary", RUN_DAG), timeout=UI_TIMEOUT_MS)
    totals = "1 uploaded and verified, 3 already stored, 0 failed"
    browser.wait_for_text(totals, "the resumed run's summary log")
    page.get_by_text(totals).first.scroll_into_view_if_needed()
    browser.screenshot("17-resume-summary-log.png")


def check_sequencing_run(
    browser: Browser, deployment: Any, client: Any, store_id: str, files: RunFiles, step: Step, timeout: float
) -> None:
    with step("Opening the run's trigger form"):
        flagged = check_run_form(browser)
        print(f"           fields flagged 'This field is required' before anything is typed: {flagged}", flush=True)
        # The store id is filled in from OMICS_SEQUENCE_STORE_ARN: only the manifest is left to type.
        check(flagged <= 1, f"the run form flags {flagged} fields before anything is typed, not just the manifest")
    with step("A run of a manifest with one bad row"):
        run_id, state = trigger_run(browser, deployment, store_id, files.bad_row, timeout)
        check_bad_row(browser, deployment, run_id, state, client, store_id)
    with step("A run with one sample the service fails at activation"):
        # The single read set's runs above announced theirs too.
        downstream = len(downstream_runs(deployment))
        run_id, state = trigger_run(browser, deployment, store_id, files.manifest, timeout)
        check_failed_sample(browser, deployment, run_id, state)
    with step("Its asset event in the Assets view, and the downstream DAG's run"):
        check_announced(
            browser, deployment, run_id, list(RUN_SAMPLES), downstream + 1, ("15-assets.png", "16-downstream-run.png")
        )
    with step("S4 fixed and the same manifest triggered again (resume)"):
        files.fix()
        run_id, state = trigger_run(browser, deployment, store_id, files.manifest, timeout)
        check_resume(browser, deployment, run_id, state)
        check_announced(
            browser,
            deployment,
            run_id,
            [FAILING_SAMPLE],
            downstream + 2,
            ("18-assets-resumed.png", "19-downstream-run-resumed.png"),
        )


def check_no_short_secret_warnings(workdir: Path) -> None:
    offenders = []
    for log in workdir.rglob("*.log"):
        if "Skipping masking for a secret" in log.read_text(errors="replace"):
            offenders.append(str(log))
    check(not offenders, f"'Skipping masking for a secret' was logged in: {offenders}")


def run_checks(args: argparse.Namespace, workdir: Path, shots: Path, step: Step) -> None:
    from playwright.sync_api import sync_playwright

    from airflow_provider_omics.testing import emulator_client
    from airflow_provider_omics.testing.deployment import (
        PASSWORDS_FILE,
        admin_password,
        emulator_connection,
        ui_deployment,
    )

    staging = workdir / "staging"
    with step("Writing a paired gzipped FASTQ, and a run's samples and manifests"):
        read1, read2 = write_staged_fastq(staging)
        files = RunFiles(staging / "run")
    deployment = ui_deployment(workdir, staging)
    try:
        with step("Starting the HealthOmics emulator"):
            endpoint = deployment.start_emulator(workdir / "emulator")
            client = emulator_client(endpoint)
            store = client.create_sequence_store(name="ui-check-store")
            store_id = store["id"]
            print(f"           {endpoint}, sequence store {store_id}", flush=True)
        # The emulator enforces no quotas here: no client-side pacing either (hooks/pacing.py).
        deployment.env["AIRFLOW_CONN_AWS_DEFAULT"] = emulator_connection(endpoint, omics_quotas=False)
        # The downstream DAG listens on the store's asset.
        deployment.env["OMICS_SEQUENCE_STORE_ARN"] = store["arn"]
        with step("Starting Airflow (db migrate, api-server, dag-processor, scheduler)"):
            deployment.start(dag_id=DAG_ID)
            deployment.wait(lambda: deployment.dag_ready(RUN_DAG), 180, f"the dag-processor to serialize {RUN_DAG}")
            password = admin_password(deployment)
            base_url = f"http://127.0.0.1:{deployment.api_port}"
            print(f"           {base_url}, user admin, password from {deployment.home / PASSWORDS_FILE}", flush=True)

        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_FLAGS)
            try:
                page = chromium.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(UI_TIMEOUT_MS)
                browser = Browser(page, base_url, shots)
                with step("Signing in and submitting the form with a store name"):
                    browser.sign_in("admin", password)
                    check_form_refuses_store_name(browser, deployment, read1, read2)
                with step("Submitting the form with the store id and waiting for the run"):
                    dialog = browser.page.get_by_role("dialog")
                    browser.show_section(dialog, "Run Parameters", "sequence_store_id")
                    dialog.locator("#element_sequence_store_id").fill(store_id)
                    run_id = browser.submit_for_run(dialog)
                    state = deployment.wait_run(DAG_ID, run_id, timeout=args.timeout)
                    check(state == "success", f"run {run_id} {state}: {task_states(deployment, run_id)}")
                with step("Checking that the plan chose a direct upload for local files, and said why"):
                    check_method_choice(deployment, run_id)
                with step("Checking the mapped upload tasks' names"):
                    check_mapped_task_names(browser, deployment, run_id)
                with step("Checking the HealthOmics Read Set links of complete and verify"):
                    check_console_link(browser, run_id, "complete", store_id, "04-complete-link.png")
                    check_console_link(browser, run_id, "verify", store_id, "05-verify-link.png")
                with step(f"Triggering a run for the unknown store {UNKNOWN_STORE}"):
                    dialog = browser.open_trigger_form()
                    browser.fill_form(dialog, UNKNOWN_STORE, read1, read2)
                    failing_run = browser.submit_for_run(dialog)
                    state = deployment.wait_run(DAG_ID, failing_run, timeout=args.timeout)
                    check(state == "failed", f"run {failing_run} with an unknown store ended {state}")
                    check_unknown_store_failure(browser, deployment, failing_run)
                check_sequencing_run(browser, deployment, client, store_id, files, step, args.timeout)
            finally:
                chromium.close()
        check_no_short_secret_warnings(workdir)
    finally:
        with step("Stopping Airflow and the emulator"):
            deployment.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--screenshots", type=Path, help="where the screenshots go (default: a new temp dir)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for each run (default 600)")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium binary (Debian's)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (Airflow home, logs)")
    args = parser.parse_args(argv)

    problems = missing_requirements(args.chromium)
    if problems:
        print("Cannot check the UI:\n" + "\n".join(f"- {p}" for p in problems), file=sys.stderr)
        return 2

    # SIGTERM would otherwise end the script without stopping what it started.
    def terminate(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    shots = args.screenshots or Path(tempfile.mkdtemp(prefix="omics-ui-screenshots-"))
    shots.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="omics-ui-check-"))
    step = Step()
    failed = True
    try:
        run_checks(args, workdir, shots, step)
        failed = False
    except CheckFailed as err:
        print(f"\nUI check FAILED: {err}", file=sys.stderr)
    except Exception as err:
        print(f"\nUI check FAILED: {type(err).__name__}: {err}", file=sys.stderr)
    finally:
        if failed or args.keep:
            print(f"Working directory kept: {workdir} (component logs *.log, airflow-home/logs)", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"Screenshots: {shots}")
    if failed:
        return 1
    print(f"UI check passed in {time.monotonic() - step.started:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
