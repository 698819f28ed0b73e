"""The light content check the emulator runs after CompleteMultipartReadSetUpload, and the read set ETags.

A source is the concatenation of its stored parts, read from disk in 1 MiB chunks (never whole in memory):

- FASTQ (plain or gzip, including multi-member gzip such as bgzip output): every record is four lines, an
  ``@`` header, the sequence, a ``+`` line and a quality line as long as the sequence. The ETag is the hex
  digest (MD5, SHA-256 or SHA-512 per the store's ``eTagAlgorithmFamily``) of the *uncompressed* source,
  which is what HealthOmics documents for ``FASTQ_*up`` and what a client can reproduce from its own file.
- BAM and uBAM: BGZF (a gzip member carrying the ``BC`` extra subfield) whose first decompressed bytes are
  ``BAM\\1``. CRAM: the magic ``CRAM``. The service computes ``BAM_*up`` / ``CRAM_*up`` ETags from the SAM
  representation of the alignments with the linked reference, which is not reproducible client-side; the
  emulator reports the digest of the stored bytes instead, an emulator-specific value.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

try:  # ISA-L decompresses gzip several times faster than zlib; it is a dependency of the provider.
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - isal ships wheels for every supported platform
    import zlib as _zlib  # type: ignore[no-redef]

_ZLIB_ERROR = cast(type[Exception], _zlib.error)

CHUNK_SIZE = 1024 * 1024
# Bound on the output of one decompress call, so that a highly compressible chunk cannot balloon in memory.
_MAX_INFLATE = 4 * CHUNK_SIZE
_GZIP_MAGIC = b"\x1f\x8b"
_BAM_MAGIC = b"BAM\x01"
_CRAM_MAGIC = b"CRAM"

ETAG_HASHES = {"MD5up": "md5", "SHA256up": "sha256", "SHA512up": "sha512"}


class ContentError(Exception):
    """The source is not a well-formed file of its declared type; the message becomes the statusMessage."""


class Interrupted(Exception):
    """The check was stopped (emulator shutting down); the read set stays PROCESSING_UPLOAD."""


@dataclass
class SourceReport:
    """What the check learnt about one source."""

    etag: str
    read_count: int | None = None
    base_count: int | None = None


def read_parts(paths: Iterable[Path], stop: threading.Event | None = None) -> Iterator[bytes]:
    """Yield the bytes of the files in order, 1 MiB at a time."""
    for path in paths:
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK_SIZE):
                if stop is not None and stop.is_set():
                    raise Interrupted()
                yield chunk


def _inflate(inflater: Any, data: bytes) -> Iterator[bytes]:
    """All the output ``data`` gives, in pieces of at most ``_MAX_INFLATE`` bytes."""
    while True:
        out = inflater.decompress(data, _MAX_INFLATE)
        if out:
            yield out
        if inflater.eof:
            return
        data = inflater.unconsumed_tail
        # A full output piece may leave output buffered in the inflater even when all input is consumed.
        if not data and len(out) < _MAX_INFLATE:
            return


def gunzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decompress a stream of one or more concatenated gzip members (plain gzip, bgzip, BGZF)."""
    inflater: Any = _zlib.decompressobj(31)
    in_member = False
    fed = 0  # compressed bytes before the current chunk, for error messages
    for chunk in chunks:
        data = chunk
        while data:
            if not in_member and data[:2] != _GZIP_MAGIC[: len(data)]:
                raise ContentError(f"unexpected bytes after the end of a gzip member (compressed offset ~{fed})")
            in_member = True
            try:
                yield from _inflate(inflater, data)
            except _ZLIB_ERROR as exc:
                raise ContentError(f"corrupt gzip data in compressed bytes {fed}..{fed + len(chunk)}: {exc}") from None
            if not inflater.eof:
                break
            data = inflater.unused_data
            inflater = _zlib.decompressobj(31)
            in_member = False
        fed += len(chunk)
    if in_member:
        raise ContentError("truncated gzip data: the last gzip member has no end")


class FastqChecker:
    """Checks FASTQ records fed as arbitrary chunks of the uncompressed text; counts reads and bases."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.records = 0
        self.bases = 0
        self._tail = b""  # an unfinished line
        self._pending: list[bytes] = []  # complete lines of an unfinished record

    def feed(self, data: bytes) -> None:
        lines = (self._tail + data).split(b"\n")
        self._tail = lines.pop()
        if self._pending:
            lines = self._pending + lines
        whole = len(lines) - len(lines) % 4
        self._check(lines[:whole])
        self._pending = lines[whole:]

    def finish(self) -> None:
        lines = self._pending + ([self._tail] if self._tail else [])
        while lines and not lines[-1].strip():  # tolerate blank lines at the very end
            lines.pop()
        if len(lines) % 4:
            raise ContentError(
                f"{self.label}: truncated FASTQ record {self.records + 1} "
                f"({len(lines) % 4} of 4 lines at the end of the file)"
            )
        self._check(lines)
        if self.records == 0:
            raise ContentError(f"{self.label}: no FASTQ records")

    def _check(self, lines: list[bytes]) -> None:
        if not lines:
            return
        if b"\r" in lines[0] or b"\r" in lines[-1]:
            lines = [line.rstrip(b"\r") for line in lines]
        headers, seqs, plus, quals = lines[0::4], lines[1::4], lines[2::4], lines[3::4]
        if not all(h.startswith(b"@") for h in headers):
            index = next(i for i, h in enumerate(headers) if not h.startswith(b"@"))
            self._fail(index, f"header line does not start with '@': {headers[index][:40]!r}")
        if not all(p.startswith(b"+") for p in plus):
            index = next(i for i, p in enumerate(plus) if not p.startswith(b"+"))
            self._fail(index, f"third line does not start with '+': {plus[index][:40]!r}")
        seq_lengths = list(map(len, seqs))
        if seq_lengths != list(map(len, quals)):
            index = next(i for i, (s, q) in enumerate(zip(seqs, quals, strict=True)) if len(s) != len(q))
            self._fail(index, f"sequence has {len(seqs[index])} bases but quality has {len(quals[index])}")
        self.records += len(headers)
        self.bases += sum(seq_lengths)

    def _fail(self, index: int, problem: str) -> None:
        record = self.records + index + 1
        raise ContentError(f"{self.label}: malformed FASTQ record {record} (line {4 * (record - 1) + 1}): {problem}")


def _peek(chunks: Iterator[bytes], size: int) -> tuple[bytes, Iterator[bytes]]:
    """The first ``size`` bytes of the stream, and a stream that still yields everything."""
    head: list[bytes] = []
    have = 0
    for chunk in chunks:
        head.append(chunk)
        have += len(chunk)
        if have >= size:
            break
    first = b"".join(head)

    def replay() -> Iterator[bytes]:
        if first:
            yield first
        yield from chunks

    return first[:size], replay()


def check_fastq(paths: list[Path], family: str, label: str, stop: threading.Event | None = None) -> SourceReport:
    digest = hashlib.new(ETAG_HASHES[family])
    head, chunks = _peek(read_parts(paths, stop), 2)
    text = gunzip(chunks) if head == _GZIP_MAGIC else chunks
    checker = FastqChecker(label)
    for data in text:
        digest.update(data)
        checker.feed(data)
    checker.finish()
    return SourceReport(etag=digest.hexdigest(), read_count=checker.records, base_count=checker.bases)


def _check_bgzf_header(head: bytes, label: str) -> None:
    if head[:2] != _GZIP_MAGIC:
        raise ContentError(f"{label}: not BGZF: the file does not start with a gzip header")
    if len(head) < 12 or not head[3] & 0x04:
        raise ContentError(f"{label}: not BGZF: the gzip header has no extra field")
    (xlen,) = struct.unpack_from("<H", head, 10)
    extra = head[12 : 12 + xlen]
    pos = 0
    while pos + 4 <= len(extra):
        (slen,) = struct.unpack_from("<H", extra, pos + 2)
        if extra[pos : pos + 2] == b"BC":
            return
        pos += 4 + slen
    raise ContentError(f"{label}: not BGZF: the gzip extra field has no 'BC' subfield")


def check_bam(paths: list[Path], family: str, label: str, stop: threading.Event | None = None) -> SourceReport:
    """BAM and uBAM: BGZF whose first block decompresses to the BAM magic."""
    digest = hashlib.new(ETAG_HASHES[family])
    # A BGZF block is at most 64 KiB compressed: the first one is within the first 64 KiB + header.
    head, chunks = _peek(read_parts(paths, stop), 65536 + 1024)
    _check_bgzf_header(head, label)
    try:
        first = _zlib.decompressobj(31).decompress(head, 4096)
    except _ZLIB_ERROR as exc:
        raise ContentError(f"{label}: the first BGZF block is corrupt: {exc}") from None
    if first[:4] != _BAM_MAGIC:
        raise ContentError(f"{label}: the first BGZF block does not start with the BAM magic 'BAM\\1'")
    for chunk in chunks:
        digest.update(chunk)
    return SourceReport(etag=digest.hexdigest())


def check_cram(paths: list[Path], family: str, label: str, stop: threading.Event | None = None) -> SourceReport:
    digest = hashlib.new(ETAG_HASHES[family])
    head, chunks = _peek(read_parts(paths, stop), 4)
    if head != _CRAM_MAGIC:
        raise ContentError(f"{label}: not CRAM: the file does not start with the magic 'CRAM'")
    for chunk in chunks:
        digest.update(chunk)
    return SourceReport(etag=digest.hexdigest())


def check_source(
    file_type: str, paths: list[Path], family: str, label: str, stop: threading.Event | None = None
) -> SourceReport:
    """Check one source of a read set of ``file_type``; raises :class:`ContentError` if it is malformed."""
    if file_type == "FASTQ":
        return check_fastq(paths, family, label, stop)
    if file_type in ("BAM", "UBAM"):
        return check_bam(paths, family, label, stop)
    if file_type == "CRAM":
        return check_cram(paths, family, label, stop)
    raise ContentError(f"unsupported file type {file_type}")
