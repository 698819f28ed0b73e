"""Fault injection for reliability tests: seeded error rates, added latency, connections dropped mid-body,
answers lost after the request was served, and a gate that holds requests until the test lets them through.

:class:`FaultConfig` says what to inject (off by default, JSON round-trippable for the admin endpoint);
:class:`FaultInjector` decides, request by request, what happens, and counts what it injected. One-shot
injections (``inject``) come first and ignore the config's ``operations`` filter.

:class:`RequestGate` (``FaultInjector.gate``) holds the requests of chosen operations once their headers are
read, before their body is, until they are released one by one or the gate is opened: a test can then act
while a request is known to be in flight (kill the client that sent it, say) instead of betting on latency.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
        self.gate = RequestGate()
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


def check_operation(operation: str) -> str:
    if operation not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}; expected one of {sorted(OPERATIONS)}")
    return operation


@dataclass(frozen=True)
class HeldRequest:
    """A request held at the :class:`RequestGate`: its headers are read, its body is not.

    ``client_host`` and ``client_port`` are the client's end of the connection, which is how a test tells
    which of its processes sent the request (``psutil``'s connections of a process have it as ``laddr``).
    """

    id: int
    operation: str
    client_host: str
    client_port: int
    path: str
    query: Mapping[str, str]
    held_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "operation": self.operation,
            "client_host": self.client_host,
            "client_port": self.client_port,
            "path": self.path,
            "query": dict(self.query),
            "held_at": self.held_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HeldRequest:
        return cls(
            id=int(data["id"]),
            operation=str(data["operation"]),
            client_host=str(data["client_host"]),
            client_port=int(data["client_port"]),
            path=str(data["path"]),
            query={str(k): str(v) for k, v in data["query"].items()},
            held_at=datetime.fromisoformat(data["held_at"]),
        )


class RequestGate:
    """Holds the requests of the operations it is closed for until each is released; thread-safe.

    A held request waits without a timeout: only :meth:`release`, :meth:`release_all`, :meth:`open` or
    :meth:`shutdown` end the wait. Requests of other operations pass through untouched, as do admin requests.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._closed: set[str] = set()
        self._held: dict[int, HeldRequest] = {}
        # Released ids, and whether each may be served (False: the emulator stops, drop it unserved).
        self._verdicts: dict[int, bool] = {}
        self._ids = itertools.count(1)
        self._stopped = False

    def hold(self, operation: str) -> None:
        """Close the gate for ``operation``: its requests from now on are held."""
        check_operation(operation)
        with self._cond:
            self._closed.add(operation)

    def open(self, operation: str | None = None) -> list[HeldRequest]:
        """Open the gate for ``operation`` (every operation when ``None``) and release what it held; returns
        the released requests."""
        if operation is not None:
            check_operation(operation)
        with self._cond:
            if operation is None:
                self._closed.clear()
            else:
                self._closed.discard(operation)
            return self._let_go(operation, serve=True)

    def release(self, request_id: int) -> HeldRequest:
        """Let one held request through (the gate stays closed for the next ones); returns it."""
        with self._cond:
            held = self._held.pop(request_id, None)
            if held is None:
                raise KeyError(f"no held request {request_id}")
            self._verdicts[request_id] = True
            self._cond.notify_all()
            return held

    def release_all(self, operation: str | None = None) -> list[HeldRequest]:
        """Let every held request (of ``operation``, or all) through; the gate stays closed for the next ones."""
        if operation is not None:
            check_operation(operation)
        with self._cond:
            return self._let_go(operation, serve=True)

    @property
    def holding(self) -> frozenset[str]:
        """The operations the gate is closed for."""
        with self._cond:
            return frozenset(self._closed)

    def held(self, operation: str | None = None) -> list[HeldRequest]:
        """The requests held now (of ``operation``, or all), oldest first."""
        with self._cond:
            return [h for h in self._held.values() if operation is None or h.operation == operation]

    def wait_held(self, count: int = 1, operation: str | None = None, timeout: float = 60.0) -> list[HeldRequest]:
        """Block until at least ``count`` requests (of ``operation``, or any) are held; returns them.

        ``timeout`` only catches a test that hangs: it raises :class:`TimeoutError`.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.held(operation)) >= count, timeout):
                raise TimeoutError(f"fewer than {count} requests held after {timeout} s: {self.held(operation)}")
            return self.held(operation)

    def wait(self, operation: str, client: tuple[str, int], path: str, query: Mapping[str, str]) -> bool:
        """Called by the server for each request: return at once if the gate is open for ``operation``, else
        hold the request until it is released. ``False``: the emulator stops, answer nothing."""
        with self._cond:
            if self._stopped:
                return False
            if operation not in self._closed:
                return True
            request_id = next(self._ids)
            host, port = client[0], client[1]
            self._held[request_id] = HeldRequest(
                request_id, operation, str(host), int(port), path, dict(query), datetime.now(UTC)
            )
            self._cond.notify_all()  # wakes wait_held
            self._cond.wait_for(lambda: request_id in self._verdicts)
            return self._verdicts.pop(request_id)

    def shutdown(self) -> None:
        """Let every held request go unserved, and hold none from now on, until :meth:`resume`: the server
        stops, and no request thread may outlive it blocked here."""
        with self._cond:
            self._stopped = True
            self._let_go(None, serve=False)

    def resume(self) -> None:
        """Gate requests again after :meth:`shutdown` (a restarted emulator); the operations it held stay held."""
        with self._cond:
            self._stopped = False

    def _let_go(self, operation: str | None, *, serve: bool) -> list[HeldRequest]:
        released = [h for h in self._held.values() if operation is None or h.operation == operation]
        for held in released:
            del self._held[held.id]
            self._verdicts[held.id] = serve
        self._cond.notify_all()
        return released
