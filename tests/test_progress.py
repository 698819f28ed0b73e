"""A long step's progress line, logged at a steady cadence while it works and once at its end."""

from __future__ import annotations

import threading
from typing import Any

from airflow_provider_omics.utils.progress import Progress


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.logged = threading.Semaphore(0)

    def info(self, message: str, *args: Any) -> None:
        self.lines.append(message % args)
        self.logged.release()


def test_progress_logs_each_interval_while_the_step_works_and_once_at_the_end() -> None:
    log = Lines()
    # The test releases each tick of the progress thread and waits for its line: no timing decides the lines.
    tick = threading.Semaphore(0)
    waits = iter([False, False, True])

    def wait(seconds: float) -> bool:
        assert seconds == 10.0
        tick.acquire()
        return next(waits)

    with Progress("digest", "sources", 4, 8_000_000_000, log, wait=wait) as progress:
        progress.add(nbytes=2_000_000_000)
        tick.release()
        log.logged.acquire()
        progress.add(nbytes=2_000_000_000, failed=True)
        tick.release()
        log.logged.acquire()
        progress.add(2, 4_000_000_000)
        # The step ends: the thread stops without a line, and the end's line follows.
        tick.release()
    words = [line.rsplit(", ", 1)[0] for line in log.lines]
    assert words == [
        "digest: 1 of 4 sources, 2.0 of 8.0 GB",
        "digest: 2 of 4 sources, 4.0 of 8.0 GB, 1 failed",
        "digest: 4 of 4 sources, 8.0 of 8.0 GB, 1 failed",
    ], log.lines
    assert all(line.endswith(" s") for line in log.lines)


def test_progress_of_a_step_with_nothing_to_do_says_nothing_and_bytes_only_when_counted() -> None:
    log = Lines()
    with Progress("create", "samples", 0, 0, log):
        pass
    assert log.lines == []
    with Progress("create", "samples", 2, 0, log, interval=0) as progress:
        progress.add()
        progress.add()
    with Progress("create", "samples", 2, 300_000, log, interval=0) as progress:
        progress.add(nbytes=100_000)
    assert [line.rsplit(", ", 1)[0] for line in log.lines] == [
        "create: 2 of 2 samples",
        "create: 1 of 2 samples, 0.1 of 0.3 MB",
    ]
