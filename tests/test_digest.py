"""FASTQ ETag digests: equal to hashlib over the uncompressed bytes for plain, gzip and bgzip-style sources."""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_omics.staging import digests as digest_module
from airflow_provider_omics.staging.digests import (
    ETAG_FAMILIES,
    SourceDigest,
    digest_file,
    digest_stream,
    family_of,
)
from airflow_provider_omics.testing.samples import fastq_records

FAMILIES = list(ETAG_FAMILIES)


@functools.cache
def gzip_members(data: bytes, member_size: int) -> bytes:
    """Concatenated gzip members of member_size uncompressed bytes each, like bgzip writes (cached)."""
    return b"".join(
        gzip.compress(data[i : i + member_size], compresslevel=1, mtime=0) for i in range(0, len(data), member_size)
    )


def expected(data: bytes, family: str) -> str:
    return hashlib.new(ETAG_FAMILIES[family], data).hexdigest()


class ShortReads(io.RawIOBase):
    """A stream that returns at most `limit` bytes per read, like a socket or an S3 body may."""

    def __init__(self, data: bytes, limit: int) -> None:
        self._data = io.BytesIO(data)
        self._limit = limit

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        return self._data.read(min(size, self._limit) if size >= 0 else self._limit)


@pytest.fixture(scope="module")
def fastq() -> bytes:
    return fastq_records(1500, seed=7)  # ~475 KB: test_truncated_gzip_raises needs five 100 KB members


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("layout", ["plain", "gzip", "multi-member"])
def test_digest_file_matches_hashlib(tmp_path: Path, fastq: bytes, family: str, layout: str) -> None:
    raw = {
        "plain": fastq,
        "gzip": gzip_members(fastq, len(fastq)),
        "multi-member": gzip_members(fastq, 65280),
    }[layout]
    path = tmp_path / ("reads.fastq" if layout == "plain" else "reads.fastq.gz")
    path.write_bytes(raw)

    result = digest_file(path, family)

    assert result == SourceDigest(
        family=family,
        hexdigest=expected(fastq, family),
        compressed=layout != "plain",
        compressed_bytes=len(raw),
        uncompressed_bytes=len(fastq),
    )
    assert result.algorithm == f"FASTQ_{family}"


def test_accepts_full_algorithm_name(fastq: bytes) -> None:
    result = digest_stream(io.BytesIO(gzip_members(fastq, len(fastq))), "FASTQ_SHA512up")
    assert result.family == "SHA512up"
    assert result.hexdigest == expected(fastq, "SHA512up")


@pytest.mark.parametrize("chunk_size", [1, 7, 1000, 65536 + 3])
def test_member_boundaries_inside_small_chunks(fastq: bytes, chunk_size: int) -> None:
    # Members of odd sizes, so boundaries land at every position within chunks and feed slices.
    data = fastq[:50_000]
    raw = gzip_members(data, 9_999)
    result = digest_stream(io.BytesIO(raw), chunk_size=chunk_size)
    assert result.hexdigest == expected(data, "MD5up")
    assert result.compressed_bytes == len(raw)
    assert result.uncompressed_bytes == len(data)


def test_many_small_members_in_one_chunk(fastq: bytes) -> None:
    raw = gzip_members(fastq, 997)  # hundreds of members per default 4 MiB chunk
    assert digest_stream(io.BytesIO(raw)).hexdigest == expected(fastq, "MD5up")


def test_plain_with_small_chunks(fastq: bytes) -> None:
    result = digest_stream(io.BytesIO(fastq), "SHA256up", chunk_size=4097)
    assert result.hexdigest == expected(fastq, "SHA256up")
    assert (result.compressed, result.compressed_bytes, result.uncompressed_bytes) == (False, len(fastq), len(fastq))


@pytest.mark.parametrize("limit", [1, 2, 3, 5000])
@pytest.mark.parametrize("compress", [False, True])
def test_short_reads(fastq: bytes, limit: int, compress: bool) -> None:
    data = fastq[:20_000]
    raw = gzip_members(data, 7_000) if compress else data
    result = digest_stream(ShortReads(raw, limit), chunk_size=1 << 20)
    assert result.hexdigest == expected(data, "MD5up")
    assert result.compressed is compress
    assert result.compressed_bytes == len(raw)


@pytest.mark.parametrize(
    ("raw", "compressed", "uncompressed"),
    [
        (b"", False, b""),
        (b"@", False, b"@"),
        (b"\x1f", False, b"\x1f"),  # one byte cannot be the two-byte gzip magic
        (b"@r\nA\n+\nF\n", False, b"@r\nA\n+\nF\n"),
        (gzip.compress(b"", mtime=0), True, b""),
        (gzip.compress(b"@r\nA\n+\nF\n", mtime=0), True, b"@r\nA\n+\nF\n"),
        (
            gzip.compress(b"@r\nA\n", mtime=0) + gzip.compress(b"", mtime=0) + gzip.compress(b"+\nF\n", mtime=0),
            True,
            b"@r\nA\n+\nF\n",
        ),
    ],
    ids=["empty", "one-byte", "lone-1f", "one-read", "gzip-of-nothing", "gzip-one-read", "with-empty-member"],
)
def test_tiny_sources(raw: bytes, compressed: bool, uncompressed: bytes) -> None:
    result = digest_stream(io.BytesIO(raw), "SHA256up")
    assert result.hexdigest == hashlib.sha256(uncompressed).hexdigest()
    assert result.compressed is compressed
    assert (result.compressed_bytes, result.uncompressed_bytes) == (len(raw), len(uncompressed))


def test_zero_padding_after_last_member_is_ignored(fastq: bytes) -> None:
    # gzip(1) and Python's gzip accept zero padding (tape blocks, preallocated files) after the last member.
    raw = gzip_members(fastq, 100_000) + b"\0" * 70_000
    result = digest_stream(io.BytesIO(raw), chunk_size=50_000)
    assert result.hexdigest == expected(fastq, "MD5up")
    assert result.compressed_bytes == len(raw)


@pytest.mark.parametrize("cut", [1, 2, 10, 8, 4])
def test_truncated_gzip_raises(fastq: bytes, cut: int) -> None:
    raw = gzip_members(fastq[:500_000], 100_000)
    with pytest.raises(ValueError, match=r"truncated gzip stream: .*gzip member 5"):
        digest_stream(io.BytesIO(raw[:-cut]), chunk_size=10_000)


def test_truncated_at_a_member_boundary_plus_one_byte(fastq: bytes) -> None:
    raw = gzip_members(fastq, len(fastq)) + b"\x1f"
    with pytest.raises(ValueError, match="truncated gzip stream: the source ends with 1 stray byte"):
        digest_stream(io.BytesIO(raw))


def test_truncated_inside_header(fastq: bytes) -> None:
    first = gzip.compress(fastq[:1000])
    with pytest.raises(
        ValueError, match=rf"ends inside gzip member 2 \(which starts at compressed byte {len(first)}\)"
    ):
        digest_stream(io.BytesIO(first + gzip_members(fastq, len(fastq))[:5]))


def test_corrupt_crc_raises(fastq: bytes) -> None:
    raw = bytearray(gzip_members(fastq, len(fastq)))
    raw[-6] ^= 0xFF  # inside the CRC32 of the trailer
    with pytest.raises(ValueError, match="corrupt gzip stream in member 1"):
        digest_stream(io.BytesIO(bytes(raw)))


def test_corrupt_deflate_data_raises(fastq: bytes) -> None:
    raw = bytearray(gzip_members(fastq, len(fastq)))
    raw[len(raw) // 2 : len(raw) // 2 + 64] = b"\xff" * 64
    with pytest.raises(ValueError, match="corrupt gzip stream"):
        digest_stream(io.BytesIO(bytes(raw)))


def test_data_after_last_member_raises(fastq: bytes) -> None:
    raw = gzip_members(fastq, len(fastq))
    with pytest.raises(ValueError, match=rf"unexpected data after gzip member 1 at compressed byte {len(raw)}"):
        digest_stream(io.BytesIO(raw + b"@not gzip\n"))


def test_zlib_fallback_gives_the_same_results(monkeypatch: pytest.MonkeyPatch, fastq: bytes) -> None:
    monkeypatch.setattr(digest_module, "igzip_lib", None)
    raw = gzip_members(fastq, 9_999)
    for chunk_size in (333, 4 << 20):
        result = digest_stream(io.BytesIO(raw), "SHA256up", chunk_size=chunk_size)
        assert result.hexdigest == expected(fastq, "SHA256up")
        assert result.uncompressed_bytes == len(fastq)
    # max_length equal to what a member holds: zlib may keep output back with no unconsumed input.
    assert digest_stream(io.BytesIO(gzip.compress(b"A" * 4096)), chunk_size=4096).uncompressed_bytes == 4096
    with pytest.raises(ValueError, match="truncated gzip stream"):
        digest_stream(io.BytesIO(raw[:-3]))
    corrupt = bytearray(gzip_members(fastq, len(fastq)))
    corrupt[-6] ^= 0xFF
    with pytest.raises(ValueError, match="corrupt gzip stream in member 1"):
        digest_stream(io.BytesIO(bytes(corrupt)))


def test_highly_compressible_member_is_bounded_by_chunk_size() -> None:
    # 64 MiB of one letter compresses ~1000x: output must come out in pieces, not all at once.
    sizes: list[int] = []
    data_len = 64 << 20
    raw = gzip.compress(b"N" * data_len, compresslevel=1)
    original = digest_module._hash_in_caller

    def spy(produce: Callable[..., None], consume: Callable[[bytes], Any], batch_size: int) -> int:
        def counting(piece: bytes) -> None:
            sizes.append(len(piece))
            consume(piece)

        return original(produce, counting, batch_size)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(digest_module, "_hash_in_caller", spy)
        result = digest_stream(io.BytesIO(raw), chunk_size=300_000)
    assert result.uncompressed_bytes == data_len
    assert max(sizes) <= 300_000


def test_stream_is_left_open(fastq: bytes) -> None:
    stream = io.BytesIO(gzip_members(fastq, len(fastq)))
    digest_stream(stream)
    assert not stream.closed


def test_reader_error_propagates_and_no_thread_is_left(fastq: bytes) -> None:
    class Failing(io.RawIOBase):
        def __init__(self) -> None:
            self._inner = io.BytesIO(gzip_members(fastq, len(fastq)))
            self._reads = 0

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1, /) -> bytes:
            self._reads += 1
            if self._reads > 3:
                raise OSError("connection reset by peer")
            return self._inner.read(min(size, 1000))

    before = threading.active_count()
    with pytest.raises(OSError, match="connection reset"):
        digest_stream(Failing(), chunk_size=1000)
    assert threading.active_count() == before


def test_consumer_error_stops_an_endless_producer_with_bounded_memory() -> None:
    emitted = 0

    def endless(emit: Callable[[bytes], None]) -> None:
        nonlocal emitted
        while True:
            emit(b"x" * 1000)
            emitted += 1

    consumed = 0

    def consume(piece: bytes) -> None:
        nonlocal consumed
        consumed += 1
        if consumed == 50:
            raise RuntimeError("hash failed")

    before = threading.active_count()
    with pytest.raises(RuntimeError, match="hash failed"):
        digest_module._hash_in_caller(endless, consume, 10_000)
    assert threading.active_count() == before
    # Ten pieces a batch: the producer got at most the queue's batches, one being built and one in hand ahead.
    assert emitted <= consumed + 10 * (digest_module._QUEUE_BATCHES + 2)


@pytest.mark.parametrize(
    ("algorithm", "family"),
    [
        ("FASTQ_MD5up", "MD5up"),
        ("FASTQ_SHA256up", "SHA256up"),
        ("FASTQ_SHA512up", "SHA512up"),
        ("MD5up", "MD5up"),
        ("SHA256up", "SHA256up"),
        ("SHA512up", "SHA512up"),
    ],
)
def test_family_of(algorithm: str, family: str) -> None:
    assert family_of(algorithm) == family


@pytest.mark.parametrize("algorithm", ["BAM_MD5up", "CRAM_SHA256up", "BAM_SHA512up"])
def test_family_of_refuses_alignment_etags(algorithm: str) -> None:
    with pytest.raises(ValueError, match=rf"{algorithm}.*cannot be reproduced from the staged file"):
        family_of(algorithm)


@pytest.mark.parametrize("algorithm", ["", "md5", "MD5", "FASTQ_MD5", "fastq_md5up", "FASTQ_", "FASTQ_SHA1up"])
def test_family_of_rejects_unknown(algorithm: str) -> None:
    with pytest.raises(ValueError, match=r"unknown FASTQ ETag algorithm .*expected one of FASTQ_MD5up, "):
        family_of(algorithm)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown FASTQ ETag algorithm 'sha1'"):
        digest_stream(io.BytesIO(b""), "sha1")
    with pytest.raises(ValueError, match="chunk_size must be positive"):
        digest_stream(io.BytesIO(b""), chunk_size=0)


@pytest.mark.skipif(
    not (shutil.which("gzip") and shutil.which("md5sum") and shutil.which("sha256sum")),
    reason="needs gzip, md5sum and sha256sum",
)
@pytest.mark.parametrize(("family", "tool"), [("MD5up", "md5sum"), ("SHA256up", "sha256sum")])
def test_equals_gzip_dc_pipe(tmp_path: Path, family: str, tool: str) -> None:
    plain = tmp_path / "reads.fastq"
    plain.write_bytes(fastq_records(6000, seed=11))  # ~2 MB
    # gzip(1) compresses here, and a second member is appended the way `cat a.gz b.gz` does.
    subprocess.run(["gzip", "-k", "-6", str(plain)], check=True)
    gz = tmp_path / "reads.fastq.gz"
    with gz.open("ab") as out:
        out.write(gzip.compress(b"@tail\nACGT\n+\nFFFF\n"))

    reference = subprocess.run(
        f"gzip -dc '{gz}' | {tool}", shell=True, check=True, capture_output=True, text=True
    ).stdout.split()[0]

    result = digest_file(gz, family)
    assert result.hexdigest == reference
    assert result.uncompressed_bytes == plain.stat().st_size + len(b"@tail\nACGT\n+\nFFFF\n")
