"""Sample sequencing files for tests, benchmarks and the demo: FASTQ (plain, gzip, multi-member) and BAM/uBAM (BGZF).

Files are written as they are generated, so a large sample never sits in memory.
"""

from __future__ import annotations

import gzip
import hashlib
import random
import struct
import zlib
from pathlib import Path

_BASES = b"ACGT"
# BGZF (SAM/BAM specification section 4.1): gzip members of at most 64 KiB with a 'BC' extra subfield.
_BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
_BGZF_BLOCK = 60 * 1024


def fastq_records(count: int, read_length: int = 150, seed: int = 0, prefix: str = "read", mate: int = 1) -> bytes:
    """``count`` well-formed FASTQ records of read ``mate`` (1 or 2) of a pair."""
    rng = random.Random(seed)
    out = bytearray()
    for i in range(count):
        seq = bytes(rng.choices(_BASES, k=read_length))
        qual = bytes(rng.choices(range(35, 74), k=read_length))
        out += b"@%s:%d/%d\n%s\n+\n%s\n" % (prefix.encode(), i, mate, seq, qual)
    return bytes(out)


def write_fastq(
    path: str | Path,
    reads: int,
    *,
    read_length: int = 150,
    seed: int = 0,
    compress: bool = False,
    members: int = 1,
    prefix: str = "read",
) -> Path:
    """Write ``reads`` FASTQ records; gzip-compressed in ``members`` concatenated members when ``compress``."""
    path = Path(path)
    batch = 2000
    per_member = max(1, -(-reads // members))
    with open(path, "wb") as raw:
        written = 0
        member_index = 0
        while written < reads:
            in_member = min(per_member, reads - written)
            out = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if compress else None
            done = 0
            while done < in_member:
                n = min(batch, in_member - done)
                data = fastq_records(n, read_length, seed=seed * 1_000_003 + member_index * 7919 + done, prefix=prefix)
                (out or raw).write(data)
                done += n
            if out is not None:
                out.close()
            written += in_member
            member_index += 1
    return path


def write_fastq_of_size(path: str | Path, size: int, *, read_length: int = 150, block_size: int = 4 << 20) -> str:
    """About ``size`` bytes of plain FASTQ, fast: one block of records written again and again (benchmark
    inputs of GiBs); returns the MD5 of what was written."""
    block = fastq_records(max(1, block_size // (2 * read_length + 20)), read_length, prefix="bench")
    md5 = hashlib.md5()
    with open(path, "wb") as out:
        for _ in range(max(1, -(-size // len(block)))):
            out.write(block)
            md5.update(block)
    return md5.hexdigest()


def _bgzf_block(data: bytes) -> bytes:
    deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = deflater.compress(data) + deflater.flush()
    header = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff\x06\x00BC\x02\x00"
    block_size = len(header) + 2 + len(body) + 8
    return header + struct.pack("<H", block_size - 1) + body + struct.pack("<II", zlib.crc32(data), len(data))


def bgzf(data: bytes, with_eof: bool = True) -> bytes:
    """``data`` as BGZF blocks (gzip members with the 'BC' extra subfield), with the EOF block by default."""
    blocks = [_bgzf_block(data[i : i + _BGZF_BLOCK]) for i in range(0, len(data) or 1, _BGZF_BLOCK)]
    return b"".join(blocks) + (_BGZF_EOF if with_eof else b"")


def write_bam(path: str | Path, records: int = 1000, *, seed: int = 0, aligned: bool = True) -> Path:
    """A BAM (or an unaligned uBAM) with a SAM header and ``records`` small alignment records, in BGZF."""
    rng = random.Random(seed)
    refs = [(b"chr1", 248_956_422)] if aligned else []
    text = b"@HD\tVN:1.6\tSO:unsorted\n" + b"".join(b"@SQ\tSN:%s\tLN:%d\n" % ref for ref in refs)
    payload = bytearray(b"BAM\x01" + struct.pack("<i", len(text)) + text + struct.pack("<i", len(refs)))
    for name, length in refs:
        payload += struct.pack("<i", len(name) + 1) + name + b"\x00" + struct.pack("<i", length)
    with open(path, "wb") as out:
        for i in range(records):
            read_name = b"r%d\x00" % i
            seq_len = 100
            seq = bytes(rng.getrandbits(8) for _ in range(seq_len // 2))
            qual = bytes(rng.randrange(0, 41) for _ in range(seq_len))
            ref_id, pos = (0, rng.randrange(0, 1_000_000)) if aligned else (-1, -1)
            fixed = struct.pack(
                "<iiBBHHHiiii", ref_id, pos, len(read_name), 60, 4680, 0, 4 if not aligned else 0, seq_len, -1, -1, 0
            )
            record = fixed + read_name + seq + qual
            payload += struct.pack("<i", len(record)) + record
            if len(payload) >= _BGZF_BLOCK:
                out.write(_bgzf_block(bytes(payload[:_BGZF_BLOCK])))
                del payload[:_BGZF_BLOCK]
        while payload:
            out.write(_bgzf_block(bytes(payload[:_BGZF_BLOCK])))
            del payload[:_BGZF_BLOCK]
        out.write(_BGZF_EOF)
    return Path(path)
