"""SigV4 verification for the emulator: recompute the client's signature with botocore and compare.

The request is rebuilt as a botocore ``AWSRequest`` from the method, the URL as sent, the headers the client
says it signed and ``X-Amz-Date``; ``SigV4Auth`` then produces the canonical request, the string to sign and
the signature exactly as the client did. A body sent with ``X-Amz-Content-SHA256: UNSIGNED-PAYLOAD``
(UploadReadSetPart) is not part of the signature; a hex ``X-Amz-Content-SHA256`` is, and the HTTP layer
checks the streamed body against it; a body signed without that header is hashed as it streams and the
signature checked once it is read (the part is discarded if it does not match). Clock skew is not checked.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Protocol

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from airflow_provider_omics.testing.exceptions import AccessDeniedException

SERVICE = "omics"
_AUTH_RE = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def is_sha256(value: str | None) -> bool:
    return value is not None and bool(_SHA256_RE.fullmatch(value))


class Headers(Protocol):
    """Case-insensitive header lookup, like ``http.client.HTTPMessage``."""

    def get(self, name: str, default: None = None, /) -> str | None: ...


class _Signer(SigV4Auth):
    """``SigV4Auth`` with the payload hash given rather than computed from a body held in memory."""

    def __init__(self, credentials: Credentials, region: str, payload_hash: str | None) -> None:
        super().__init__(credentials, SERVICE, region)
        self._payload_hash = payload_hash

    def payload(self, request: AWSRequest) -> str:
        if self._payload_hash is not None:
            return self._payload_hash
        return str(super().payload(request))


@dataclass(frozen=True)
class Signature:
    """The parts of an ``Authorization`` header the check needs."""

    region: str
    amz_date: str
    signed_headers: tuple[str, ...]
    signature: str


class SigV4Verifier:
    """Checks that a request was signed with ``access_key``/``secret_key`` for service ``omics``."""

    def __init__(self, access_key: str, secret_key: str) -> None:
        self.access_key = access_key
        self.secret_key = secret_key

    def precheck(self, headers: Headers) -> Signature:
        """What can be checked before the body is read: a SigV4 header with this access key, for omics."""
        authorization = headers.get("Authorization")
        if not authorization:
            raise AccessDeniedException("Missing Authentication Token: the request is not signed")
        match = _AUTH_RE.match(authorization)
        if not match:
            raise AccessDeniedException("the Authorization header is not a SigV4 (AWS4-HMAC-SHA256) signature")
        parts = match["credential"].split("/")
        if len(parts) != 5 or parts[4] != "aws4_request":
            raise AccessDeniedException("malformed credential scope in the Authorization header")
        access_key, date, region, service, _ = parts
        if not hmac.compare_digest(access_key, self.access_key):
            raise AccessDeniedException("The security token included in the request is invalid (unknown access key)")
        if service != SERVICE:
            raise AccessDeniedException(f"credential scope names service {service!r}, expected {SERVICE!r}")
        amz_date = headers.get("X-Amz-Date")
        if not amz_date or not amz_date.startswith(date):
            raise AccessDeniedException("X-Amz-Date is missing or does not match the credential scope date")
        signed = tuple(match["signed"].split(";"))
        if "x-amz-date" not in signed:
            raise AccessDeniedException("X-Amz-Date must be signed")
        return Signature(region, amz_date, signed, match["signature"])

    def verify(
        self,
        method: str,
        host: str,
        raw_path: str,
        headers: Headers,
        body: bytes | None,
        payload_hash: str | None = None,
    ) -> None:
        """Raise :class:`AccessDeniedException` unless the request carries a valid signature.

        :param raw_path: the request target as sent (path and query, still percent-encoded).
        :param body: the request body when it is held in memory (JSON), else ``None``.
        :param payload_hash: the SHA-256 of a streamed body, once read, when the client signed it without
            sending ``X-Amz-Content-SHA256``.
        """
        signature = self.precheck(headers)
        request_headers: dict[str, str] = {}
        for name in signature.signed_headers:
            value = headers.get(name)
            if value is None:
                raise AccessDeniedException(f"signed header {name!r} is missing from the request")
            request_headers[name] = value
        content_sha = headers.get("X-Amz-Content-SHA256")
        if body is not None and is_sha256(content_sha) and hashlib.sha256(body).hexdigest() != content_sha:
            raise AccessDeniedException("the body does not match X-Amz-Content-SHA256")
        host_header = headers.get("Host") or host
        request = AWSRequest(method=method, url=f"http://{host_header}{raw_path}", headers=request_headers, data=body)
        request.context["timestamp"] = signature.amz_date
        signer = _Signer(Credentials(self.access_key, self.secret_key), signature.region, payload_hash)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if not hmac.compare_digest(expected, signature.signature):
            raise AccessDeniedException(
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method."
            )
