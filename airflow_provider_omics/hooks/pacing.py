"""Client-side pacing: the provider's calls stay within the service's API quotas.

HealthOmics limits each account and region per operation (CreateMultipartReadSetUpload, Complete and Abort to 1 TPS,
not adjustable; UploadReadSetPart to 10 TPS) and answers ThrottlingException above a quota. Every task of every DAG
run that loads one account's stores shares those quotas, and a task's client cannot see the others' calls, so the
pacing is shared through the host: each call's start reserves the next free slot of its operation in a small file
under the temporary directory, under an exclusive ``flock``, and sleeps until that slot. The processes of one
machine (LocalExecutor, a Celery worker's pool, ``dag.test()``) so space their calls of one operation ``1 / rate``
apart between them, whichever DAG run they serve. Workers on other machines pace apart: their excess is throttled by
the service, and botocore's retries (standard mode, with backoff) send it again, paced again.

The rates are the service's defaults (:data:`SERVICE_QUOTAS`), those of 1 TPS a little under it (:data:`MARGIN`) so
that calls that arrive closer together than they left are not throttled. An account with a raised quota says so in
the Airflow connection's extra, ``{"omics_quotas": {"UploadReadSetPart": 50}}``; ``{"omics_quotas": false}`` turns
the pacing off (an endpoint without quotas, such as the local emulator in unit tests).

Slots are reserved per endpoint (the endpoint URL, else the region) and operation, not per account: two connections
to different accounts in one region are paced as one, which is slower than needed, never too fast. Calls are paced
at each attempt, before it is signed (botocore's ``before-sign``), so a retry waits its turn too and a signature is
as fresh as the request. Asynchronous clients (a trigger's) are not paced: a trigger's polls are seconds apart.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import struct
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

# Calls per second, the service's default quota for each operation the provider calls (per account and region).
SERVICE_QUOTAS: Mapping[str, float] = {
    "CreateMultipartReadSetUpload": 1,
    "CompleteMultipartReadSetUpload": 1,
    "AbortMultipartReadSetUpload": 1,
    "UploadReadSetPart": 10,
    "GetReadSet": 30,
    "GetReadSetMetadata": 5,
    "ListReadSets": 5,
    "StartReadSetImportJob": 5,
    "GetReadSetImportJob": 5,
    "ListReadSetImportJobs": 5,
    "ListMultipartReadSetUploads": 5,
    "ListReadSetUploadParts": 5,
    "TagResource": 5,
    "ListTagsForResource": 5,
}
# Operations of 1 TPS are paced at this share of their quota: a call leaves 1.05 s after the last, so that one
# that arrives up to 50 ms early is not throttled by a bucket that holds one call. Faster operations are paced at
# their quota: their bucket holds a second of calls, which absorbs a call that arrives early.
MARGIN = 0.95
# A reservation further ahead than this is stale (the host rebooted and its monotonic clock restarted).
STALE_SECONDS = 24 * 3600.0
# The connection extra's key.
QUOTAS_EXTRA = "omics_quotas"

_SLOT = struct.Struct("<d")


def quotas_from_extra(extra: Mapping[str, Any]) -> dict[str, float] | None:
    """The quotas a connection's extra gives (:data:`SERVICE_QUOTAS` with its overrides), or None for ``false``
    (or ``"off"``). Raises ValueError naming what is wrong and the form expected."""
    given = extra.get(QUOTAS_EXTRA)
    if given is None:
        return dict(SERVICE_QUOTAS)
    # false rather than "off": Airflow masks every string of an extra in the task logs, and warns in each log that
    # it skips one under 5 characters.
    if given is False or given == "off":
        return None
    form = f'the connection extra\'s "{QUOTAS_EXTRA}" must be false or an object of operation to calls per second'
    if not isinstance(given, Mapping):
        raise ValueError(f'{form}, such as {{"UploadReadSetPart": 50}}: got {given!r}')
    quotas = dict(SERVICE_QUOTAS)
    for operation, rate in given.items():
        if operation not in SERVICE_QUOTAS:
            raise ValueError(f"{form}: {operation!r} is not one of {', '.join(sorted(SERVICE_QUOTAS))}")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            raise ValueError(f"{form}: the quota of {operation} must be a positive number, got {rate!r}")
        quotas[operation] = float(rate)
    return quotas


class HostPacer:
    """Spaces the starts of calls at least ``interval`` seconds apart across the processes of this host that
    share ``path``: each :meth:`wait` reserves the next free slot and sleeps until it.

    :param clock: seconds of a clock every process of the host shares (``time.monotonic`` is the host's
        CLOCK_MONOTONIC on Linux); ``sleep`` waits. Both replaceable for tests.
    """

    def __init__(
        self,
        path: Path,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = path
        self.interval = interval
        self._clock = clock
        self._sleep = sleep

    def reserve(self) -> float:
        """Reserve the next free slot; returns when it starts (on ``clock``: now, or later)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.pread(fd, _SLOT.size, 0)
            now = self._clock()
            free_at = _SLOT.unpack(raw)[0] if len(raw) == _SLOT.size else now
            if free_at - now > STALE_SECONDS:
                free_at = now
            start = max(now, free_at)
            os.pwrite(fd, _SLOT.pack(start + self.interval), 0)
            return start
        finally:
            os.close(fd)  # closing releases the lock

    def wait(self) -> float:
        """Reserve the next slot and sleep until it; returns the seconds slept."""
        delay = self.reserve() - self._clock()
        if delay > 0:
            self._sleep(delay)
            return delay
        return 0.0


def pacing_dir() -> Path:
    """Where the hosts' slots are kept: one directory per user under the temporary directory."""
    return Path(tempfile.gettempdir()) / f"airflow-provider-omics-pacing-{os.getuid()}"


def host_pacers(endpoint: str, quotas: Mapping[str, float], directory: Path | None = None) -> dict[str, HostPacer]:
    """One pacer per operation of ``quotas``, shared by every process of the host that calls ``endpoint``."""
    directory = directory if directory is not None else pacing_dir()
    pacers = {}
    for operation, rate in quotas.items():
        name = hashlib.sha256(f"{endpoint}\n{operation}".encode()).hexdigest()[:24]
        pacers[operation] = HostPacer(directory / f"{operation}-{name}", 1.0 / (rate * (MARGIN if rate < 2 else 1)))
    return pacers


def pace_client(client: Any, pacers: Mapping[str, HostPacer]) -> None:
    """Have each attempt of ``client``'s calls of a paced operation wait for its slot before it is signed
    (botocore's ``before-sign``, which every attempt passes, retries included). Registering twice changes
    nothing."""
    for operation, pacer in pacers.items():

        def wait(pacer: HostPacer = pacer, **kwargs: Any) -> None:
            with contextlib.suppress(OSError):  # a temporary directory that refuses us: the service's throttling
                pacer.wait()

        client.meta.events.register(f"before-sign.omics.{operation}", wait, unique_id=f"omics-pacing-{operation}")
