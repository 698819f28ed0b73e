"""The HTTP layer of the emulator: route a rest-json request, parse it, call the backend, serialize the answer.

Parsing reads the path, the query string and the JSON body into the members of the operation's request, as
the types the service model gives them (a query ``partNumber`` becomes an ``int``, a ``filter`` a
:class:`~.models.ReadSetFilter`), and refuses what cannot be read so: a member of the wrong JSON type, a query
value that is not a number, a required member that is missing. The backend is then called with named
arguments and checks the values themselves (lengths, patterns, enums, ranges): those are the service's rules.

Built on the standard library's ``http.server`` (one thread per connection, HTTP/1.1 keep-alive) rather than on
an ASGI stack such as uvicorn/h11 or Starlette, which Airflow brings along: the emulator must ingest 100 MiB
parts as fast as the client can send them, streaming ``rfile`` straight to disk in 1 MiB ``readinto`` calls
with no event-loop hop per chunk, and fault injection needs direct control of the socket (read half a body,
then drop the connection without answering), which an ASGI server hides.

Admin endpoints under ``/_emulator/`` let other processes steer an emulator; they are never signature-checked
nor subject to faults nor held:

- ``GET /_emulator/health``: ``{"status": "ok"}``.
- ``GET``/``POST /_emulator/faults``: the :class:`~.faults.FaultConfig` (``to_dict`` JSON) and the counts.
- ``POST /_emulator/inject``: ``{"error", "operation", "count"}``, a one-shot injection.
- ``GET``/``POST /_emulator/activations``: the activation hold, ``{"hold": true, "release_after_reads": n}``
  or ``{"hold": false}``.
- ``GET``/``POST /_emulator/importjobs``: the import job hold, ``{"hold": true, "at": "SUBMITTED" |
  "IN_PROGRESS", "release_after_reads": n}`` (``at`` SUBMITTED unless given) or ``{"hold": false}``; answers
  ``{"hold", "at", "release_after_reads"}``.
- ``GET``/``POST /_emulator/quotas``: the API quotas (:mod:`.quotas`) and the calls and throttled calls per
  operation, ``{"quotas": {"rates", "time_scale", "burst_seconds"} | null, "counts": {...}}``; ``POST`` takes
  ``{"quotas": "default" | "off" | {"rates": {operation: tps}, "time_scale": x}}`` and/or ``{"reset_counts":
  true}``.
- ``GET``/``POST /_emulator/requests``: the request gate (:class:`~.faults.RequestGate`). ``GET`` answers
  ``{"holding": [operation, ...], "held": [{"id", "operation", "client_host", "client_port", "path",
  "query", "held_at"}, ...]}``; ``POST`` takes ``{"action": "hold", "operation": op}`` (close the gate for
  ``op``), ``{"action": "release", "id": n}`` (let one held request through), ``{"action": "release_all"}``
  (every held request, or those of an optional ``"operation"``; the gate stays closed) or ``{"action":
  "open"}`` (open the gate for an optional ``"operation"``, else for all, releasing what it held), and answers
  like ``GET`` with ``"released": [...]`` added. A held request has had its headers read, not its body.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import re
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from airflow_provider_omics.testing.auth import SigV4Verifier, is_sha256
from airflow_provider_omics.testing.exceptions import (
    AccessDeniedException,
    InternalServerException,
    NotSupportedOperationException,
    OmicsError,
    ThrottlingException,
    ValidationException,
    error_for,
)
from airflow_provider_omics.testing.faults import DROP, DROP_RESPONSE, FaultConfig, FaultInjector, HeldRequest
from airflow_provider_omics.testing.models import (
    MAX_PART_SIZE,
    OPERATIONS,
    CompletedPart,
    ImportReadSetFilter,
    OmicsBackend,
    ReadSetFilter,
    ReadSetImportSource,
    ReadSetUploadPartFilter,
    SequenceStoreFilter,
)
from airflow_provider_omics.testing.quotas import QuotaConfig, QuotaEnforcer
from airflow_provider_omics.testing.shapes import ACCOUNT_ID

log = logging.getLogger(__name__)

# JSON request bodies are small; a CompleteMultipartReadSetUpload of 2 x 10,000 parts is about 1.5 MB.
MAX_JSON_BODY = 32 * 1024 * 1024
CHUNK_SIZE = 1024 * 1024
# After refusing an oversized part, keep reading (and discarding) for a while before closing, so that the
# client finishes sending and reads the error instead of failing on a reset connection.
LINGER_SECONDS = 10.0


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    raise TypeError(f"cannot serialize {type(value).__name__}")


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    operation: str
    status: int = 200  # the model's responseCode


def _route(method: str, path: str, operation: str, status: int = 200) -> Route:
    # Path parameters arrive percent-encoded (an ARN's "/" as %2F), so one never spans two segments.
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
    return Route(method, re.compile(regex), operation, status)


@dataclass(frozen=True)
class FileAnswer:
    """A response body streamed from a file (GetReadSet), sent by the dispatcher like a JSON answer."""

    path: Path
    size: int


_STORE = "/sequencestore/{sequenceStoreId}"
ROUTES = (
    _route("POST", "/sequencestore", "CreateSequenceStore"),
    _route("POST", "/sequencestores", "ListSequenceStores"),
    _route("GET", "/sequencestore/{id}", "GetSequenceStore"),
    _route("POST", f"{_STORE}/upload", "CreateMultipartReadSetUpload"),
    _route("PUT", f"{_STORE}/upload/{{uploadId}}/part", "UploadReadSetPart"),
    _route("POST", f"{_STORE}/upload/{{uploadId}}/parts", "ListReadSetUploadParts"),
    _route("POST", f"{_STORE}/upload/{{uploadId}}/complete", "CompleteMultipartReadSetUpload"),
    _route("DELETE", f"{_STORE}/upload/{{uploadId}}/abort", "AbortMultipartReadSetUpload"),
    _route("POST", f"{_STORE}/uploads", "ListMultipartReadSetUploads"),
    _route("GET", f"{_STORE}/readset/{{id}}/metadata", "GetReadSetMetadata"),
    _route("GET", f"{_STORE}/readset/{{id}}", "GetReadSet"),
    _route("POST", f"{_STORE}/readsets", "ListReadSets"),
    _route("GET", "/tags/{resourceArn}", "ListTagsForResource"),
    _route("POST", "/tags/{resourceArn}", "TagResource", status=204),
    _route("POST", f"{_STORE}/importjob", "StartReadSetImportJob"),
    _route("GET", f"{_STORE}/importjob/{{id}}", "GetReadSetImportJob"),
    _route("POST", f"{_STORE}/importjobs", "ListReadSetImportJobs"),
)
# Fault injection filters on operation names: every route must be one it knows, and every name a route.
assert {route.operation for route in ROUTES} == OPERATIONS


def match_route(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for route in ROUTES:
        if route.method == method and (found := route.pattern.fullmatch(path)):
            return route, {key: unquote(value) for key, value in found.groupdict().items()}
    return None


class RequestBody:
    """The body of one request: at most ``length`` bytes of the connection, read once.

    When ``on_end`` is set (a SigV4-signed part body), the body is hashed with SHA-256 as it streams and
    ``on_end(hexdigest)`` is called as the last byte is read: it raises to refuse a part whose bytes do not
    match what was signed, before the part is stored.
    """

    def __init__(self, rfile: io.BufferedIOBase, length: int) -> None:
        self._rfile = rfile
        self.remaining = length
        self._sha: Any = None
        self._on_end: Callable[[str], None] | None = None

    def check_at_end(self, on_end: Callable[[str], None]) -> None:
        self._sha = hashlib.sha256()
        self._on_end = on_end

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        want = min(len(view), self.remaining)
        if want <= 0:
            return 0
        got = self._rfile.readinto(view[:want]) or 0
        self.remaining -= got
        if self._sha is not None:
            self._sha.update(view[:got])
            if self.remaining == 0 and self._on_end is not None:
                self._on_end(self._sha.hexdigest())
        return got

    def read_all(self) -> bytes:
        if self.remaining > MAX_JSON_BODY:
            raise ValidationException(f"request body larger than {MAX_JSON_BODY} bytes")
        data = self._rfile.read(self.remaining) if self.remaining else b""
        self.remaining -= len(data)
        return data

    def discard(self, limit: int | None = None) -> int:
        """Read and drop up to ``limit`` bytes (all that is left by default); returns how many."""
        todo = self.remaining if limit is None else min(limit, self.remaining)
        buffer = memoryview(bytearray(min(CHUNK_SIZE, max(todo, 1))))
        done = 0
        while done < todo:
            got = self._rfile.readinto(buffer[: min(len(buffer), todo - done)]) or 0
            if not got:
                break
            done += got
        self.remaining -= done
        return done


class Members:
    """The members of one JSON structure, or of the query string, read as the types the model gives them.

    Query values are strings on the wire: :meth:`integer` parses them. In a JSON body an integer must be a
    JSON number. An absent member (or a JSON ``null``) reads as ``None``; the ``required_`` readers refuse it.
    """

    def __init__(self, values: Mapping[str, Any], *, query: bool = False) -> None:
        self._values = values
        self._query = query

    @classmethod
    def of(cls, value: Any, key: str) -> Members:
        if not isinstance(value, dict):
            raise ValidationException(f"{key} must be a structure")
        return cls(value)

    def _required(self, key: str, value: Any) -> Any:
        if value is None:
            raise ValidationException(f"{key} is required")
        return value

    def string(self, key: str) -> str | None:
        value = self._values.get(key)
        if value is not None and not isinstance(value, str):
            raise ValidationException(f"{key} must be a string")
        return value

    def required_string(self, key: str) -> str:
        return str(self._required(key, self.string(key)))

    def integer(self, key: str) -> int | None:
        value = self._values.get(key)
        if value is None:
            return None
        if self._query and isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        elif isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValidationException(f"{key} must be an integer, got {value!r}")

    def required_integer(self, key: str) -> int:
        return int(self._required(key, self.integer(key)))

    def timestamp(self, key: str) -> datetime | None:
        """rest-json sends timestamps in a body as epoch seconds; ISO 8601 strings are accepted too."""
        value = self._values.get(key)
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, tz=UTC)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return datetime.fromisoformat(value)
        raise ValidationException(f"{key} must be a timestamp")

    def string_map(self, key: str) -> dict[str, str] | None:
        value = self._values.get(key)
        if value is None:
            return None
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ValidationException(f"{key} must be a map of strings")
        return value

    def required_string_map(self, key: str) -> dict[str, str]:
        return dict(self._required(key, self.string_map(key)))

    def structure(self, key: str) -> Members | None:
        value = self._values.get(key)
        return None if value is None else Members.of(value, key)

    def structures(self, key: str) -> list[Members] | None:
        value = self._values.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise ValidationException(f"{key} must be a list")
        return [Members.of(item, f"each item of {key}") for item in value]


@dataclass(frozen=True)
class Request:
    """One request to an operation: its path parameters, query string and JSON body, and the raw body stream
    (read by UploadReadSetPart only)."""

    path: dict[str, str]
    query: Members
    json: Members
    stream: RequestBody
    content_length: int | None


def sequence_store_filter(filt: Members | None) -> SequenceStoreFilter | None:
    if filt is None:
        return None
    return SequenceStoreFilter(
        name=filt.string("name"),
        status=filt.string("status"),
        created_after=filt.timestamp("createdAfter"),
        created_before=filt.timestamp("createdBefore"),
    )


def read_set_filter(filt: Members | None) -> ReadSetFilter | None:
    if filt is None:
        return None
    return ReadSetFilter(
        name=filt.string("name"),
        status=filt.string("status"),
        reference_arn=filt.string("referenceArn"),
        created_after=filt.timestamp("createdAfter"),
        created_before=filt.timestamp("createdBefore"),
        sample_id=filt.string("sampleId"),
        subject_id=filt.string("subjectId"),
        generated_from=filt.string("generatedFrom"),
        creation_type=filt.string("creationType"),
    )


def upload_part_filter(filt: Members | None) -> ReadSetUploadPartFilter | None:
    if filt is None:
        return None
    return ReadSetUploadPartFilter(
        created_after=filt.timestamp("createdAfter"), created_before=filt.timestamp("createdBefore")
    )


def import_read_set_filter(filt: Members | None) -> ImportReadSetFilter | None:
    if filt is None:
        return None
    return ImportReadSetFilter(
        status=filt.string("status"),
        created_after=filt.timestamp("createdAfter"),
        created_before=filt.timestamp("createdBefore"),
    )


def import_sources(items: list[Members] | None) -> list[ReadSetImportSource]:
    """The ``sources`` of StartReadSetImportJob."""
    if items is None:
        raise ValidationException("sources is required")
    sources = []
    for item in items:
        files = item.structure("sourceFiles")
        if files is None:
            raise ValidationException("sourceFiles is required in each source")
        sources.append(
            ReadSetImportSource(
                source1=files.required_string("source1"),
                source2=files.string("source2"),
                source_file_type=item.required_string("sourceFileType"),
                subject_id=item.required_string("subjectId"),
                sample_id=item.required_string("sampleId"),
                generated_from=item.string("generatedFrom"),
                reference_arn=item.string("referenceArn"),
                name=item.string("name"),
                description=item.string("description"),
                tags=item.string_map("tags") or {},
            )
        )
    return sources


def completed_parts(items: list[Members] | None) -> list[CompletedPart]:
    if items is None:
        raise ValidationException("parts is required and must list the uploaded parts")
    return [
        CompletedPart(
            part_source=item.required_string("partSource"),
            part_number=item.required_integer("partNumber"),
            checksum=item.required_string("checksum"),
        )
        for item in items
    ]


class OmicsHTTPServer(ThreadingHTTPServer):
    """A thread per connection, serving one :class:`OmicsBackend`."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        backend: OmicsBackend,
        faults: FaultInjector,
        verifier: SigV4Verifier | None,
        quotas: QuotaEnforcer | None = None,
    ) -> None:
        self.backend = backend
        self.faults = faults
        self.verifier = verifier
        self.quotas = quotas if quotas is not None else QuotaEnforcer()
        self._connections: set[socket.socket] = set()
        super().__init__(address, OmicsRequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall for seconds without DNS.
        super(ThreadingHTTPServer, self).server_bind()
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def track(self, connection: socket.socket, open_: bool) -> None:
        with contextlib.suppress(KeyError):
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut down open keep-alive connections so that their threads end with the server."""
        for connection in list(self._connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that go away mid-request (or are dropped on purpose) are not errors of the emulator.
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class _Dropped(Exception):
    """The connection was dropped on purpose; nothing more is sent."""


class OmicsRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "OmicsEmulator"
    # Idle keep-alive connections are closed after this long; clients reconnect transparently.
    timeout = 120
    server: OmicsHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the
        # client's delayed ACK add 40 ms to small responses.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    # -- plumbing ------------------------------------------------------------------------------------------

    def _content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        if value is None:
            return None
        try:
            length = int(value)
        except ValueError:
            return -1
        return length if length >= 0 else -1

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if status != 204:  # a 204 has no body, and no Content-Length either (RFC 9110)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and status != 204:
            self.wfile.write(body)

    def _send_json(self, data: Any, status: int = 200) -> None:
        self._send(status, b"" if status == 204 else json.dumps(data, default=_json_default).encode())

    def _send_file(self, answer: FileAnswer) -> None:
        # Opened before answering 200, so that a vanished file still answers an error.
        with open(answer.path, "rb") as handle:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(answer.size))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.end_headers()
            if self.command != "HEAD":
                self.connection.sendfile(handle)

    def _send_error(self, error: OmicsError) -> None:
        self._send(error.status, error.body(), {"x-amzn-ErrorType": error.code})

    def _finish_body(self, body: RequestBody) -> None:
        """Before answering: consume what is left of the body, or plan to close if it is too large."""
        if body.remaining <= 0:
            return
        if body.remaining <= MAX_PART_SIZE:
            body.discard()
        else:
            self.close_connection = True

    def _linger(self, body: RequestBody) -> None:
        """After answering on a connection to close: let the client finish sending and read the answer."""
        if body.remaining <= 0:
            return
        deadline = time.monotonic() + LINGER_SECONDS
        with contextlib.suppress(OSError):
            self.connection.settimeout(1.0)
            while body.remaining > 0 and time.monotonic() < deadline:
                try:
                    if not body.discard(CHUNK_SIZE):
                        break
                except TimeoutError:
                    continue

    def _answer_error(self, error: OmicsError, body: RequestBody) -> None:
        self._finish_body(body)
        self._send_error(error)
        if self.close_connection:
            self._linger(body)

    def _drop(self, body: RequestBody) -> None:
        """Read part of the body, then close the connection without a response."""
        with contextlib.suppress(OSError):
            body.discard(min(body.remaining // 2, 8 * CHUNK_SIZE))
            self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True
        raise _Dropped()

    def _drop_response(self) -> None:
        """Close the connection without sending a byte of the answer: the request was served, or refused."""
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True
        raise _Dropped()

    # -- dispatch ------------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        length = self._content_length()
        chunked = self.headers.get("Transfer-Encoding", "identity").lower() != "identity"
        url = urlsplit(self.path)
        if length == -1 or chunked:
            # Without a usable length the body cannot be delimited: answer and close.
            self.close_connection = True
            self._send_error(ValidationException("a request body needs a valid Content-Length (no chunked encoding)"))
            return
        body = RequestBody(self.rfile, length or 0)
        try:
            if url.path.startswith("/_emulator/"):
                self._admin(url.path, body)
                return
            try:
                self._serve(url, body, length)
            except OmicsError as error:
                self._answer_error(error, body)
            except (_Dropped, OSError):
                raise
            except Exception as exc:  # a bug in the emulator: answer like the service would, and say so
                log.exception("internal error serving %s %s", self.command, self.path)
                self._answer_error(InternalServerException(f"emulator error: {exc!r}"), body)
        except _Dropped:
            pass

    def _serve(self, url: Any, body: RequestBody, length: int | None) -> None:
        found = match_route(self.command, url.path)
        if found is None:
            raise NotSupportedOperationException(f"the emulator does not implement {self.command} {url.path}")
        route, params = found
        query = {key: values[-1] for key, values in parse_qs(url.query, keep_blank_values=True).items()}
        # Held before the body is read: the client of a held part is still sending it, a request in flight.
        if not self.server.faults.gate.wait(route.operation, self.client_address, url.path, query):
            self._drop_response()
        streaming = route.operation == "UploadReadSetPart"
        raw = None if streaming else body.read_all()
        if self.server.verifier is not None:
            self._authenticate(self.server.verifier, body, raw, streaming)
        if not self.server.quotas.admit(ACCOUNT_ID, route.operation):
            raise ThrottlingException("Rate exceeded")
        fault = self.server.faults.decide(route.operation)
        if fault.latency:
            time.sleep(fault.latency)
        if fault.action == DROP:
            self._drop(body)
        elif fault.action not in (None, DROP_RESPONSE):
            raise error_for(fault.action, f"{fault.action} injected by the emulator")
        data: dict[str, Any] = {}
        if raw:
            try:
                data = json.loads(raw)
            except ValueError:
                raise ValidationException("the request body is not valid JSON") from None
            if not isinstance(data, dict):
                raise ValidationException("the request body must be a JSON object")
        request = Request(params, Members(query, query=True), Members(data), body, length)
        handler: Callable[[Request], Any] = getattr(self, f"_op_{route.operation}")
        if fault.action == DROP_RESPONSE:
            # Whatever the backend answers, the client never hears it; what it did stays done.
            with contextlib.suppress(OmicsError):
                handler(request)
            self._drop_response()
        result = handler(request)
        if isinstance(result, FileAnswer):
            self._send_file(result)
        else:
            self._send_json(result, route.status)

    def _authenticate(self, verifier: SigV4Verifier, body: RequestBody, raw: bytes | None, streaming: bool) -> None:
        host = f"{self.server.server_name}:{self.server.server_port}"
        content_sha = self.headers.get("X-Amz-Content-SHA256")
        if not streaming or content_sha is not None:
            # JSON bodies are in memory; a streamed body's hash (or UNSIGNED-PAYLOAD) is in the header.
            verifier.verify(self.command, host, self.path, self.headers, raw)
            if streaming and is_sha256(content_sha):

                def check_digest(digest: str) -> None:
                    if digest != content_sha:
                        raise AccessDeniedException("the body does not match the signed X-Amz-Content-SHA256")

                body.check_at_end(check_digest)
            return
        # A streamed body signed without the header: its hash is known only once it has been read.
        verifier.precheck(self.headers)

        def check_signature(digest: str) -> None:
            verifier.verify(self.command, host, self.path, self.headers, None, payload_hash=digest)

        body.check_at_end(check_signature)

    # -- operations ----------------------------------------------------------------------------------------

    def _op_CreateSequenceStore(self, request: Request) -> Any:
        body = request.json
        return self.server.backend.create_sequence_store(
            name=body.required_string("name"),
            description=body.string("description"),
            etag_algorithm_family=body.string("eTagAlgorithmFamily"),
            fallback_location=body.string("fallbackLocation"),
            client_token=body.string("clientToken"),
            tags=body.string_map("tags"),
        )

    def _op_GetSequenceStore(self, request: Request) -> Any:
        return self.server.backend.get_sequence_store(request.path["id"])

    def _op_ListSequenceStores(self, request: Request) -> Any:
        return self.server.backend.list_sequence_stores(
            filters=sequence_store_filter(request.json.structure("filter")),
            max_results=request.query.integer("maxResults"),
            next_token=request.query.string("nextToken"),
        )

    def _op_CreateMultipartReadSetUpload(self, request: Request) -> Any:
        body = request.json
        return self.server.backend.create_multipart_read_set_upload(
            request.path["sequenceStoreId"],
            source_file_type=body.required_string("sourceFileType"),
            subject_id=body.required_string("subjectId"),
            sample_id=body.required_string("sampleId"),
            name=body.required_string("name"),
            generated_from=body.string("generatedFrom"),
            reference_arn=body.string("referenceArn"),
            description=body.string("description"),
            client_token=body.string("clientToken"),
            tags=body.string_map("tags"),
        )

    def _op_UploadReadSetPart(self, request: Request) -> Any:
        return self.server.backend.upload_read_set_part(
            request.path["sequenceStoreId"],
            request.path["uploadId"],
            part_source=request.query.required_string("partSource"),
            part_number=request.query.required_integer("partNumber"),
            body=request.stream,
            content_length=request.content_length,
        )

    def _op_ListReadSetUploadParts(self, request: Request) -> Any:
        return self.server.backend.list_read_set_upload_parts(
            request.path["sequenceStoreId"],
            request.path["uploadId"],
            part_source=request.json.required_string("partSource"),
            filters=upload_part_filter(request.json.structure("filter")),
            max_results=request.query.integer("maxResults"),
            next_token=request.query.string("nextToken"),
        )

    def _op_CompleteMultipartReadSetUpload(self, request: Request) -> Any:
        return self.server.backend.complete_multipart_read_set_upload(
            request.path["sequenceStoreId"],
            request.path["uploadId"],
            parts=completed_parts(request.json.structures("parts")),
        )

    def _op_AbortMultipartReadSetUpload(self, request: Request) -> Any:
        return self.server.backend.abort_multipart_read_set_upload(
            request.path["sequenceStoreId"], request.path["uploadId"]
        )

    def _op_ListMultipartReadSetUploads(self, request: Request) -> Any:
        return self.server.backend.list_multipart_read_set_uploads(
            request.path["sequenceStoreId"],
            max_results=request.query.integer("maxResults"),
            next_token=request.query.string("nextToken"),
        )

    def _op_GetReadSetMetadata(self, request: Request) -> Any:
        return self.server.backend.get_read_set_metadata(request.path["sequenceStoreId"], request.path["id"])

    def _op_ListReadSets(self, request: Request) -> Any:
        return self.server.backend.list_read_sets(
            request.path["sequenceStoreId"],
            filters=read_set_filter(request.json.structure("filter")),
            max_results=request.query.integer("maxResults"),
            next_token=request.query.string("nextToken"),
        )

    def _op_GetReadSet(self, request: Request) -> Any:
        path, size = self.server.backend.open_read_set_part(
            request.path["sequenceStoreId"],
            request.path["id"],
            file=request.query.string("file"),
            part_number=request.query.required_integer("partNumber"),
        )
        return FileAnswer(path, size)

    def _op_ListTagsForResource(self, request: Request) -> Any:
        return self.server.backend.list_tags_for_resource(request.path["resourceArn"])

    def _op_TagResource(self, request: Request) -> Any:
        return self.server.backend.tag_resource(
            request.path["resourceArn"], tags=request.json.required_string_map("tags")
        )

    def _op_StartReadSetImportJob(self, request: Request) -> Any:
        body = request.json
        return self.server.backend.start_read_set_import_job(
            request.path["sequenceStoreId"],
            role_arn=body.required_string("roleArn"),
            sources=import_sources(body.structures("sources")),
            client_token=body.string("clientToken"),
        )

    def _op_GetReadSetImportJob(self, request: Request) -> Any:
        return self.server.backend.get_read_set_import_job(request.path["sequenceStoreId"], request.path["id"])

    def _op_ListReadSetImportJobs(self, request: Request) -> Any:
        return self.server.backend.list_read_set_import_jobs(
            request.path["sequenceStoreId"],
            filters=import_read_set_filter(request.json.structure("filter")),
            max_results=request.query.integer("maxResults"),
            next_token=request.query.string("nextToken"),
        )

    # -- admin ---------------------------------------------------------------------------------------------

    def _admin(self, path: str, body: RequestBody) -> None:
        try:
            raw = body.read_all()
            data = json.loads(raw) if raw else {}
            faults = self.server.faults
            if path == "/_emulator/health" and self.command == "GET":
                self._send_json({"status": "ok"})
            elif path == "/_emulator/faults" and self.command == "GET":
                self._send_json({"config": faults.config.to_dict(), "counts": faults.counts})
            elif path == "/_emulator/faults" and self.command == "POST":
                faults.set_config(FaultConfig.from_dict(data))
                self._send_json({"config": faults.config.to_dict(), "counts": faults.counts})
            elif path == "/_emulator/inject" and self.command == "POST":
                faults.inject(str(data["error"]), data.get("operation"), int(data.get("count", 1)))
                self._send_json({"injected": data})
            elif path == "/_emulator/activations" and self.command == "GET":
                self._send_json(self.server.backend.activation_hold)
            elif path == "/_emulator/activations" and self.command == "POST":
                self._set_activation_hold(data)
                self._send_json(self.server.backend.activation_hold)
            elif path == "/_emulator/importjobs" and self.command == "GET":
                self._send_json(self.server.backend.import_job_hold)
            elif path == "/_emulator/importjobs" and self.command == "POST":
                self._set_import_job_hold(data)
                self._send_json(self.server.backend.import_job_hold)
            elif path == "/_emulator/quotas" and self.command == "GET":
                self._send_json(self.server.quotas.state())
            elif path == "/_emulator/quotas" and self.command == "POST":
                if "quotas" in data:
                    quotas = data["quotas"]
                    config = QuotaConfig.from_dict(quotas) if isinstance(quotas, dict) else QuotaConfig.of(quotas)
                    self.server.quotas.set_config(config)
                if data.get("reset_counts"):
                    self.server.quotas.reset_counts()
                self._send_json(self.server.quotas.state())
            elif path == "/_emulator/requests" and self.command == "GET":
                self._send_json(self._gate_state())
            elif path == "/_emulator/requests" and self.command == "POST":
                released = self._steer_gate(data)
                self._send_json({**self._gate_state(), "released": [held.to_dict() for held in released]})
            else:
                self._send_json({"message": f"no admin endpoint {self.command} {path}"}, status=404)
        except (ValueError, KeyError, TypeError, OmicsError) as exc:
            self._finish_body(body)
            self._send_json({"message": str(exc)}, status=400)

    def _set_activation_hold(self, data: Any) -> None:
        """``{"hold": true, "release_after_reads": N}`` holds activations; ``{"hold": false}`` releases them."""
        if not isinstance(data, dict) or not isinstance(data.get("hold"), bool):
            raise ValueError('expected {"hold": true|false} and, with true, an optional "release_after_reads"')
        unknown = set(data) - {"hold", "release_after_reads"}
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        if data["hold"]:
            self.server.backend.hold_activations(release_after_reads=data.get("release_after_reads"))
        elif data.get("release_after_reads") is not None:
            raise ValueError("release_after_reads goes with hold: true")
        else:
            self.server.backend.release_activations()

    def _set_import_job_hold(self, data: Any) -> None:
        """``{"hold": true, "at": status, "release_after_reads": N}`` holds import jobs; ``{"hold": false}``
        releases them."""
        if not isinstance(data, dict) or not isinstance(data.get("hold"), bool):
            raise ValueError('expected {"hold": true|false} and, with true, optional "at" and "release_after_reads"')
        unknown = set(data) - {"hold", "at", "release_after_reads"}
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        if data["hold"]:
            self.server.backend.hold_import_jobs(
                at=data.get("at", "SUBMITTED"), release_after_reads=data.get("release_after_reads")
            )
        elif data.get("at") is not None or data.get("release_after_reads") is not None:
            raise ValueError("at and release_after_reads go with hold: true")
        else:
            self.server.backend.release_import_jobs()

    def _gate_state(self) -> dict[str, Any]:
        gate = self.server.faults.gate
        return {"holding": sorted(gate.holding), "held": [held.to_dict() for held in gate.held()]}

    def _steer_gate(self, data: Any) -> list[HeldRequest]:
        """Apply one ``{"action": ...}`` to the request gate; returns the requests it released."""
        actions = {"hold": {"operation"}, "release": {"id"}, "release_all": {"operation"}, "open": {"operation"}}
        if not isinstance(data, dict) or data.get("action") not in actions:
            raise ValueError(f'expected {{"action": ...}}, one of {", ".join(sorted(actions))}')
        action = data["action"]
        unknown = set(data) - {"action"} - actions[action]
        if unknown:
            raise ValueError(f"unknown fields for {action}: {', '.join(sorted(unknown))}")
        gate = self.server.faults.gate
        operation = data.get("operation")
        if operation is not None and not isinstance(operation, str):
            raise ValueError("operation must be a string")
        if action == "hold":
            if operation is None:
                raise ValueError("hold needs an operation")
            gate.hold(operation)
            return []
        if action == "release":
            request_id = data.get("id")
            if not isinstance(request_id, int) or isinstance(request_id, bool):
                raise ValueError("release needs the id of a held request")
            return [gate.release(request_id)]
        if action == "release_all":
            return gate.release_all(operation)
        return gate.open(operation)
