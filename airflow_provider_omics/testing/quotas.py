"""The service's API quotas, as the emulator enforces them: a token bucket per account and operation.

HealthOmics limits each account and region per operation (the service's API quotas page): above a quota it
answers ``ThrottlingException`` (HTTP 429), which botocore's retry modes retry with backoff. The emulator
enforces the same when asked (``OmicsEmulator(quotas="default")``, ``--quotas default``); unit tests run without
quotas. Each bucket holds ``burst_seconds`` of its rate (at least one call) and refills at the rate;
``time_scale`` runs every quota that many times faster, so that a benchmark keeps the quotas' proportions in less
time. Operations the quotas page does not name (GetSequenceStore, ListSequenceStores) are not limited.

Every call is counted per operation, throttled or not, quotas on or off: ``GET /_emulator/quotas`` answers the
configuration and ``{"counts": {operation: {"calls": n, "throttled": m}}}``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_omics.testing.shapes import OPERATIONS

# Transactions per second, the service's defaults (per account and region).
DEFAULT_QUOTAS: Mapping[str, float] = {
    "CreateMultipartReadSetUpload": 1,  # not adjustable
    "CompleteMultipartReadSetUpload": 1,  # not adjustable
    "AbortMultipartReadSetUpload": 1,  # not adjustable
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
    "CreateSequenceStore": 1,
}


@dataclass(frozen=True)
class QuotaConfig:
    """Which operations are limited, at how many calls per second.

    :param rates: TPS per operation; an operation not named is not limited.
    :param time_scale: every rate is multiplied by this (10: a 1 TPS quota admits 10 calls a second).
    :param burst_seconds: a bucket holds this many seconds of its rate, at least one call.
    """

    rates: Mapping[str, float] = field(default_factory=dict)
    time_scale: float = 1.0
    burst_seconds: float = 1.0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.rates) - OPERATIONS)
        if unknown:
            raise ValueError(f"no such operation {', '.join(unknown)}: quotas name operations of {sorted(OPERATIONS)}")
        for operation, rate in self.rates.items():
            if not rate > 0:
                raise ValueError(f"the quota of {operation} must be a positive number of calls per second: {rate!r}")
        if not self.time_scale > 0 or not self.burst_seconds > 0:
            raise ValueError("time_scale and burst_seconds must be positive")

    @classmethod
    def default(cls, overrides: Mapping[str, float] | None = None, time_scale: float = 1.0) -> QuotaConfig:
        """The service's default quotas (:data:`DEFAULT_QUOTAS`), with ``overrides`` (a raised quota, say)."""
        return cls({**DEFAULT_QUOTAS, **(overrides or {})}, time_scale=time_scale)

    @classmethod
    def of(cls, quotas: str | Mapping[str, float] | QuotaConfig | None) -> QuotaConfig | None:
        """``"default"``: the service's quotas; a mapping: the defaults with those overrides; ``None``/``"off"``:
        no quotas."""
        if quotas is None or quotas == "off":
            return None
        if isinstance(quotas, QuotaConfig):
            return quotas
        if quotas == "default":
            return cls.default()
        if isinstance(quotas, Mapping):
            return cls.default(quotas)
        raise ValueError(f"quotas must be 'default', 'off', a mapping of operation to TPS or a QuotaConfig: {quotas!r}")

    def rate(self, operation: str) -> float | None:
        rate = self.rates.get(operation)
        return None if rate is None else rate * self.time_scale

    def to_dict(self) -> dict[str, Any]:
        return {"rates": dict(self.rates), "time_scale": self.time_scale, "burst_seconds": self.burst_seconds}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuotaConfig:
        return cls(
            rates={str(k): float(v) for k, v in dict(data.get("rates", {})).items()},
            time_scale=float(data.get("time_scale", 1.0)),
            burst_seconds=float(data.get("burst_seconds", 1.0)),
        )


class _Bucket:
    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.updated = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1 - 1e-9:  # a call due now is not refused for a rounding error
            self.tokens = max(0.0, self.tokens - 1)
            return True
        return False


class QuotaEnforcer:
    """Admits or throttles each call by its account's and operation's bucket, and counts them.

    :param clock: seconds, monotonic (a test's own clock).
    """

    def __init__(self, config: QuotaConfig | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._config = config
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._counts: dict[str, dict[str, int]] = {}

    @property
    def config(self) -> QuotaConfig | None:
        return self._config

    def set_config(self, config: QuotaConfig | None) -> None:
        """New quotas from now on; every bucket starts full again. The counts stay."""
        with self._lock:
            self._config = config
            self._buckets.clear()

    def admit(self, account: str, operation: str) -> bool:
        """Whether this call is within its quota (False: answer ThrottlingException)."""
        with self._lock:
            counts = self._counts.setdefault(operation, {"calls": 0, "throttled": 0})
            counts["calls"] += 1
            config = self._config
            rate = None if config is None else config.rate(operation)
            if config is None or rate is None:
                return True
            now = self._clock()
            bucket = self._buckets.get((account, operation))
            if bucket is None:
                # The bucket's size in calls does not scale with time: a faster clock, the same shape.
                capacity = max(1.0, config.rates[operation] * config.burst_seconds)
                bucket = self._buckets[(account, operation)] = _Bucket(rate, capacity, now)
            if bucket.take(now):
                return True
            counts["throttled"] += 1
            return False

    def counts(self) -> dict[str, dict[str, int]]:
        """``{operation: {"calls": n, "throttled": m}}`` since the emulator started (or :meth:`reset_counts`)."""
        with self._lock:
            return {operation: dict(counts) for operation, counts in sorted(self._counts.items())}

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()

    def state(self) -> dict[str, Any]:
        """What ``GET /_emulator/quotas`` answers."""
        config = self.config
        return {"quotas": None if config is None else config.to_dict(), "counts": self.counts()}
