"""Fault injection for reliability tests: seeded error rates, added latency, connections dropped mid-body, and
answers lost after the request was served.

:class:`FaultConfig` says what to inject (off by default, JSON round-trippable for the admin endpoint);
:class:`FaultInjector` decides, request by request, what happens, and counts what it injected. One-shot
injections (``inject``) come first and ignore the config's ``operations`` filter.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_omics.testing.exceptions import ERRORS
from airflow_provider_omics.testing.models import OPERATIONS

# Close the connection before serving: nothing happened, and the client cannot know it.
DROP = "drop"
# Serve the request (its state change commits), then close the connection without answering: the client
# cannot know that something happened. A lost CompleteMultipartReadSetUpload answer is the case that matters.
DROP_RESPONSE = "drop_response"
CONNECTION_FAULTS = (DROP, DROP_RESPONSE)
LATENCY = "latency"


@dataclass(frozen=True)
class FaultConfig:
    """What the emulator injects, each rate being the probability per matching request.

    :param seed: seed of the random generator, so that a run is reproducible (as far as thread scheduling
        allows: concurrent requests draw in the order they arrive).
    :param throttle_rate: answer ThrottlingException (429), which botocore retries.
    :param internal_error_rate: answer InternalServerException (500), which botocore retries.
    :param drop_rate: read part of the request body, then close the connection without a response.
    :param latency: seconds added to every matching request.
    :param error_rates: any modelled error name (the eight UploadReadSetPart errors, say) to its rate.
    :param operations: operation names the faults apply to (``None``: all of them).
    :param drop_response_rate: serve the request, then close the connection without a response (drawn
        after every other fault, so that adding it leaves the draws of an existing seed as they were).
    """

    seed: int = 0
    throttle_rate: float = 0.0
    internal_error_rate: float = 0.0
    drop_rate: float = 0.0
    latency: float = 0.0
    error_rates: dict[str, float] = field(default_factory=dict)
    operations: frozenset[str] | None = None
    drop_response_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("throttle_rate", "internal_error_rate", "drop_rate", "drop_response_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {rate}")
        if self.latency < 0:
            raise ValueError("latency must not be negative")
        for code, rate in self.error_rates.items():
            if code not in ERRORS:
                raise ValueError(f"unknown error {code!r}; expected one of {', '.join(sorted(ERRORS))}")
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"error rate of {code} must be between 0 and 1, got {rate}")
        if self.operations is not None:
            if not isinstance(self.operations, frozenset):
                object.__setattr__(self, "operations", frozenset(self.operations))
            unknown = set(self.operations) - OPERATIONS
            if unknown:
                raise ValueError(f"unknown operations {sorted(unknown)}; expected some of {sorted(OPERATIONS)}")

    def rates(self) -> list[tuple[str, float]]:
        """Every fault with its rate, in the fixed order in which they are drawn."""
        rates = [(DROP, self.drop_rate), ("ThrottlingException", self.throttle_rate)]
        rates.append(("InternalServerException", self.internal_error_rate))
        rates.extend(sorted(self.error_rates.items()))
        rates.append((DROP_RESPONSE, self.drop_response_rate))
        return [(name, rate) for name, rate in rates if rate > 0]

    def applies_to(self, operation: str) -> bool:
        return self.operations is None or operation in self.operations

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "throttle_rate": self.throttle_rate,
            "internal_error_rate": self.internal_error_rate,
            "drop_rate": self.drop_rate,
            "latency": self.latency,
            "error_rates": dict(self.error_rates),
            "operations": sorted(self.operations) if self.operations is not None else None,
            "drop_response_rate": self.drop_response_rate,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultConfig:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown FaultConfig fields: {', '.join(sorted(unknown))}")
        data = dict(data)
        if data.get("operations") is not None:
            data["operations"] = frozenset(data["operations"])
        if data.get("error_rates") is not None:
            data["error_rates"] = {str(k): float(v) for k, v in data["error_rates"].items()}
        return cls(**data)


@dataclass
class _OneShot:
    error: str
    operation: str | None
    remaining: int


@dataclass(frozen=True)
class Fault:
    """What to do with one request: wait ``latency`` seconds, then answer ``action`` (an error name,
    :data:`DROP` or :data:`DROP_RESPONSE`), or serve it normally when ``action`` is ``None``."""

    latency: float = 0.0
    action: str | None = None


class FaultInjector:
    """Draws faults for requests from a :class:`FaultConfig` and pending one-shot injections; thread-safe."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._one_shots: list[_OneShot] = []
        self.set_config(config or FaultConfig())

    @property
    def config(self) -> FaultConfig:
        return self._config

    def set_config(self, config: FaultConfig) -> None:
        """Replace the config and reseed; counts keep accumulating."""
        with self._lock:
            self._config = config
            self._rng = random.Random(config.seed)

    def inject(self, error: str, operation: str | None = None, count: int = 1) -> None:
        """Answer the next ``count`` requests (of ``operation``, or any) with ``error``, :data:`DROP` or
        :data:`DROP_RESPONSE`."""
        if error not in CONNECTION_FAULTS and error not in ERRORS:
            raise ValueError(
                f"unknown error {error!r}; expected {' or '.join(map(repr, CONNECTION_FAULTS))} "
                f"or one of {', '.join(sorted(ERRORS))}"
            )
        if count < 1:
            raise ValueError("count must be at least 1")
        if operation is not None and operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; expected one of {sorted(OPERATIONS)}")
        with self._lock:
            self._one_shots.append(_OneShot(error, operation, count))

    @property
    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def decide(self, operation: str) -> Fault:
        with self._lock:
            for shot in self._one_shots:
                if shot.operation is None or shot.operation == operation:
                    shot.remaining -= 1
                    if shot.remaining == 0:
                        self._one_shots.remove(shot)
                    self._counts[shot.error] += 1
                    return Fault(action=shot.error)
            config = self._config
            if not config.applies_to(operation):
                return Fault()
            latency = config.latency
            if latency:
                self._counts[LATENCY] += 1
            for name, rate in config.rates():
                if self._rng.random() < rate:
                    self._counts[name] += 1
                    return Fault(latency=latency, action=name)
            return Fault(latency=latency)
