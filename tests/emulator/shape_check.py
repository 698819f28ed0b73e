"""Check a parsed boto3 response against botocore's output shape for its operation.

:func:`shape_problems` walks ``operation_model.output_shape`` alongside the response that botocore parsed:
required members present, no member the shape does not have, types (botocore's parser has already turned
timestamps into ``datetime`` and streaming blobs into ``StreamingBody``), enum values, string lengths and
patterns, numeric ranges, list and map sizes. :class:`ResponseChecker` hooks it on a client's
``after-call.omics`` event so that every successful call made through that client is checked.

Patterns are matched in full, as AWS's services apply them (a Smithy pattern is an unanchored ECMA-262 regex,
but ``[0-9]+`` for an id means "digits", not "contains a digit"). The model writes "printable text" as
``[\\p{L}||\\p{M}||\\p{Z}||\\p{S}||\\p{N}||\\p{P}]+``; Python's ``re`` has no ``\\p{..}``, so a class made of
Unicode general categories is checked with :mod:`unicodedata`, and any other ``\\p{..}`` is refused rather
than skipped.
"""

from __future__ import annotations

import datetime
import functools
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StringShape, StructureShape
from botocore.response import StreamingBody

# Members the model marks required in an output but lets a request leave out, with no value that both fits
# the member's constraints and says "none given": a FASTQ or uBAM upload need not name a reference, nor any
# upload its origin, yet referenceArn (min 1, pattern arn:.+) and generatedFrom (min 1) are required in the
# answers that describe an upload. The emulator leaves them out, so that a client tested against it copes with
# their absence, whatever the service sends instead. Each may be absent only when the structure's other
# members allow it (a BAM or CRAM upload always has its reference).
_UNLINKED = ("FASTQ", "UBAM")
REQUIRED_BUT_MAY_BE_ABSENT: dict[tuple[str, str], Callable[[dict[str, Any]], bool]] = {
    ("CreateMultipartReadSetUploadResponse", "referenceArn"): lambda s: s.get("sourceFileType") in _UNLINKED,
    ("MultipartReadSetUploadListItem", "referenceArn"): lambda s: s.get("sourceFileType") in _UNLINKED,
    ("MultipartReadSetUploadListItem", "generatedFrom"): lambda s: True,
}

# [\p{L}||\p{M}||...]+ : a character class of general categories (the "|" are literal members of the class).
_CATEGORY_CLASS = re.compile(r"\[((?:\\p\{[A-Z][a-z]?\}|\|)+)\]\+")
_CATEGORY = re.compile(r"\\p\{([A-Z][a-z]?)\}")


def _categories_match(pattern: str, value: str) -> bool | None:
    """Whether ``value`` matches a pattern that is a class of Unicode categories; ``None`` for other patterns."""
    found = _CATEGORY_CLASS.fullmatch(pattern)
    if found is None:
        return None
    categories = set(_CATEGORY.findall(found[1]))
    literal = {"|"} if "||" in found[1] else set()

    def allowed(ch: str) -> bool:
        category = unicodedata.category(ch)
        return ch in literal or category in categories or category[0] in categories

    return bool(value) and all(allowed(ch) for ch in value)


def pattern_matches(pattern: str, value: str) -> bool:
    by_category = _categories_match(pattern, value)
    if by_category is not None:
        return by_category
    if "\\p{" in pattern:
        raise NotImplementedError(f"pattern {pattern!r} uses a Unicode property this checker does not know")
    return re.fullmatch(pattern, value, re.DOTALL) is not None


def _sized(shape: Shape, size: float, what: str, path: str) -> list[str]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        return [f"{path}: {what} {size} is below the minimum {low} of {shape.name}"]
    if high is not None and size > high:
        return [f"{path}: {what} {size} is above the maximum {high} of {shape.name}"]
    return []


def shape_problems(shape: Shape, value: Any, path: str = "$") -> list[str]:
    """Every way ``value`` (as botocore parsed it) departs from ``shape``; empty when it conforms."""
    kind = shape.type_name
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            return [f"{path}: expected a {shape.name} structure, got {type(value).__name__}"]
        problems = []
        for name in shape.required_members:
            may_be_absent = REQUIRED_BUT_MAY_BE_ABSENT.get((shape.name, name), lambda s: False)
            if name not in value and not may_be_absent(value):
                problems.append(f"{path}: required member {name!r} of {shape.name} is missing")
        for name, member_value in value.items():
            member = shape.members.get(name)
            if member is None:
                problems.append(f"{path}: {shape.name} has no member {name!r}")
            else:
                problems += shape_problems(member, member_value, f"{path}.{name}")
        return problems
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            return [f"{path}: expected a list ({shape.name}), got {type(value).__name__}"]
        problems = _sized(shape, len(value), "length", path)
        for index, item in enumerate(value):
            problems += shape_problems(shape.member, item, f"{path}[{index}]")
        return problems
    if isinstance(shape, MapShape):
        if not isinstance(value, dict):
            return [f"{path}: expected a map ({shape.name}), got {type(value).__name__}"]
        problems = _sized(shape, len(value), "size", path)
        for key, item in value.items():
            problems += shape_problems(shape.key, key, f"{path} key {key!r}")
            problems += shape_problems(shape.value, item, f"{path}[{key!r}]")
        return problems
    if isinstance(shape, StringShape):
        if not isinstance(value, str):
            return [f"{path}: expected a string ({shape.name}), got {type(value).__name__}"]
        if shape.enum and value not in shape.enum:
            return [f"{path}: {value!r} is not one of the {shape.name} values {shape.enum}"]
        problems = _sized(shape, len(value), "length", path)
        pattern = shape.metadata.get("pattern")
        if pattern is not None and not pattern_matches(pattern, value):
            problems.append(f"{path}: {value!r} does not match the {shape.name} pattern {pattern!r}")
        return problems
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{path}: expected an integer ({shape.name}), got {type(value).__name__}"]
        return _sized(shape, value, "value", path)
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return [f"{path}: expected a number ({shape.name}), got {type(value).__name__}"]
        return _sized(shape, value, "value", path)
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{path}: expected a boolean, got {type(value).__name__}"]
    if kind == "timestamp":
        if isinstance(value, datetime.datetime):
            return []
        return [f"{path}: expected a timestamp (datetime), got {type(value).__name__}"]
    if kind == "blob":
        expected = StreamingBody if shape.serialization.get("streaming") else bytes
        if isinstance(value, expected):
            return []
        return [f"{path}: expected {expected.__name__} ({shape.name}), got {type(value).__name__}"]
    return [f"{path}: the checker does not know shapes of type {kind!r} ({shape.name})"]


def response_problems(operation: OperationModel, parsed: dict[str, Any]) -> list[str]:
    """Check a successful response; ``ResponseMetadata`` is botocore's own, not the service's."""
    shape = operation.output_shape
    body = {key: value for key, value in parsed.items() if key != "ResponseMetadata"}
    if shape is None:
        return [f"{operation.name} has no output, got {sorted(body)}"] if body else []
    return [f"{operation.name} {problem}" for problem in shape_problems(shape, body)]


class ResponseChecker:
    """Checks every successful response of the clients it is attached to; thread-safe.

    A nonconforming response raises ``AssertionError`` out of the call that got it and is also recorded in
    :attr:`problems`, for calls made in threads that swallow exceptions (AWS's transfer manager, say).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.problems: list[str] = []
        self.checked: int = 0

    def attach(self, client: Any) -> Any:
        client.meta.events.register("after-call.omics", self._after_call, unique_id="emulator-shape-check")
        return client

    def _after_call(self, http_response: Any, parsed: dict[str, Any], model: OperationModel, **_: Any) -> None:
        if http_response.status_code >= 300:
            return  # an error: its shape is the exception's, which botocore raises by name
        problems = response_problems(model, parsed)
        with self._lock:
            self.checked += 1
            self.problems += problems
        if problems:
            raise AssertionError("a response that does not conform to the service model:\n" + "\n".join(problems))

    def assert_clean(self) -> None:
        with self._lock:
            problems = list(self.problems)
        assert not problems, "responses that do not conform to the service model:\n" + "\n".join(problems)


@functools.cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("omics")


def check_all(operation: str, responses: Iterable[dict[str, Any]]) -> None:
    """Check answers of the backend (called without HTTP) against ``operation``'s output shape."""
    model = service_model().operation_model(operation)
    problems = [problem for response in responses for problem in response_problems(model, response)]
    assert not problems, "\n".join(problems)
