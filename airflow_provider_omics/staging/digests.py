"""FASTQ ETag digests of staged sources, computed the way a HealthOmics sequence store computes them.

A sequence store reports a FASTQ read set's ETag as the md5, sha256 or sha512 (by the store's ETag family)
of the uncompressed, complete FASTQ source. :func:`digest_stream` and :func:`digest_file` compute the same
digest from the staged bytes (plain or gzip, including multi-member bgzip-style files) so an upload can be
verified end to end. For sources of hundreds of GB this is the critical path, hence ISA-L decompression
and a reader thread that decompresses while the calling thread hashes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

try:
    from isal import igzip_lib
except ImportError:  # pragma: no cover - isal is a dependency; zlib keeps the module usable without it
    igzip_lib = None  # type: ignore[assignment]

__all__ = [
    "ETAG_FAMILIES",
    "BinaryReadable",
    "SourceDigest",
    "digest_file",
    "digest_stream",
    "family_of",
]

#: ETag family (``eTagAlgorithmFamily`` of a sequence store) -> hashlib algorithm.
ETAG_FAMILIES: dict[str, str] = {"MD5up": "md5", "SHA256up": "sha256", "SHA512up": "sha512"}

_FASTQ_PREFIX = "FASTQ_"
# BAM/CRAM ETags hash the alignment section as rendered in SAM against the linked reference: a client
# cannot reproduce them from the staged file, so they are refused rather than answered with a wrong digest.
_ALIGNMENT_PREFIXES = ("BAM_", "CRAM_")

GZIP_MAGIC = b"\x1f\x8b"

# Compressed input goes to the decompressor in slices of this size. At the end of each gzip member the
# decompressor copies the rest of its input into ``unused_data``; bgzip members are ~20 KiB compressed,
# so handing it whole multi-MiB read chunks would copy O(chunk) bytes per member.
_FEED_SIZE = 64 << 10
# Uncompressed bytes handed from the reader thread to the hasher at a time (at most chunk_size): small
# enough that a batch is still in cache when it is hashed, large enough that queue hand-offs cost nothing.
_BATCH_SIZE = 1 << 20
# Batches waiting between the reader thread and the hasher: enough to ride out jitter in either, few
# enough to keep memory at a few MiB.
_QUEUE_BATCHES = 4


class BinaryReadable(Protocol):
    """What the digest needs of a source: sequential ``read(size)``, ``b""`` at the end.

    Local files, ``BinaryIO`` objects and botocore's ``StreamingBody`` (an S3 GetObject body) all fit.
    """

    def read(self, size: int, /) -> bytes: ...


@dataclass(frozen=True)
class SourceDigest:
    """The ETag-comparable digest of one staged source.

    :param family: ETag family, one of :data:`ETAG_FAMILIES` (``MD5up``, ``SHA256up``, ``SHA512up``).
    :param hexdigest: lowercase hex digest of the uncompressed FASTQ bytes.
    :param compressed: whether the source was gzip-compressed.
    :param compressed_bytes: bytes read from the source as stored (equal to ``uncompressed_bytes`` when
        the source is not compressed).
    :param uncompressed_bytes: bytes that were hashed.
    """

    family: str
    hexdigest: str
    compressed: bool
    compressed_bytes: int
    uncompressed_bytes: int

    @property
    def algorithm(self) -> str:
        """The read set metadata's ``etag.algorithm`` this digest compares with, e.g. ``FASTQ_MD5up``."""
        return f"{_FASTQ_PREFIX}{self.family}"


def family_of(algorithm: str) -> str:
    """Return the ETag family of a FASTQ ETag algorithm: ``"FASTQ_SHA256up"`` -> ``"SHA256up"``.

    A bare family (``"SHA256up"``) is returned as is.

    :raises ValueError: for BAM/CRAM algorithms (not reproducible client-side) and unknown names.
    """
    if algorithm in ETAG_FAMILIES:
        return algorithm
    if algorithm.startswith(_FASTQ_PREFIX) and algorithm[len(_FASTQ_PREFIX) :] in ETAG_FAMILIES:
        return algorithm[len(_FASTQ_PREFIX) :]
    for prefix in _ALIGNMENT_PREFIXES:
        if algorithm.startswith(prefix) and algorithm[len(prefix) :] in ETAG_FAMILIES:
            raise ValueError(
                f"ETag algorithm {algorithm!r} hashes the alignment section as represented in SAM against "
                "the linked reference; it cannot be reproduced from the staged file, only FASTQ ETags can"
            )
    expected = ", ".join([*(f"{_FASTQ_PREFIX}{family}" for family in ETAG_FAMILIES), *ETAG_FAMILIES])
    raise ValueError(f"unknown FASTQ ETag algorithm {algorithm!r}; expected one of {expected}")


def digest_file(path: str | os.PathLike[str], family: str = "MD5up") -> SourceDigest:
    """Digest a local FASTQ or FASTQ.gz file like a sequence store computes its ETag.

    :param path: the staged file.
    :param family: ETag family or FASTQ ETag algorithm (``"MD5up"``, ``"FASTQ_SHA256up"``, ...).
    """
    with open(path, "rb") as stream:
        return digest_stream(stream, family)


def digest_stream(stream: BinaryReadable, family: str = "MD5up", *, chunk_size: int = 4 << 20) -> SourceDigest:
    """Digest a FASTQ or FASTQ.gz byte stream like a sequence store computes its ETag.

    The stream is read once, sequentially, ``chunk_size`` bytes at a time, and is not closed. Gzip is
    detected by its magic bytes; every member of a multi-member (bgzip-style) file is decompressed, and
    zero padding after the last member is ignored, as gzip(1) does. Memory stays at a few ``chunk_size``
    buffers (a read chunk and a few MiB of queued output) whatever the size of the source.

    :param stream: the source as stored: a local file, an S3 ``StreamingBody``, anything with ``read``.
    :param family: ETag family or FASTQ ETag algorithm (``"MD5up"``, ``"FASTQ_SHA256up"``, ...).
    :param chunk_size: bytes per read of ``stream`` (and at most per hashed batch).
    :raises ValueError: on a truncated or corrupt gzip stream, data after the last gzip member, or an
        unknown family.
    """
    family = family_of(family)
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    hasher = hashlib.new(ETAG_FAMILIES[family], usedforsecurity=False)

    reader = _ChunkReader(stream, chunk_size)
    batch_size = min(chunk_size, _BATCH_SIZE)
    head = reader.peek(len(GZIP_MAGIC))
    compressed = head == GZIP_MAGIC
    if compressed:
        new_member = _isal_member if igzip_lib is not None else _ZlibMember

        def produce(emit: Callable[[bytes], None]) -> None:
            _inflate_members(_Feed(reader), new_member, emit, batch_size)

    else:

        def produce(emit: Callable[[bytes], None]) -> None:
            while chunk := reader.read():
                emit(chunk)

    uncompressed = _hash_in_caller(produce, hasher.update, batch_size)
    return SourceDigest(
        family=family,
        hexdigest=hasher.hexdigest(),
        compressed=compressed,
        compressed_bytes=reader.bytes_read,
        uncompressed_bytes=uncompressed,
    )


# --- reading -----------------------------------------------------------------------------------------


class _ChunkReader:
    """Reads a stream in chunks, counting bytes, with a peek at its first bytes that loses nothing."""

    def __init__(self, stream: BinaryReadable, chunk_size: int) -> None:
        self._stream = stream
        self._chunk_size = chunk_size
        self._peeked = b""
        self.bytes_read = 0

    def peek(self, size: int) -> bytes:
        # A stream may return short reads (a socket, a StreamingBody): keep reading until size or the end.
        while len(self._peeked) < size:
            data = self._stream.read(self._chunk_size)
            if not data:
                break
            self._peeked += data
            self.bytes_read += len(data)
        return self._peeked[:size]

    def read(self) -> bytes:
        if self._peeked:
            data, self._peeked = self._peeked, b""
            return data
        data = self._stream.read(self._chunk_size)
        self.bytes_read += len(data)
        return data


class _Feed:
    """Hands out compressed bytes in slices of at most ``_FEED_SIZE``, with put-back, tracking the offset."""

    def __init__(self, reader: _ChunkReader) -> None:
        self._reader = reader
        self._view = memoryview(b"")
        self._pos = 0
        self._back = b""
        self.offset = 0  # compressed bytes handed out and not put back

    def next(self) -> bytes | memoryview:
        """The next slice; empty at the end of the source."""
        piece: bytes | memoryview
        if self._back:
            piece, self._back = self._back, b""
        else:
            if self._pos >= len(self._view):
                self._view = memoryview(self._reader.read())
                self._pos = 0
            piece = self._view[self._pos : self._pos + _FEED_SIZE]
            self._pos += len(piece)
        self.offset += len(piece)
        return piece

    def put_back(self, data: bytes) -> None:
        """Return bytes (the unconsumed end of what was handed out) to be handed out again first."""
        if data:
            self._back = data + self._back
            self.offset -= len(data)


# --- decompressing -------------------------------------------------------------------------------------


class _Member(Protocol):
    """One gzip member's decompressor: the interface of ``isal.igzip_lib.IgzipDecompressor``."""

    @property
    def eof(self) -> bool: ...
    @property
    def needs_input(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: bytes | memoryview, max_length: int, /) -> bytes: ...


def _isal_member() -> _Member:
    assert igzip_lib is not None
    member: _Member = igzip_lib.IgzipDecompressor(flag=igzip_lib.DECOMP_GZIP)
    return member


class _ZlibMember:
    """One gzip member through zlib, shaped like ``IgzipDecompressor``; used only when isal is missing."""

    def __init__(self) -> None:
        self._inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._tail = b""
        self.needs_input = True

    @property
    def eof(self) -> bool:
        return self._inflater.eof

    @property
    def unused_data(self) -> bytes:
        return self._inflater.unused_data

    def decompress(self, data: bytes | memoryview, max_length: int, /) -> bytes:
        # zlib hands back the input it did not get to as unconsumed_tail instead of keeping it.
        out = self._inflater.decompress(self._tail or data, max_length)
        self._tail = self._inflater.unconsumed_tail
        # A full output buffer with no tail may still leave output inside zlib: ask again before reading.
        self.needs_input = not self._tail and len(out) < max_length
        return out


_DECOMPRESS_ERRORS: tuple[type[Exception], ...] = (zlib.error,)
if igzip_lib is not None:
    _isal_error: Any = igzip_lib.IsalError
    _DECOMPRESS_ERRORS = (zlib.error, _isal_error)


def _inflate_members(
    feed: _Feed, new_member: Callable[[], _Member], emit: Callable[[bytes], None], max_out: int
) -> None:
    """Decompress every gzip member of ``feed`` in order, passing each output piece to ``emit``."""
    members = 0
    while True:
        member_offset, head = _member_start(feed)
        if not head:
            return
        if not head.startswith(GZIP_MAGIC):
            if len(head) >= len(GZIP_MAGIC):
                raise ValueError(
                    f"unexpected data after gzip member {members} at compressed byte {member_offset}: "
                    f"{head[:8].hex(' ')} is neither another gzip member (1f 8b) nor zero padding"
                )
            raise ValueError(
                f"truncated gzip stream: the source ends with {len(head)} stray byte(s) after gzip member "
                f"{members}, at compressed byte {member_offset}"
            )
        members += 1
        member = new_member()
        while not member.eof:
            if member.needs_input:
                piece = feed.next()
                if not piece:
                    raise ValueError(
                        f"truncated gzip stream: the source ends inside gzip member {members} "
                        f"(which starts at compressed byte {member_offset}) after {feed.offset} "
                        "compressed bytes; the file is incomplete"
                    )
            else:
                piece = b""
            try:
                out = member.decompress(piece, max_out)
            except _DECOMPRESS_ERRORS as exc:
                raise ValueError(
                    f"corrupt gzip stream in member {members} (which starts at compressed byte "
                    f"{member_offset}), near compressed byte {feed.offset}: {exc}"
                ) from exc
            if out:
                emit(out)
        feed.put_back(member.unused_data)


def _member_start(feed: _Feed) -> tuple[int, bytes]:
    """Skip zero padding; return the offset and first bytes (put back) of what follows, b"" at the end."""
    head = b""
    while len(head) < len(GZIP_MAGIC):
        piece = feed.next()
        if not piece:
            break
        head = (head + bytes(piece)).lstrip(b"\0")
    feed.put_back(head)
    return feed.offset, head


# --- overlapping read/decompress with hashing -----------------------------------------------------------


class _Stopped(Exception):
    """The consumer has gone away; the producer thread must end without delivering more."""


@dataclass
class _Failed:
    error: BaseException


_END = object()


def _hash_in_caller(
    produce: Callable[[Callable[[bytes], None]], None], consume: Callable[[bytes], Any], batch_size: int
) -> int:
    """Run ``produce`` in a reader thread and ``consume`` every piece it emits here; return bytes consumed.

    Pieces travel in batches of about ``batch_size`` bytes through a bounded queue, so a slow consumer
    holds back the producer instead of letting memory grow. Both sides spend their time in C code that
    releases the GIL (read, ISA-L inflate, OpenSSL hashes), so they run on two cores.
    """
    batches: queue.Queue[object] = queue.Queue(maxsize=_QUEUE_BATCHES)
    stop = threading.Event()

    def put(item: object) -> None:
        while not stop.is_set():
            try:
                batches.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    def run() -> None:
        batch: list[bytes] = []
        size = 0

        def emit(piece: bytes) -> None:
            nonlocal batch, size
            batch.append(piece)
            size += len(piece)
            if size >= batch_size:
                put(batch)
                batch, size = [], 0

        try:
            produce(emit)
            if batch:
                put(batch)
            put(_END)
        except _Stopped:
            pass
        except BaseException as exc:
            with contextlib.suppress(_Stopped):
                put(_Failed(exc))

    thread = threading.Thread(target=run, name="fastq-digest-reader", daemon=True)
    thread.start()
    total = 0
    try:
        while True:
            item = batches.get()
            if item is _END:
                return total
            if isinstance(item, _Failed):
                raise item.error
            assert isinstance(item, list)
            for piece in item:
                consume(piece)
                total += len(piece)
    finally:
        # On any exit (done, producer error, or an error here) let the producer finish its current
        # read and end, so no thread outlives the call.
        stop.set()
        thread.join()
