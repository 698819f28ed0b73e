"""Staged-source readers: a local file (or ``file://``) and an S3 object, behind one interface, and the rules on
which sources may be read at all (allow-lists, and locations that are never read).

A source is looked at without reading its content (``stat``), fingerprinted so that a later task can prove it has
not changed, then pinned (``pin``): one open identity of the fingerprinted version, read as byte-range windows
that stream, with ``pread`` on one file descriptor for a local file or with ranged GETs pinned to the ETag and
version on S3. Nothing here holds a part in memory.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import os
import pwd
import re
import stat as stat_module
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self, cast
from urllib.parse import unquote, urlparse

from airflow.providers.common.compat.sdk import conf
from botocore.exceptions import ClientError

from airflow_provider_omics.utils.errors import OmicsInputError
from airflow_provider_omics.utils.parts import PART_SOURCES, PartPlanError, check_part_count, check_part_size
from airflow_provider_omics.utils.payloads import PlannedSource

# Linux <linux/limits.h>: a path handed to the kernel is at most PATH_MAX bytes with its terminating NUL, and each
# of its names at most NAME_MAX bytes; longer ones fail with ENAMETOOLONG, which says nothing of which name.
PATH_MAX = 4096
NAME_MAX = 255
# S3's limit on an object key, in UTF-8 bytes.
S3_KEY_MAX = 1024
# S3's bucket naming rules, as the omics service model's S3Uri pattern spells them
# (``s3://([a-z0-9][a-z0-9-.]{1,61}[a-z0-9])/(.{1,1024})``): no user, password or port fits.
_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# A percent escape: the allow-lists would judge the decoded key while S3 (and an import job) reads the escape.
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
# C0 and C1 control characters and DEL (tabs and line breaks among them): what urlparse, str.strip and the S3 XML
# listings drop or mangle.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever. O_NOFOLLOW: a final name
# swapped for a symlink after the path was resolved is refused instead of followed.
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

_LEAVE_IT = "Leave the staged file untouched while it uploads, then trigger a new run."


class SourceError(ValueError):
    """A staged source that cannot be used; the message names the source, the problem and the fix."""


class SourceChangedError(SourceError):
    """The staged source is not the one the split task fingerprinted."""


@dataclass(frozen=True)
class Fingerprint:
    """What identifies one version of a staged source.

    Local: size, mtime and ctime, and the file's identity (st_dev, st_ino). A user can put an mtime back with
    ``os.utime`` but cannot set a ctime, so a rewrite of the same size is still seen. S3: size, ETag, VersionId.
    ``None`` means "not recorded" and is never compared: fingerprints in older XComs lack the newer fields.
    """

    size: int
    mtime_ns: int | None = None
    ctime_ns: int | None = None
    device: int | None = None
    inode: int | None = None
    etag: str | None = None
    version_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """What crosses XCom: the fields every host sees alike (the device number is this host's own, see
        :meth:`differences`), so that a task on another worker, and the create request's token derived from
        it, see the same fingerprint."""
        return {k: v for k, v in asdict(self).items() if v is not None and k not in _HOST_LOCAL_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fingerprint:
        values: dict[str, Any] = {f.name: data.get(f.name) for f in fields(cls)}
        return cls(**values)

    @classmethod
    def of_stat(cls, st: os.stat_result) -> Fingerprint:
        return cls(size=st.st_size, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, device=st.st_dev, inode=st.st_ino)

    def differences(self, current: Fingerprint) -> list[str]:
        """``"field recorded -> current"`` for each field recorded here that ``current`` does not match.

        The device number is not compared: each NFS client numbers its mounts itself, so a worker on another
        host sees another st_dev for the same file. Inode, size, mtime and ctime come from the file server.
        """
        return [
            f"{f.name} {getattr(self, f.name)!r} -> {getattr(current, f.name)!r}"
            for f in fields(self)
            if f.name not in _HOST_LOCAL_FIELDS
            and getattr(self, f.name) is not None
            and getattr(self, f.name) != getattr(current, f.name)
        ]


# Fingerprint fields that differ between hosts for the same file (see Fingerprint.differences).
_HOST_LOCAL_FIELDS = frozenset({"device"})


def _changed(uri: str, differences: list[str]) -> SourceChangedError:
    replaced = any(d.startswith(("device ", "inode ")) for d in differences)
    what = "the path now names another file" if replaced else "it was modified"
    return SourceChangedError(
        f"Staged source {uri} changed since it was split ({what}: {', '.join(differences)}). Its parts would not "
        f"be one consistent file. {_LEAVE_IT}"
    )


def _shown(text: str, limit: int = 120) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def _check_text(text: str, what: str) -> None:
    """Refuse text no path or key can be: a NUL byte (the kernel's end of string), or bytes that are not UTF-8.

    Python hands undecodable file names around as lone surrogates; they cannot go into XCom JSON or a request.
    """
    if "\x00" in text:
        raise SourceError(f"{what} contains a NUL byte, which no path can hold. Give the path as it is on disk.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise SourceError(
            f"{what} is not valid UTF-8. Rename the file (or the directory that holds it) to a UTF-8 name."
        ) from None


def _check_local_path(uri: str, path: str) -> None:
    """Refuse ``path`` (given as ``uri``, or what it resolves to) that the kernel would refuse or misread."""
    what = f"Staged source {_shown(uri)}" + ("" if path == uri else f" (resolving to {_shown(path)})")
    _check_text(path, what)
    encoded = path.encode("utf-8")
    if len(encoded) >= PATH_MAX:
        raise SourceError(
            f"{what} is too long: {len(encoded)} bytes, and a path is at most {PATH_MAX - 1} bytes (PATH_MAX). "
            "Stage the file under a shorter path."
        )
    longest = max(encoded.split(b"/"), key=len)
    if len(longest) > NAME_MAX:
        raise SourceError(
            f"{what} has a name too long: {len(longest)} bytes ({_shown(longest.decode('utf-8'), 60)}), and a file "
            f"or directory name is at most {NAME_MAX} bytes (NAME_MAX). Rename it."
        )


def _check_range(offset: int, length: int, size: int) -> None:
    if offset < 0 or length < 0 or offset + length > size:
        raise ValueError(f"Byte range {offset}+{length} lies outside the {size}-byte source.")


class StagedSource:
    """A staged file, local or on S3."""

    uri: str

    @property
    def location(self) -> str:
        """What later tasks must open: the canonical real path of the local file ``stat()`` opened, or the URI."""
        raise NotImplementedError

    def stat(self) -> Fingerprint:
        raise NotImplementedError

    def pin(self, fingerprint: Fingerprint) -> PinnedSource:
        """The fingerprinted version, held open for windows; SourceChangedError when it is not that version."""
        raise NotImplementedError

    def open_range(self, offset: int, length: int, fingerprint: Fingerprint) -> BinaryIO:
        """A seekable stream over ``length`` bytes at ``offset`` of the fingerprinted version, pinned on its own.

        Reading many windows of one source, ``pin()`` it once and open the windows on the pin.
        """
        # The window holds the pin's file open until the window is closed.
        with self.pin(fingerprint) as pinned:
            return pinned.open_range(offset, length)

    def open_stream(self, fingerprint: Fingerprint) -> BinaryIO:
        """The whole fingerprinted version, read sequentially."""
        return self.open_range(0, fingerprint.size, fingerprint)

    def check_unchanged(self, fingerprint: Fingerprint) -> None:
        """SourceChangedError unless the source is still the fingerprinted version: the check ``pin()`` makes."""
        with self.pin(fingerprint):
            pass


class PinnedSource:
    """One open identity of a fingerprinted source; its windows may be read from many threads at once."""

    source: StagedSource
    fingerprint: Fingerprint
    location: str

    def open_range(self, offset: int, length: int) -> BinaryIO:
        """A seekable window of ``length`` bytes at ``offset``; ``len()`` of it is ``length``."""
        raise NotImplementedError

    def open_stream(self) -> BinaryIO:
        """The whole source, read sequentially."""
        return self.open_range(0, self.fingerprint.size)

    def check_unchanged(self) -> None:
        """SourceChangedError unless the source is still the fingerprinted version: call it after the last read."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the source; windows still open keep reading until they are closed."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class LocalSource(StagedSource):
    def __init__(self, path: str) -> None:
        self.uri = path
        self.path = Path(path)
        self._location: str | None = None

    @property
    def location(self) -> str:
        """The real path of the file ``stat()`` or ``pin()`` opened; before either, the path resolved now."""
        return self._location or os.path.realpath(self.path)

    def resolved(self) -> Path:
        return Path(self.location)

    def stat(self) -> Fingerprint:
        fd, st, self._location = self._open(after_split=False)
        os.close(fd)
        return Fingerprint.of_stat(st)

    def pin(self, fingerprint: Fingerprint) -> LocalPin:
        fd, st, location = self._open(after_split=True)
        differences = fingerprint.differences(Fingerprint.of_stat(st))
        if differences:
            os.close(fd)
            raise _changed(self.uri, differences)
        self._location = location
        return LocalPin(self, fingerprint, fd, location)

    def _open(self, after_split: bool) -> tuple[int, os.stat_result, str]:
        """Open the file the path names (for a pin, the location an earlier ``stat()`` recorded), refusing anything
        but a readable regular file outside the denied locations. Returns the descriptor, its fstat and the real
        path of what was opened.

        The path is resolved first and its final name opened without following a symlink; the real path then
        comes from the descriptor itself, so a directory swapped for a symlink between the two is still seen.
        """
        _check_local_path(self.uri, self.uri)
        # A pin opens the file an earlier stat() of this source opened, whatever its path names now.
        resolved = os.path.realpath(self._location if after_split and self._location else self.path)
        _check_local_path(self.uri, resolved)
        refuse_denied(self.uri, resolved)
        try:
            # Never open a device or a socket just to learn that it is not a file.
            mode = os.lstat(resolved).st_mode
            if not stat_module.S_ISREG(mode) and not stat_module.S_ISLNK(mode):
                raise self._not_regular(after_split)
            fd = os.open(resolved, _OPEN_FLAGS)
        except OSError as err:
            raise self._open_error(err, after_split) from None
        try:
            st = os.fstat(fd)
            if not stat_module.S_ISREG(st.st_mode):
                raise self._not_regular(after_split)
            if st.st_nlink == 0:
                raise self._missing(after_split)
            # Reads of a regular file never block; clearing the flag keeps odd filesystems from saying EAGAIN.
            os.set_blocking(fd, True)
            location = _descriptor_path(fd) or resolved
            _check_local_path(self.uri, location)
            refuse_denied(self.uri, location)
        except BaseException:
            os.close(fd)
            raise
        return fd, st, location

    def _missing(self, after_split: bool) -> SourceError:
        if after_split:
            return SourceError(
                f"Staged source {self.uri} no longer exists: it was moved or deleted after it was split. Leave the "
                "staged file in place until the upload completes, then trigger a new run."
            )
        return SourceError(
            f"Staged source {self.uri} does not exist. Check the path; it must be visible to the Airflow workers "
            "(a shared filesystem) or be an s3:// URI."
        )

    def _not_regular(self, after_split: bool) -> SourceError:
        if after_split:
            return SourceChangedError(
                f"Staged source {self.uri} is not a regular file any more: it was replaced after it was split. "
                f"{_LEAVE_IT}"
            )
        return SourceError(f"Staged source {self.uri} is not a regular file. Give the path of a file.")

    def _open_error(self, err: OSError, after_split: bool) -> SourceError:
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            return self._missing(after_split)
        if err.errno in (errno.EACCES, errno.EPERM):
            return SourceError(f"Staged source {self.uri} cannot be read by the worker's user. Fix its permissions.")
        if err.errno == errno.ELOOP:
            error = SourceChangedError if after_split else SourceError
            return error(
                f"Staged source {self.uri} changed while it was being opened (its path now ends in a symlink), or "
                f"resolves through a loop of symlinks. {_LEAVE_IT}"
            )
        if err.errno in (errno.ENXIO, errno.ENODEV, errno.EISDIR):
            return self._not_regular(after_split)
        if err.errno == errno.ENAMETOOLONG:
            return SourceError(f"Staged source {self.uri} resolves to a path too long to open. Shorten it.")
        return SourceError(f"Staged source {self.uri} cannot be opened: {err.strerror}.")


def _descriptor_path(fd: int) -> str | None:
    """The real path of an open file, from /proc; None where /proc is not there."""
    try:
        path = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    return path if path.startswith("/") else None


class LocalPin(PinnedSource):
    """A local source held open on one descriptor that every window reads with ``pread``.

    The descriptor stays open while the pin or any of its windows is open: closing it under a window that is
    still being read could hand the number to another open file, whose bytes the window would then upload.
    """

    def __init__(self, source: LocalSource, fingerprint: Fingerprint, fd: int, location: str) -> None:
        self.source = source
        self.fingerprint = fingerprint
        self.location = location
        self._fd = fd
        self._lock = threading.Lock()
        self._holders = 1
        self._closed = False

    def _hold(self) -> int:
        with self._lock:
            if self._closed:
                raise ValueError(f"Staged source {self.source.uri} is no longer pinned: the pin was closed.")
            self._holders += 1
        return self._fd

    def _release(self) -> None:
        with self._lock:
            self._holders -= 1
            last = self._holders == 0
        if last:
            os.close(self._fd)

    def open_range(self, offset: int, length: int) -> BinaryIO:
        _check_range(offset, length, self.fingerprint.size)
        return cast(BinaryIO, PinnedFileWindow(self, self._hold(), offset, length))

    def check_unchanged(self) -> None:
        uri = self.source.uri
        fd = self._hold()
        try:
            st = os.fstat(fd)
        finally:
            self._release()
        try:
            now = os.stat(self.location, follow_symlinks=False)
        except OSError:
            raise SourceChangedError(
                f"Staged source {uri} was moved or deleted while it uploaded ({self.location} no longer exists). "
                f"{_LEAVE_IT}"
            ) from None
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise SourceChangedError(
                f"Staged source {uri} was replaced while it uploaded ({self.location} now names another file). "
                f"{_LEAVE_IT}"
            )
        differences = self.fingerprint.differences(Fingerprint.of_stat(st))
        if differences:
            raise _changed(uri, differences)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._release()


class _RangeWindow(io.RawIOBase):
    """What every byte-range window shares: a length botocore reads with ``len()``, and clamped seeking.

    botocore reads the body in blocks, takes its length from ``len()`` and seeks back to 0 to retry.
    """

    def __init__(self, offset: int, length: int) -> None:
        super().__init__()
        self._offset = offset
        self._length = length
        self._pos = 0

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


class PinnedFileWindow(_RangeWindow):
    """A seekable window onto a pinned local file.

    Reads are ``pread`` at absolute offsets, so the windows of one pin share no file position and may be read
    from many threads. The file ending before the window does is an error at once: a short body would otherwise
    leave the HTTP client waiting for bytes ``len()`` promised until its read timeout.
    """

    def __init__(self, pin: LocalPin, fd: int, offset: int, length: int) -> None:
        super().__init__(offset, length)
        self._pin = pin
        self._fd = fd

    def _ended_early(self, position: int) -> SourceChangedError:
        return SourceChangedError(
            f"Staged source {self._pin.source.uri} ended early at byte {self._offset + position}: the file is "
            f"shorter than when it was split. {_LEAVE_IT}"
        )

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        wanted = self._remaining(size)
        if wanted == 0:
            return b""
        data = os.pread(self._fd, wanted, self._offset + self._pos)
        if len(data) < wanted:
            data += self._read_rest(wanted - len(data), self._pos + len(data))
        self._pos += wanted
        return data

    def _read_rest(self, wanted: int, position: int) -> bytes:
        # Regular files read short only at their end; a filesystem that reads short anyway gets asked again.
        chunks = []
        while wanted:
            chunk = os.pread(self._fd, wanted, self._offset + position)
            if not chunk:
                raise self._ended_early(position)
            chunks.append(chunk)
            wanted -= len(chunk)
            position += len(chunk)
        return b"".join(chunks)

    def readinto(self, buffer: Any) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), self._length - self._pos)
        done = 0
        while done < wanted:
            # Straight into the caller's buffer: no copy between the page cache and the socket's send buffer.
            n = os.preadv(self._fd, [view[done:wanted]], self._offset + self._pos + done)
            if n == 0:
                raise self._ended_early(self._pos + done)
            done += n
        self._pos += done
        return done

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        self._pos = self._target(pos, whence)
        return self._pos

    def close(self) -> None:
        if not self.closed:
            super().close()
            self._pin._release()


class FileRangeReader(_RangeWindow):
    """A seekable window of ``length`` bytes at ``offset`` of a file, like s3transfer's ReadFileChunk.

    Opens the path as it is now, with no fingerprint: staged sources are read through ``pin()``.
    """

    def __init__(self, path: str | os.PathLike[str], offset: int, length: int) -> None:
        super().__init__(offset, length)
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
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
    def location(self) -> str:
        """The canonical URI of the object read, rebuilt from the checked bucket and key: what the allow-lists
        judge and what later tasks (and an import job) are handed, whatever the spelling of ``uri``."""
        return f"s3://{self.bucket}/{self.key}"

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def stat(self) -> Fingerprint:
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

    def check_head(self, fingerprint: Fingerprint) -> None:
        """HeadObject now; SourceChangedError unless it is the fingerprinted version."""
        differences = fingerprint.differences(self.stat())
        if differences:
            raise _changed(self.uri, differences)

    def pin(self, fingerprint: Fingerprint) -> S3Pin:
        self.check_head(fingerprint)
        return S3Pin(self, fingerprint)

    def open_range(self, offset: int, length: int, fingerprint: Fingerprint) -> BinaryIO:
        # Every GET is pinned on its own (IfMatch, VersionId): no HeadObject per window.
        return cast(BinaryIO, S3RangeReader(self, offset, length, fingerprint))


class S3Pin(PinnedSource):
    """An S3 source checked against its fingerprint; its windows' GETs are pinned to the ETag and version."""

    def __init__(self, source: S3Source, fingerprint: Fingerprint) -> None:
        self.source = source
        self.fingerprint = fingerprint
        self.location = source.location

    def open_range(self, offset: int, length: int) -> BinaryIO:
        _check_range(offset, length, self.fingerprint.size)
        return cast(BinaryIO, S3RangeReader(cast(S3Source, self.source), offset, length, self.fingerprint))

    def check_unchanged(self) -> None:
        cast(S3Source, self.source).check_head(self.fingerprint)


class S3RangeReader(_RangeWindow):
    """A seekable window onto a byte range of an S3 object, streamed with ranged GETs.

    Each GET is pinned to the fingerprinted object (IfMatch on the ETag, and the VersionId where the bucket is
    versioned), so a part can only ever contain bytes of the version that was split. Seeking (botocore rewinds
    to retry) drops the current response and the next read opens a new range at the new position.
    """

    def __init__(self, source: S3Source, offset: int, length: int, fingerprint: Fingerprint) -> None:
        super().__init__(offset, length)
        self._source = source
        self._fingerprint = fingerprint
        self._body: Any = None

    def _open(self) -> Any:
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
            raise SourceChangedError(
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
    """Turn a user's path or URI into a StagedSource; refuses what no worker could read, and every ``s3://`` URI
    that S3 would read as another object than the one checked (see :func:`_s3_bucket_and_key`)."""
    if not isinstance(uri, str) or not uri.strip():
        raise SourceError(f"A staged source must be a path or an s3:// URI, got {uri!r}.")
    uri = uri.strip()
    _check_text(uri, f"Staged source {_shown(uri)}")
    parsed = urlparse(uri)
    if parsed.scheme in ("s3", "file") and any(c in uri for c in "\t\r\n"):
        # urlparse drops tabs and line breaks from URLs: the object or file read would not be the one named.
        raise SourceError(f"Staged source {_shown(uri)} contains a tab or a line break. Remove it.")
    if parsed.scheme == "s3":
        bucket, key = _s3_bucket_and_key(uri, len(parsed.scheme))
        if s3_client_factory is None:
            raise SourceError(f"Staged source {uri!r} is on S3 but no S3 connection is available.")
        return S3Source(uri, bucket, key, s3_client_factory)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise SourceError(f"Staged source {uri!r}: file:// URIs must name a local path (file:///data/x).")
        path = unquote(parsed.path, errors="surrogateescape")
        _check_local_path(uri, path)
        return LocalSource(path)
    if parsed.scheme and len(parsed.scheme) > 1:
        raise SourceError(
            f"Staged source {uri!r} has an unsupported scheme {parsed.scheme!r}. Use a local path, file:// or s3://."
        )
    if not os.path.isabs(uri):
        raise SourceError(
            f"Staged source {uri!r} is a relative path. Give an absolute path on the workers' shared "
            "filesystem (workers do not share a working directory)."
        )
    _check_local_path(uri, uri)
    return LocalSource(uri)


def _s3_bucket_and_key(uri: str, scheme_length: int) -> tuple[str, str]:
    """The bucket and key of an ``s3://`` URI, refusing every URI whose key S3 would read otherwise than it is
    checked here: what the allow-lists judge must be the very object a part task or an import job reads.

    The key is taken exactly as written (no %-decoding, no slash stripped, no ``.`` or ``..`` resolved), so a
    spelling that some reader would turn into another key is refused rather than interpreted.
    """
    shown = _shown(uri)
    rest = uri[scheme_length + 1 :]
    bucket, slash, key = rest.removeprefix("//").partition("/")
    if not rest.startswith("//") or not bucket or not slash or not key.strip("/") or key.endswith("/"):
        raise SourceError(f"Staged source {shown} is not a valid S3 object URI. Use s3://bucket/path/to/file.fastq.gz.")
    for character in ("?", "#"):
        if character in rest:
            raise SourceError(
                f"Staged source {shown} contains {character!r}: a URI ends its path there (a query or a fragment "
                "follows), so the key checked would not be the object S3 reads. Rename the object without '?' or "
                "'#' and give its URI."
            )
    if not _S3_BUCKET.fullmatch(bucket):
        raise SourceError(
            f"Staged source {shown}: {_shown(bucket, 70)} is not a valid S3 bucket name (3 to 63 lowercase letters, "
            "digits, dots and hyphens, starting and ending with a letter or digit; no user, password or port). "
            "Give s3://bucket/path/to/file with the bucket's own name."
        )
    segments = key.split("/")
    if "" in segments:
        raise SourceError(
            f"Staged source {shown}: its key {_shown(key, 70)} has an empty path segment (a leading or doubled "
            "'/'), and S3 reads that key with the empty segment in it, not the object the path appears to name. "
            "Write the URI with single slashes (s3://bucket/path/to/file), or rename the object."
        )
    if "." in segments or ".." in segments:
        raise SourceError(
            f"Staged source {shown}: its key {_shown(key, 70)} has a '.' or '..' segment: S3 keeps it in the key "
            "(it resolves nothing) while path rules would resolve it, so the object checked and the object read "
            "could differ. Write the key without '.' and '..' segments (s3://bucket/path/to/file), or rename the "
            "object."
        )
    if "\\" in key:
        raise SourceError(
            f"Staged source {shown} contains a backslash, which some clients turn into '/': the object read could "
            "be another one. Rename the object without backslashes."
        )
    escape = _PERCENT_ESCAPE.search(key)
    if escape:
        raise SourceError(
            f"Staged source {shown} contains the percent escape {escape.group()!r}: S3 reads the key as written, "
            "escape included, so it would be checked as one object and read as another. Write the key's characters "
            "as they are (s3://bucket/a b.fastq, not a%20b.fastq); a key with a literal escape in its name cannot "
            "be staged: rename the object."
        )
    control = _CONTROL_CHARACTER.search(key)
    if control:
        raise SourceError(
            f"Staged source {shown} contains the control character U+{ord(control.group()):04X}, which URI parsers "
            "and S3 listings drop or mangle. Rename the object without it."
        )
    if len(key.encode("utf-8")) > S3_KEY_MAX:
        raise SourceError(f"Staged source {shown}: an S3 key is at most {S3_KEY_MAX} bytes.")
    return bucket, key


def same_source(a: StagedSource, fa: Fingerprint, b: StagedSource, fb: Fingerprint) -> bool:
    """Whether two fingerprinted sources are one file, however each was written (``/d/./x``, a link).

    Local: the same (device, inode), or the same real path where a fingerprint does not record them. S3: the same
    bucket and key, and the same version where both are known.
    """
    if isinstance(a, LocalSource) and isinstance(b, LocalSource):
        if None in (fa.device, fa.inode, fb.device, fb.inode):
            return a.location == b.location
        return (fa.device, fa.inode) == (fb.device, fb.inode)
    if isinstance(a, S3Source) and isinstance(b, S3Source):
        if (a.bucket, a.key) != (b.bucket, b.key):
            return False
        return fa.version_id is None or fb.version_id is None or fa.version_id == fb.version_id
    return False


# -- what may be read ------------------------------------------------------------------------------------------

_CREDENTIALS = "the worker's credentials"
# Files that hold credentials, named by environment variables of the AWS and Google SDKs.
_CREDENTIAL_FILE_VARIABLES = (
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "GOOGLE_APPLICATION_CREDENTIALS",
)
# Under the worker's home directory.
_CREDENTIAL_HOME_PATHS = (".aws", ".ssh", ".netrc", ".kube", ".docker/config.json", ".config/gcloud")


def denied_locations() -> list[tuple[str, str]]:
    """``(path, what it is)`` for each location never read as a staged source, whatever the allow-lists.

    Staged paths come from DAG params that anyone allowed to trigger a DAG can type, and a part's bytes end up in
    a read set they can download: these would hand them the worker's secrets. Read from the environment at each
    call, as the SDKs and Airflow read it.
    """
    homes = {os.path.expanduser("~")}
    with contextlib.suppress(KeyError):
        homes.add(pwd.getpwuid(os.geteuid()).pw_dir)
    entries = [
        (os.path.expanduser(os.environ.get("AIRFLOW_HOME") or "~/airflow"), "the Airflow home"),
        ("/proc", "the kernel's process and system files"),
        ("/sys", "the kernel's process and system files"),
        ("/dev", "device files"),
        ("/run/secrets", "mounted secrets (such as Kubernetes service-account tokens)"),
        ("/var/run/secrets", "mounted secrets (such as Kubernetes service-account tokens)"),
    ]
    if os.environ.get("AIRFLOW_CONFIG"):
        entries.append((os.path.expanduser(os.environ["AIRFLOW_CONFIG"]), "the Airflow configuration"))
    for variable in _CREDENTIAL_FILE_VARIABLES:
        if os.environ.get(variable):
            entries.append((os.path.expanduser(os.environ[variable]), f"{_CREDENTIALS} (${variable})"))
    for home in sorted(homes):
        if os.path.isabs(home):
            entries.extend((os.path.join(home, name), _CREDENTIALS) for name in _CREDENTIAL_HOME_PATHS)
    return entries


def is_under(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or lies beneath it (both absolute and canonical); an empty root holds all."""
    root = root.rstrip("/")
    return not root or path == root or path.startswith(root + "/")


def refuse_denied(uri: str, path: str) -> None:
    """SourceError when the real path ``path`` lies in one of :func:`denied_locations`."""
    for entry, what in denied_locations():
        # Both spellings: a symlinked /var/run, or a credentials directory that is itself a symlink.
        if is_under(path, os.path.abspath(entry)) or is_under(path, os.path.realpath(entry)):
            raise SourceError(
                f"Staged source {uri} resolves to {path}, in {what} ({entry}): that is never allowed as a staged "
                "source, whatever the allow-lists. Stage the file somewhere else."
            )


def split_allow_list(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item and item.strip()]


def _local_root(entry: str, setting: str) -> str:
    _check_text(entry, f"{setting} entry {_shown(entry)}")
    if not os.path.isabs(entry):
        raise SourceError(f"{setting} entry {entry!r} is a relative path: give absolute directories.")
    return os.path.realpath(entry)


def _s3_prefix(entry: str, setting: str) -> str:
    _check_text(entry, f"{setting} entry {_shown(entry)}")
    if not entry.startswith("s3://") or not entry.removeprefix("s3://").split("/", 1)[0]:
        raise SourceError(f"{setting} entry {entry!r} is not an S3 prefix: give s3://bucket or s3://bucket/prefix/.")
    # A bare bucket must not admit its look-alikes: s3://data allows s3://data/..., not s3://data-other/.
    return entry if "/" in entry.removeprefix("s3://") else entry + "/"


def effective_allow_list(
    operator_value: str | Iterable[str] | None, admin_value: str | Iterable[str] | None
) -> list[str]:
    """The local staging roots a task may read: the operator's ``allowed_local_roots`` within the admin's.

    An empty operator value (``None``, ``""``, ``[]``) means the admin's ``[omics] allowed_local_roots``; with no
    admin setting the operator's value stands. With both, every operator root must be one of the admin's roots or
    lie under one (after resolving symlinks), else SourceError: an operator may narrow the setting, never widen it
    (``"/"`` is refused when the admin set roots). Returns real paths; empty means any path (but the denied
    locations).
    """
    setting = "[omics] allowed_local_roots"
    admin = [_local_root(entry, setting) for entry in split_allow_list(admin_value)]
    entries = split_allow_list(operator_value)
    operator = [_local_root(entry, "allowed_local_roots") for entry in entries]
    if not operator:
        return admin
    for entry, root in zip(entries, operator, strict=True):
        if admin and not any(is_under(root, allowed) for allowed in admin):
            raise SourceError(
                f"allowed_local_roots entry {entry!r} (resolving to {root}) is not under {setting} "
                f"({', '.join(admin)}): operators may only narrow {setting}. Use one of those directories or one "
                "under them, or ask an administrator to extend the setting."
            )
    return operator


def effective_s3_prefixes(
    operator_value: str | Iterable[str] | None, admin_value: str | Iterable[str] | None
) -> list[str]:
    """The S3 staging prefixes a task may read: the operator's ``allowed_s3_prefixes`` within the admin's.

    The same rules as :func:`effective_allow_list`: every operator prefix must start with one of the admin's
    ``[omics] allowed_s3_prefixes``. A bare bucket (``s3://data``) is returned as ``s3://data/``.
    """
    setting = "[omics] allowed_s3_prefixes"
    admin = [_s3_prefix(entry, setting) for entry in split_allow_list(admin_value)]
    entries = split_allow_list(operator_value)
    operator = [_s3_prefix(entry, "allowed_s3_prefixes") for entry in entries]
    if not operator:
        return admin
    for entry, prefix in zip(entries, operator, strict=True):
        if admin and not any(prefix.startswith(allowed) for allowed in admin):
            raise SourceError(
                f"allowed_s3_prefixes entry {entry!r} is not within {setting} ({', '.join(admin)}): operators may "
                f"only narrow {setting}. Use one of those prefixes or one under them, or ask an administrator to "
                "extend the setting."
            )
    return operator


def check_allowed(source: StagedSource, local_roots: str | Iterable[str], s3_prefixes: str | Iterable[str]) -> None:
    """Refuse a source outside the allowed staging roots or prefixes, or in a denied location.

    A local source is judged by its ``location``: call this after ``stat()`` or ``pin()``, which record the real
    path of the file they opened (before either, the path is resolved now). An empty allow-list allows
    everything of that kind but the :func:`denied_locations`, which are refused whatever the lists say. Pass the
    lists from :func:`effective_allow_list` and :func:`effective_s3_prefixes`.
    """
    if isinstance(source, LocalSource):
        _check_local_path(source.uri, source.uri)
        resolved = source.location
        refuse_denied(source.uri, resolved)
        roots = [os.path.realpath(root) for root in split_allow_list(local_roots)]
        if roots and not any(is_under(resolved, root) for root in roots):
            raise SourceError(
                f"Staged source {source.uri} resolves to {resolved}, outside the allowed staging roots "
                f"({', '.join(roots)}). Stage the file under one of them, or ask an administrator "
                "to extend [omics] allowed_local_roots."
            )
    elif isinstance(source, S3Source):
        # The canonical URI rebuilt from the checked bucket and key: the object that is read, however it was spelled.
        target = source.location
        prefixes = [p if "/" in p.removeprefix("s3://") else p + "/" for p in split_allow_list(s3_prefixes)]
        if prefixes and not any(target.startswith(prefix) for prefix in prefixes):
            raise SourceError(
                f"Staged source {source.uri} is outside the allowed S3 staging prefixes ({', '.join(prefixes)}). "
                "Stage the object under one of them, or ask an administrator to extend "
                "[omics] allowed_s3_prefixes."
            )


def stage_source(
    open_source: Callable[[], StagedSource], local_roots: Iterable[str], s3_prefixes: Iterable[str]
) -> tuple[StagedSource, Fingerprint]:
    """The one way a staged source is looked at before anything exists on the service: ``open_source`` parses and
    canonicalises it (:func:`parse_source`: an S3 key S3 would read otherwise is refused there), the allow-lists and
    the denied locations are checked before it is opened and again on the file that was opened (whatever a link
    pointed to in between), and its fingerprint is taken: what the request's token is made of, and what later tasks
    pin it to. Returns the source (its ``location`` is what later tasks open) and the fingerprint."""
    roots, prefixes = list(local_roots), list(s3_prefixes)
    source = open_source()
    check_allowed(source, roots, prefixes)
    fingerprint = source.stat()
    check_allowed(source, roots, prefixes)
    return source, fingerprint


def plan_source(
    open_source: Callable[[], StagedSource],
    uri: str,
    part_source: str,
    part_size: int,
    local_roots: Iterable[str],
    s3_prefixes: Iterable[str],
) -> tuple[StagedSource, Fingerprint, PlannedSource]:
    """A source of a read set to upload, through :func:`stage_source`, with its plan: not empty, at most 10,000
    parts of ``part_size``, its canonical ``location`` (the file opened here, not what the path may name later)
    and its fingerprint.

    :raises SourceError: the source cannot be used (see :func:`stage_source`), or is empty.
    :raises PartPlanError: it needs more parts than a source may have.
    """
    source, fingerprint = stage_source(open_source, local_roots, s3_prefixes)
    if fingerprint.size == 0:
        raise SourceError(f"Staged source {uri} is empty. Stage the complete file before uploading.")
    parts = check_part_count(f"{part_source} ({uri})", fingerprint.size, part_size)
    planned = PlannedSource(
        uri=uri,
        location=source.location,
        size=fingerprint.size,
        parts=parts,
        part_size=part_size,
        fingerprint=fingerprint.to_dict(),
    )
    return source, fingerprint, planned


def plan_read_set_sources(
    open_source: Callable[[str], StagedSource],
    uris: Sequence[str],
    part_size: int,
    local_roots: Iterable[str],
    s3_prefixes: Iterable[str],
    file_type: str | None = None,
    log: Any = None,
) -> dict[str, PlannedSource]:
    """The sources of one read set (read 1, and read 2 of a paired FASTQ), each through :func:`plan_source`:
    part source -> its plan. Refuses two sources unless ``file_type`` is FASTQ (when given), a part size the
    service refuses, and read 1 and read 2 that are one file under two spellings.

    :raises OmicsInputError: naming the problem and the fix.
    """
    if file_type and len(uris) == 2 and file_type != "FASTQ":
        raise OmicsInputError(
            f"Two sources were given for a {file_type} read set: only paired FASTQ has a read 2. "
            "Give one file, or set the file type to FASTQ."
        )
    roots, prefixes = list(local_roots), list(s3_prefixes)
    planned: dict[str, PlannedSource] = {}
    staged: list[tuple[StagedSource, Fingerprint]] = []
    try:
        check_part_size(part_size)
        for part_source, uri in zip(PART_SOURCES, uris, strict=False):
            source, fingerprint, planned[part_source] = plan_source(
                functools.partial(open_source, uri), uri, part_source, part_size, roots, prefixes
            )
            staged.append((source, fingerprint))
            if log is not None:
                log.info(
                    "%s (%s): %d bytes in %d parts of %d bytes",
                    part_source,
                    uri,
                    fingerprint.size,
                    planned[part_source]["parts"],
                    part_size,
                )
    except (SourceError, PartPlanError) as err:
        raise OmicsInputError(str(err)) from None
    if len(staged) == 2 and same_source(*staged[0], *staged[1]):
        raise OmicsInputError(
            f"Read 1 and read 2 are the same file ({uris[0]} and {uris[1]}): give the two files of the pair."
        )
    return planned


def reopen_source(
    open_source: Callable[[], StagedSource], local_roots: Iterable[str], s3_prefixes: Iterable[str]
) -> StagedSource:
    """How a later task takes a planned source back (from its canonical ``location``): parsed and checked against
    the allow-lists again before it is pinned to its planned fingerprint (:meth:`StagedSource.pin`, which opens the
    file the plan opened, never through a final symlink, and refuses a denied location)."""
    source = open_source()
    check_allowed(source, list(local_roots), list(s3_prefixes))
    return source


def allow_lists(
    local_roots: str | Sequence[str] | None, s3_prefixes: str | Sequence[str] | None
) -> tuple[list[str], list[str]]:
    """The [omics] allow-lists, narrowed by the operator's own where given (an operator can never widen them)."""
    try:
        roots = effective_allow_list(local_roots, conf.get("omics", "allowed_local_roots", fallback=""))
        prefixes = effective_s3_prefixes(s3_prefixes, conf.get("omics", "allowed_s3_prefixes", fallback=""))
    except SourceError as err:
        raise OmicsInputError(str(err)) from None
    return roots, prefixes


@contextlib.contextmanager
def source_errors() -> Iterator[None]:
    """A staged source that cannot be used (missing, changed, outside the allow-lists) fails at once."""
    try:
        yield
    except SourceError as err:
        raise OmicsInputError(str(err)) from None
