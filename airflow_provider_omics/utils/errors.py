"""How the provider's failures reach Airflow: one place that decides what fails at once and what may be retried.

- :class:`OmicsInputError` (an ``AirflowFailException``): input the service would refuse, or a staged source
  that cannot be used as planned. Never retried: no retry changes the input.
- :func:`service_failure`: a service error. Permanent ones (``PERMANENT_ERRORS``) fail at once, AccessDenied names
  the connection to fix; transient ones stay retryable ``AirflowException``.

They are raised ``from None``: the message already carries the service's error code and text, and a chained
botocore error would add a second traceback to the task log under the one Airflow prints for every failure.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

# The service's errors, each handled on purpose (README "Errors and retries"):
# - retried by botocore's retry mode, then by the part loop below, then by Airflow task retries;
TRANSIENT_ERRORS = frozenset({"ThrottlingException", "InternalServerException", "RequestTimeoutException"})
# - failing the task at once: retrying cannot change the answer.
PERMANENT_ERRORS = frozenset(
    {
        "ValidationException",
        "ResourceNotFoundException",
        "AccessDeniedException",
        "NotSupportedOperationException",
        "ServiceQuotaExceededException",
    }
)


def error_code(err: BaseException) -> str | None:
    if isinstance(err, ClientError):
        return err.response.get("Error", {}).get("Code")
    return None


def is_transient(err: BaseException) -> bool:
    """True for errors a later attempt may not see: throttling, 5xx, timeouts, dropped connections."""
    return error_code(err) in TRANSIENT_ERRORS or isinstance(err, ConnectionError | HTTPClientError)


class OmicsInputError(AirflowFailException):
    """Input that the service would refuse; raised before anything is created, and never retried."""


def service_failure(err: ClientError, what: str, aws_conn_id: str | None) -> AirflowException:
    """Permanent service errors fail the task at once (no retry can change them); others may be retried."""
    code = error_code(err)
    message = err.response.get("Error", {}).get("Message", str(err))
    if code == "AccessDeniedException":
        return AirflowFailException(
            f"{what}: access denied ({message}). Check the credentials and the IAM permissions of the AWS "
            f"connection {aws_conn_id!r}."
        )
    if code in PERMANENT_ERRORS:
        return AirflowFailException(f"{what}: {code}: {message}")
    return AirflowException(f"{what}: {code or type(err).__name__}: {message}")


@contextlib.contextmanager
def service_errors(what: str, aws_conn_id: str | None) -> Iterator[None]:
    """Service errors of the calls in the block, translated as :func:`service_failure` says."""
    try:
        yield
    except ClientError as err:
        raise service_failure(err, what, aws_conn_id) from None
