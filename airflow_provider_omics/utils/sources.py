"""Staged-source readers: a local file (or ``file://``) and an S3 object, behind one interface.

A source is looked at without reading its content (``stat``: os.stat / HeadObject), fingerprinted so that a
later task can prove it has not changed, and read as byte-range windows that stream: a seekable window on a
local file, or ranged GETs on S3 pinned to the fingerprinted ETag and version. Nothing here holds a part in
memory.
"""

from __future__ import annotations

import io
import os
import stat as stat_module
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import unquote, urlparse


class SourceError(ValueError):
    """A staged source that cannot be used; the message names the source, the problem and the fix."""


class SourceChangedError(SourceError):
    """The staged source is not the one the split task fingerprinted."""


@dataclass(frozen=True)
class Fingerprint:
    """What identifies one version of a staged source: size plus mtime (local) or ETag/VersionId (S3)."""

    size: int
    mtime_ns: int | None = None
    etag: str | None = None
    version_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fingerprint:
        return cls(**{k: data.get(k) for k in ("size", "mtime_ns", "etag", "version_id")})  # type: ignore[arg-type]


class StagedSource:
    """A staged file, local or on S3."""

    uri: str

    def stat(self) -> Fingerprint:
        raise NotImplementedError

    def open_range(self, offset: int, length: int, fingerprint: Fingerprint) -> BinaryIO:
        """A seekable stream over ``length`` bytes at ``offset`` of the fingerprinted version."""
        raise NotImplementedError

    def open_stream(self, fingerprint: Fingerprint) -> BinaryIO:
        """The whole fingerprinted version, read sequentially."""
        return self.open_range(0, fingerprint.size, fingerprint)

    def check_unchanged(self, fingerprint: Fingerprint) -> None:
        current = self.stat()
        if current != fingerprint:
            changes = [
                f"{name} {getattr(fingerprint, name)!r} -> {getattr(current, name)!r}"
                for name in ("size", "mtime_ns", "etag", "version_id")
                if getattr(fingerprint, name) != getattr(current, name)
            ]
            raise SourceChangedError(
                f"Staged source {self.uri} changed since it was split ({', '.join(changes)}). "
                "Its parts would not be one consistent file: leave the staged file untouched while it uploads, "
                "then trigger a new run."
            )


class LocalSource(StagedSource):
    def __init__(self, path: str) -> None:
        self.uri = path
        self.path = Path(path)

    def resolved(self) -> Path:
        return Path(os.path.realpath(self.path))

    def stat(self) -> Fingerprint:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            raise SourceError(
                f"Staged source {self.uri} does not exist. Check the path; it must be visible to the Airflow "
                "workers (a shared filesystem) or be an s3:// URI."
            ) from None
        except PermissionError:
            raise SourceError(
                f"Staged source {self.uri} cannot be read by the worker's user. Fix its permissions."
            ) from None
        if not stat_module.S_ISREG(st.st_mode):
            raise SourceError(f"Staged source {self.uri} is not a regular file. Give the path of a file.")
        if not os.access(self.path, os.R_OK):
            raise SourceError(f"Staged source {self.uri} cannot be read by the worker's user. Fix its permissions.")
        return Fingerprint(size=st.st_size, mtime_ns=st.st_mtime_ns)

    def open_range(self, offset: int, length: int, fingerprint: Fingerprint) -> BinaryIO:
        return cast(BinaryIO, FileRangeReader(self.path, offset, length))


class _RangeWindow(io.RawIOBase):
    """What every byte-range window shares: a length botocore reads with ``len()``, and clamped seeking.

    botocore reads the body in blocks, takes its length from ``len()`` and seeks back to 0 to retry.
    """

    _length: int
    _pos: int

    def __len__(self) -> int:
        return self._length

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def _remaining(self, size: int | None) -> int:
        remaining = self._length - self._pos
        return remaining if size is None or size < 0 or size > remaining else size

    def _target(self, pos: int, whence: int) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        return min(max(base + pos, 0), self._length)


class FileRangeReader(_RangeWindow):
    """A seekable window of ``length`` bytes at ``offset`` of a file, like s3transfer's ReadFileChunk."""

    def __init__(self, path: str | os.PathLike[str], offset: int, length: int) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._offset = offset
        self._length = length
        self._pos = 0
        self._file.seek(offset)

    def read(self, size: int | None = -1) -> bytes:
        data = self._file.read(self._remaining(size))
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")[: self._length - self._pos]
        n = self._file.readinto(view)
        self._pos += n
        return n

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        self._pos = self._target(pos, whence)
        self._file.seek(self._offset + self._pos)
        return self._pos

    def close(self) -> None:
        self._file.close()
        super().close()


class S3Source(StagedSource):
    def __init__(self, uri: str, bucket: str, key: str, client_factory: Callable[[], Any]) -> None:
        self.uri = uri
        self.bucket = bucket
        self.key = key
        self._client_factory = client_factory
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def stat(self) -> Fingerprint:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NotFound"):
                raise SourceError(
                    f"Staged source {self.uri} does not exist (no such object). Check the bucket and key."
                ) from None
            if code in ("NoSuchBucket",):
                raise SourceError(f"Staged source {self.uri}: bucket {self.bucket} does not exist.") from None
            if code in ("403", "AccessDenied", "Forbidden"):
                raise SourceError(
                    f"Staged source {self.uri} cannot be read: access denied. Grant s3:GetObject on it to the "
                    "source connection."
                ) from None
            raise
        return Fingerprint(size=int(head["ContentLength"]), etag=head.get("ETag"), version_id=head.get("VersionId"))

    def open_range(self, offset: int, length: int, fingerprint: Fingerprint) -> BinaryIO:
        return cast(BinaryIO, S3RangeReader(self, offset, length, fingerprint))


class S3RangeReader(_RangeWindow):
    """A seekable window onto a byte range of an S3 object, streamed with ranged GETs.

    Each GET is pinned to the fingerprinted object (IfMatch on the ETag, and the VersionId where the bucket is
    versioned), so a part can only ever contain bytes of the version that was split. Seeking (botocore rewinds
    to retry) drops the current response and the next read opens a new range at the new position.
    """

    def __init__(self, source: S3Source, offset: int, length: int, fingerprint: Fingerprint) -> None:
        super().__init__()
        self._source = source
        self._offset = offset
        self._length = length
        self._fingerprint = fingerprint
        self._pos = 0
        self._body: Any = None

    def _open(self) -> Any:
        from botocore.exceptions import ClientError

        start = self._offset + self._pos
        end = self._offset + self._length - 1
        kwargs: dict[str, Any] = {"Bucket": self._source.bucket, "Key": self._source.key}
        kwargs["Range"] = f"bytes={start}-{end}"
        if self._fingerprint.etag:
            kwargs["IfMatch"] = self._fingerprint.etag
        if self._fingerprint.version_id:
            kwargs["VersionId"] = self._fingerprint.version_id
        try:
            return self._source.client.get_object(**kwargs)["Body"]
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                raise SourceChangedError(
                    f"Staged source {self._source.uri} changed since it was split (its ETag no longer matches "
                    f"{self._fingerprint.etag}). Leave the staged object untouched while it uploads, then "
                    "trigger a new run."
                ) from None
            raise

    def read(self, size: int | None = -1) -> bytes:
        size = self._remaining(size)
        if size == 0:
            return b""
        if self._body is None:
            self._body = self._open()
        data = self._body.read(size)
        if not data:
            raise SourceError(
                f"Staged source {self._source.uri} ended early at byte {self._offset + self._pos}: the object "
                "is shorter than when it was split."
            )
        self._pos += len(data)
        return bytes(data)

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        new = self._target(pos, whence)
        if new != self._pos:
            self._drop()
            self._pos = new
        return self._pos

    def _drop(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop()
        super().close()


def parse_source(uri: str, s3_client_factory: Callable[[], Any] | None = None) -> StagedSource:
    """Turn a user's path or URI into a StagedSource; refuses what no worker could read."""
    if not isinstance(uri, str) or not uri.strip():
        raise SourceError(f"A staged source must be a path or an s3:// URI, got {uri!r}.")
    uri = uri.strip()
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        key = parsed.path.lstrip("/")
        if not parsed.netloc or not key or key.endswith("/"):
            raise SourceError(
                f"Staged source {uri!r} is not a valid S3 object URI. Use s3://bucket/path/to/file.fastq.gz."
            )
        if s3_client_factory is None:
            raise SourceError(f"Staged source {uri!r} is on S3 but no S3 connection is available.")
        return S3Source(uri, parsed.netloc, unquote(key), s3_client_factory)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise SourceError(f"Staged source {uri!r}: file:// URIs must name a local path (file:///data/x).")
        return LocalSource(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:
        raise SourceError(
            f"Staged source {uri!r} has an unsupported scheme {parsed.scheme!r}. Use a local path, file:// or s3://."
        )
    if not os.path.isabs(uri):
        raise SourceError(
            f"Staged source {uri!r} is a relative path. Give an absolute path on the workers' shared "
            "filesystem (workers do not share a working directory)."
        )
    return LocalSource(uri)


def split_allow_list(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item and item.strip()]


def check_allowed(source: StagedSource, local_roots: Iterable[str], s3_prefixes: Iterable[str]) -> None:
    """Refuse a source outside the allowed staging roots (resolving symlinks and '..' first).

    An empty allow-list allows everything of that kind.
    """
    if isinstance(source, LocalSource):
        roots = [Path(os.path.realpath(root)) for root in local_roots]
        if not roots:
            return
        resolved = source.resolved()
        if not any(resolved == root or root in resolved.parents for root in roots):
            raise SourceError(
                f"Staged source {source.uri} resolves to {resolved}, outside the allowed staging roots "
                f"({', '.join(map(str, roots))}). Stage the file under one of them, or ask an administrator "
                "to extend [omics] allowed_local_roots."
            )
    elif isinstance(source, S3Source):
        # A bare bucket must not admit its look-alikes: s3://data allows s3://data/..., not s3://data-other/.
        prefixes = [p if "/" in p.removeprefix("s3://") else p + "/" for p in s3_prefixes]
        if prefixes and not any(source.uri.startswith(prefix) for prefix in prefixes):
            raise SourceError(
                f"Staged source {source.uri} is outside the allowed S3 staging prefixes ({', '.join(prefixes)}). "
                "Stage the object under one of them, or ask an administrator to extend "
                "[omics] allowed_s3_prefixes."
            )
