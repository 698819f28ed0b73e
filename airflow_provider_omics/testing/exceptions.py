"""The HealthOmics error shapes the emulator answers with (rest-json: status, ``x-amzn-ErrorType``, message).

Each class mirrors one exception of the botocore service model ``omics`` 2022-11-28, so that boto3 raises
``client.exceptions.<Name>`` for it.
"""

from __future__ import annotations

import json


class OmicsError(Exception):
    """An error the service answers with; ``code`` is the model's shape name, ``status`` its HTTP status."""

    code = "InternalServerException"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> bytes:
        return json.dumps({"message": self.message}).encode()


class AccessDeniedException(OmicsError):
    code = "AccessDeniedException"
    status = 403


class ConflictException(OmicsError):
    code = "ConflictException"
    status = 409


class InternalServerException(OmicsError):
    code = "InternalServerException"
    status = 500


class NotSupportedOperationException(OmicsError):
    code = "NotSupportedOperationException"
    status = 405


class RequestTimeoutException(OmicsError):
    code = "RequestTimeoutException"
    status = 408


class ResourceNotFoundException(OmicsError):
    code = "ResourceNotFoundException"
    status = 404


class ServiceQuotaExceededException(OmicsError):
    code = "ServiceQuotaExceededException"
    status = 402


class ThrottlingException(OmicsError):
    code = "ThrottlingException"
    status = 429


class ValidationException(OmicsError):
    code = "ValidationException"
    status = 400


ERRORS: dict[str, type[OmicsError]] = {
    cls.code: cls
    for cls in (
        AccessDeniedException,
        ConflictException,
        InternalServerException,
        NotSupportedOperationException,
        RequestTimeoutException,
        ResourceNotFoundException,
        ServiceQuotaExceededException,
        ThrottlingException,
        ValidationException,
    )
}

# The eight errors the model lists for UploadReadSetPart: the ones fault injection can answer with.
UPLOAD_PART_ERRORS: tuple[str, ...] = (
    "InternalServerException",
    "NotSupportedOperationException",
    "ServiceQuotaExceededException",
    "ThrottlingException",
    "ValidationException",
    "ResourceNotFoundException",
    "AccessDeniedException",
    "RequestTimeoutException",
)


def error_for(code: str, message: str) -> OmicsError:
    """Build the error named ``code`` (one of :data:`ERRORS`)."""
    try:
        cls = ERRORS[code]
    except KeyError:
        raise ValueError(f"unknown error {code!r}; expected one of {sorted(ERRORS)}") from None
    return cls(message)
