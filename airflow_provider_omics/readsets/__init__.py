"""The read set request, beneath the operators: its identity (:mod:`.identity`) and the once-only announcement of
a verified read set (:mod:`.announce`). Callable without a DAG."""

from __future__ import annotations

from typing import Any, Protocol


class Logger(Protocol):
    """What the steps log through: a task's ``self.log`` (Airflow's logger or the standard library's)."""

    def info(self, msg: str, /, *args: Any) -> Any: ...

    def warning(self, msg: str, /, *args: Any) -> Any: ...

    def error(self, msg: str, /, *args: Any) -> Any: ...


__all__ = ["Logger"]
