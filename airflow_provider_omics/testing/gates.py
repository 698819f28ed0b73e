"""The emulator's test gates: holds that keep read sets in PROCESSING_UPLOAD, and read set import jobs at
SUBMITTED or IN_PROGRESS, until a test lets them go, so that tests never race the background work of
:mod:`.workers`.

Tests that must see PROCESSING_UPLOAD (or must not) hold the activation of read sets with
:meth:`.models.OmicsBackend.hold_activations` instead of racing ``activation_delay``: the content check may run
while held, only the status change waits. A held read set moves on when the hold is released or, with
``release_after_reads``, once clients were answered PROCESSING_UPLOAD for it that many times: each
GetReadSetMetadata of it counts, and so does each ListReadSets answer that shows it (once per read set and
answer), so that a client that looks at one read set at a time and one that lists many are let go alike.

:meth:`.models.OmicsBackend.hold_import_jobs` keeps import jobs at SUBMITTED (they do not start), or at
IN_PROGRESS (they do their work, the job's own status stays), until released or, with ``release_after_reads``,
until GetReadSetImportJob has answered the held status for a job that many times (ListReadSetImportJobs does
not count).

The holds are the emulator's own, not the service's, and are not persisted. Both gates wait and notify on the
backend's one condition (on the backend's lock), which is also notified whenever a read set or an import job
changes status; their methods named "under the lock" expect the caller to hold it.
"""

from __future__ import annotations

import threading
from typing import Any

# The statuses at which hold_import_jobs can keep a job.
IMPORT_HOLD_STATUSES = ("SUBMITTED", "IN_PROGRESS")


def check_import_hold(at: Any) -> str:
    """``at`` of an import job hold: SUBMITTED or IN_PROGRESS (raises ``ValueError``)."""
    if at not in IMPORT_HOLD_STATUSES:
        raise ValueError(f"at must be one of {', '.join(IMPORT_HOLD_STATUSES)}, got {at!r}")
    return str(at)


def check_release_after_reads(value: Any) -> int | None:
    """``release_after_reads`` of an activation hold: ``None`` or a positive int (raises ``ValueError``)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"release_after_reads must be a positive integer or None, got {value!r}")
    return value


class ActivationGate:
    """The activation hold: a read set leaves PROCESSING_UPLOAD only when the gate lets it.

    :param condition: the backend's condition; every change that may open the gate notifies it.
    :param stop: set when the emulator stops: :meth:`wait` gives up.
    """

    def __init__(self, condition: threading.Condition, stop: threading.Event) -> None:
        self._condition = condition
        self._stop = stop
        self._holding = False
        self._release_after_reads: int | None = None
        self._reads: dict[str, int] = {}
        self._released: set[str] = set()

    def hold(self, release_after_reads: int | None = None) -> None:
        """Hold every read set from now on (see :meth:`.models.OmicsBackend.hold_activations`); restarts the
        counts."""
        release_after_reads = check_release_after_reads(release_after_reads)
        with self._condition:
            self._holding = True
            self._release_after_reads = release_after_reads
            self._reads.clear()
            self._released.clear()

    def release(self) -> None:
        """Let every held read set move on, and hold no more."""
        with self._condition:
            self._holding = False
            self._release_after_reads = None
            self._reads.clear()
            self._released.clear()
            self._condition.notify_all()

    @property
    def state(self) -> dict[str, Any]:
        """``{"hold": bool, "release_after_reads": int | None}``: the hold in force."""
        with self._condition:
            return {"hold": self._holding, "release_after_reads": self._release_after_reads}

    def count_read(self, read_set_id: str) -> None:
        """Under the lock: a client was answered that ``read_set_id`` is PROCESSING_UPLOAD (by
        GetReadSetMetadata, or as one item of a ListReadSets answer)."""
        if not self._holding or self._release_after_reads is None or read_set_id in self._released:
            return
        reads = self._reads.get(read_set_id, 0) + 1
        self._reads[read_set_id] = reads
        if reads >= self._release_after_reads:
            self._released.add(read_set_id)
            self._condition.notify_all()

    def may_activate(self, read_set_id: str) -> bool:
        """Under the lock: whether ``read_set_id`` may leave PROCESSING_UPLOAD now."""
        return not self._holding or read_set_id in self._released

    def wait(self, read_set_id: str) -> bool:
        """Under the lock: wait until ``read_set_id`` may leave PROCESSING_UPLOAD; False if the emulator is
        stopping."""
        self._condition.wait_for(lambda: self._stop.is_set() or self.may_activate(read_set_id))
        return not self._stop.is_set()


class ImportJobGate:
    """The import job hold: a job leaves a held status only when the gate lets it.

    :param condition: the backend's condition; every change that may open the gate notifies it.
    :param stop: set when the emulator stops: :meth:`wait` gives up.
    """

    def __init__(self, condition: threading.Condition, stop: threading.Event) -> None:
        self._condition = condition
        self._stop = stop
        self._at: str | None = None
        self._release_after_reads: int | None = None
        self._reads: dict[str, int] = {}
        self._released: set[str] = set()

    def hold(self, at: str = "SUBMITTED", release_after_reads: int | None = None) -> None:
        """Keep every job at ``at`` at the furthest from now on (see :meth:`.models.OmicsBackend.
        hold_import_jobs`); restarts the counts."""
        at = check_import_hold(at)
        release_after_reads = check_release_after_reads(release_after_reads)
        with self._condition:
            self._at = at
            self._release_after_reads = release_after_reads
            self._reads.clear()
            self._released.clear()
            self._condition.notify_all()

    def release(self) -> None:
        """Let every held job move on, and hold no more."""
        with self._condition:
            self._at = None
            self._release_after_reads = None
            self._reads.clear()
            self._released.clear()
            self._condition.notify_all()

    @property
    def state(self) -> dict[str, Any]:
        """``{"hold": bool, "at": "SUBMITTED" | "IN_PROGRESS" | None, "release_after_reads": int | None}``."""
        with self._condition:
            return {"hold": self._at is not None, "at": self._at, "release_after_reads": self._release_after_reads}

    def may_leave(self, job_id: str, status: str) -> bool:
        """Under the lock: whether job ``job_id`` may leave ``status`` (one of the hold statuses) now."""
        if self._at is None or job_id in self._released:
            return True
        return IMPORT_HOLD_STATUSES.index(status) < IMPORT_HOLD_STATUSES.index(self._at)

    def wait(self, job_id: str, status: str) -> bool:
        """Under the lock: wait until job ``job_id`` may leave ``status``; False if the emulator is stopping."""
        self._condition.wait_for(lambda: self._stop.is_set() or self.may_leave(job_id, status))
        return not self._stop.is_set()

    def count_read(self, job_id: str, status: str) -> None:
        """Under the lock: GetReadSetImportJob answered ``status`` for job ``job_id``."""
        if self._release_after_reads is None or status not in IMPORT_HOLD_STATUSES:
            return
        if self.may_leave(job_id, status):
            return
        reads = self._reads.get(job_id, 0) + 1
        self._reads[job_id] = reads
        if reads >= self._release_after_reads:
            self._released.add(job_id)
            self._condition.notify_all()
