"""Where a long step of a run stands, in its task log at a steady cadence while it works."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

# How often a long step logs where it stands (seconds).
PROGRESS_INTERVAL = 10.0


class Progress:
    """
    Count a step's units (samples, sources, parts) and bytes as they finish, and log where the step stands every
    ``interval`` seconds while it works, from a thread of its own (so also while one unit takes minutes), and once
    at the end: ``digest: 3 of 8 sources, 12.1 of 40.0 GB, 1 failed, 30 s``.

        with Progress("digest", "sources", len(jobs), total_bytes, log) as progress:
            ...
            progress.add(nbytes=size)  # from any thread

    :param step: the step's name, first on each line.
    :param unit: what is counted (``samples``, ``sources``, ``parts``).
    :param total: how many units the step has; with none, nothing is logged.
    :param total_bytes: their bytes (the line counts in GB from 1 GB on, else in MB); 0 leaves bytes out.
    :param log: a logger (``info``).
    :param interval: seconds between lines; 0 logs only the last.
    :param wait: waits up to the given seconds and returns True once the step ended (tests give their own).
    """

    def __init__(
        self,
        step: str,
        unit: str,
        total: int,
        total_bytes: int,
        log: Any,
        *,
        interval: float = PROGRESS_INTERVAL,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        self.step, self.unit, self.total, self.total_bytes = step, unit, total, total_bytes
        self.log = log
        self.interval = interval
        self.done = self.done_bytes = self.failed = 0
        self._lock = threading.Lock()
        self._ended = threading.Event()
        self._wait = wait or self._ended.wait
        self._started = time.monotonic()
        self._thread: threading.Thread | None = None

    def add(self, units: int = 1, nbytes: int = 0, *, failed: bool = False) -> None:
        """``units`` more finished (``failed``: without success), ``nbytes`` of them."""
        with self._lock:
            self.done += units
            self.done_bytes += nbytes
            if failed:
                self.failed += units

    def line(self) -> str:
        """Where the step stands: ``upload_parts: 40 of 120 parts, 4.2 of 12.6 GB, 20 s``."""
        with self._lock:
            done, done_bytes, failed = self.done, self.done_bytes, self.failed
        words = [f"{self.step}: {done} of {self.total} {self.unit}"]
        if self.total_bytes:
            scale, unit = (1e9, "GB") if self.total_bytes >= 1e9 else (1e6, "MB")
            words.append(f"{done_bytes / scale:.1f} of {self.total_bytes / scale:.1f} {unit}")
        if failed:
            words.append(f"{failed} failed")
        words.append(f"{time.monotonic() - self._started:.0f} s")
        return ", ".join(words)

    def _ticks(self) -> None:
        while not self._wait(self.interval):
            self.log.info("%s", self.line())

    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        if self.total and self.interval > 0:
            self._thread = threading.Thread(target=self._ticks, name=f"omics-progress-{self.step}", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._ended.set()
        if self._thread is not None:
            self._thread.join()
        if self.total:
            self.log.info("%s", self.line())
