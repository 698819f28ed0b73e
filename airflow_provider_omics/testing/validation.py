"""Checks of a request's members against the service model's shapes (:mod:`.shapes`): lengths, patterns, enums
and ranges, raising :class:`~.exceptions.ValidationException`; and the pagination of the List operations.

:mod:`.models` calls these before it applies the service's rules to its state.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from airflow_provider_omics.testing.exceptions import ValidationException
from airflow_provider_omics.testing.shapes import (
    ARN_PATTERN,
    ID_PATTERN,
    JOB_STATUS_MESSAGE_LENGTH,
    MAX_RESULTS,
    MAX_TAG_VALUE_LENGTH,
    ROLE_ARN_LENGTH,
    S3_URI_PATTERN,
    TAG_KEY_LENGTH,
)

# The model only asks for arn:.* ; the service wants the ARN of an IAM role it can assume.
# The partitions of IAM: aws, aws-cn (China), aws-us-gov (GovCloud).
ROLE_ARN_PATTERN = re.compile(r"arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/[\w+=,.@/-]+")


def printable(value: str) -> bool:
    # The model's pattern [\p{L}||\p{M}||\p{Z}||\p{S}||\p{N}||\p{P}]+ : anything but control/format characters.
    return all(unicodedata.category(ch)[0] in "LMZSNP" for ch in value)


def check_id(value: Any, what: str) -> str:
    """Ids of stores, uploads and read sets: strings of 10 to 36 digits."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise ValidationException(f"{what} must be a string of 10 to 36 digits, got {value!r}")
    return value


def check_text(key: str, value: str | None, *, high: int = 127) -> None:
    """A text member, unless ``None`` (not given): 1 to ``high`` characters of the model's printable pattern."""
    if value is None:
        return
    if not 1 <= len(value) <= high:
        raise ValidationException(f"{key} must be 1 to {high} characters long")
    if not printable(value):
        raise ValidationException(f"{key} contains characters that are not allowed")


def check_enum(key: str, value: str | None, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if value is not None and value not in allowed:
        raise ValidationException(f"{key} must be one of {', '.join(allowed)}, got {value!r}")


def check_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    """A copy of ``tags`` once the keys and values are of allowed lengths; ``{}`` for ``None``."""
    if tags is None:
        return {}
    low, high = TAG_KEY_LENGTH
    for key, value in tags.items():
        if not low <= len(key) <= high:
            raise ValidationException(f"tag keys must be {low} to {high} characters long")
        if len(value) > MAX_TAG_VALUE_LENGTH:
            raise ValidationException(f"tag values must be strings of at most {MAX_TAG_VALUE_LENGTH} characters")
    return dict(tags)


def check_reference_arn(value: str | None) -> None:
    if value is not None and (not 1 <= len(value) <= 127 or not ARN_PATTERN.fullmatch(value)):
        raise ValidationException(f"referenceArn must be an ARN (pattern arn:.+, 1 to 127 characters), got {value!r}")


def check_role_arn(value: str) -> None:
    low, high = ROLE_ARN_LENGTH
    if not low <= len(value) <= high or not ROLE_ARN_PATTERN.fullmatch(value):
        raise ValidationException(
            f"roleArn must be the ARN of an IAM role (arn:aws:iam::<account>:role/<name>), got {value!r}"
        )


def check_s3_uri(key: str, value: str | None) -> None:
    if value is not None and not S3_URI_PATTERN.fullmatch(value):
        raise ValidationException(f"{key} must be an S3 URI (s3://<bucket>/<key>), got {value!r}")


def job_status_message(text: str) -> str:
    """``text`` as a ``JobStatusMessage``: printable characters only, at most 127 of them."""
    cleaned = "".join(ch if printable(ch) else " " for ch in text).strip() or "failed"
    limit = JOB_STATUS_MESSAGE_LENGTH
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


def created_within(epoch: float, after: datetime | None, before: datetime | None) -> bool:
    """The ``createdAfter``/``createdBefore`` filters of the List operations (both bounds included)."""
    return (after is None or epoch >= after.timestamp()) and (before is None or epoch <= before.timestamp())


def paginate(items: list[Any], max_results: int | None, next_token: str | None) -> tuple[list[Any], str | None]:
    """One page of ``items``; the token is the offset of the next page (opaque to clients)."""
    size = MAX_RESULTS if max_results is None else max_results
    if not 1 <= size <= MAX_RESULTS:
        raise ValidationException(f"maxResults must be between 1 and {MAX_RESULTS}, got {size}")
    start = 0
    if next_token is not None:
        if not next_token.isdigit() or int(next_token) > len(items):
            raise ValidationException("nextToken is invalid or expired")
        start = int(next_token)
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)
