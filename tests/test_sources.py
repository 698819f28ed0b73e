"""Staged sources: byte-range windows (what botocore needs of a part body), pinning a fingerprinted version against
what can change under a running upload, and what may be read at all (allow-lists, denied locations)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest

from airflow_provider_omics.staging.sources import (
    FileRangeReader,
    Fingerprint,
    LocalSource,
    PinnedSource,
    S3Source,
    SourceChangedError,
    SourceError,
    check_allowed,
    effective_allow_list,
    effective_s3_prefixes,
    parse_source,
    same_source,
)

DATA = bytes(range(256)) * 40


def test_file_window_reads_only_its_range_and_rewinds(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(DATA)
    with FileRangeReader(path, 1000, 3000) as window:
        assert len(window) == 3000
        assert window.read(10) == DATA[1000:1010]
        assert window.read() == DATA[1010:4000]
        assert window.read(5) == b""
        assert window.seek(0) == 0 and window.tell() == 0
        buffer = bytearray(5000)
        assert window.readinto(buffer) == 3000 and bytes(buffer[:3000]) == DATA[1000:4000]
        assert window.seek(-10, io.SEEK_END) == 2990 and window.read() == DATA[3990:4000]
        assert window.seek(10_000) == 3000  # clamped to the window


def s3_source(s3_staging: Any, key: str) -> S3Source:
    def client() -> Any:
        return boto3.client("s3", endpoint_url=s3_staging.endpoint_url, region_name="us-east-1")

    source = parse_source(f"s3://{s3_staging.bucket}/{key}", s3_client_factory=client)
    assert isinstance(source, S3Source)
    return source


def test_s3_window_streams_ranged_gets_and_reopens_after_a_rewind(s3_staging: Any) -> None:
    s3_staging.client.put_object(Bucket=s3_staging.bucket, Key="a/reads.fastq", Body=DATA)
    source = s3_source(s3_staging, "a/reads.fastq")
    fingerprint = source.stat()
    assert fingerprint.size == len(DATA) and fingerprint.etag

    with source.open_range(500, 2000, fingerprint) as window:
        assert len(window) == 2000  # type: ignore[arg-type]
        assert window.read(100) == DATA[500:600]
        window.seek(0)  # botocore rewinding to retry
        assert window.read() == DATA[500:2500]
    with source.open_stream(fingerprint) as whole:
        assert whole.read() == DATA


def test_s3_window_refuses_an_object_rewritten_since_split(s3_staging: Any) -> None:
    s3_staging.client.put_object(Bucket=s3_staging.bucket, Key="b.fastq", Body=DATA)
    source = s3_source(s3_staging, "b.fastq")
    fingerprint = source.stat()
    s3_staging.client.put_object(Bucket=s3_staging.bucket, Key="b.fastq", Body=DATA[::-1])

    with pytest.raises(SourceChangedError, match=r"changed since it was split"):
        source.check_unchanged(fingerprint)
    with pytest.raises(SourceChangedError, match=r"ETag no longer matches"), source.open_range(0, 10, fingerprint) as w:
        w.read()


def test_fingerprint_round_trips_through_xcom_json() -> None:
    fingerprint = Fingerprint(size=10, etag='"abc"', version_id="v1")
    assert Fingerprint.from_dict(fingerprint.to_dict()) == fingerprint
    assert "mtime_ns" not in fingerprint.to_dict()


# -- local sources: identity, pinning, and what changes under a running upload ----------------------------------

MIB = 1024 * 1024


def finishes(call: Callable[[], Any], timeout: float = 10.0) -> Any:
    """``call()``, failing the test instead of hanging it when the call blocks (a guard only)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = call()
        except BaseException as err:
            outcome["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"blocked for {timeout} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


def staged(path: Path, data: bytes = DATA) -> tuple[LocalSource, Fingerprint]:
    path.write_bytes(data)
    source = parse_source(str(path))
    assert isinstance(source, LocalSource)
    return source, source.stat()


def rewrite_keeping_size_and_mtime(path: Path) -> None:
    before = os.stat(path)
    # The kernel stamps ctime from a clock that ticks every few milliseconds: step past the stat's tick.
    time.sleep(0.05)
    with open(path, "r+b") as file:
        file.write(bytes(reversed(file.read(16))))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert after.st_ctime_ns != before.st_ctime_ns


def test_stat_records_the_file_identity_and_its_real_path(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    source, fingerprint = staged(tmp_path / "d" / "r1.fastq")
    st = os.stat(tmp_path / "d" / "r1.fastq")
    assert fingerprint == Fingerprint(
        size=len(DATA), mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, device=st.st_dev, inode=st.st_ino
    )
    # The device number stays on this host: another worker numbers its mounts itself.
    assert Fingerprint.from_dict(fingerprint.to_dict()) == dataclasses.replace(fingerprint, device=None)
    dotted = parse_source(f"{tmp_path}/d/./../d/r1.fastq")
    dotted.stat()
    assert dotted.location == source.location == os.path.realpath(tmp_path / "d" / "r1.fastq")


def test_a_fingerprint_from_an_older_xcom_still_pins(tmp_path: Path) -> None:
    source, fingerprint = staged(tmp_path / "r1.fastq")
    older = Fingerprint.from_dict({"size": fingerprint.size, "mtime_ns": fingerprint.mtime_ns})
    assert older.ctime_ns is older.device is older.inode is None
    with source.pin(older) as pinned, pinned.open_stream() as stream:
        assert stream.read() == DATA
    source.check_unchanged(older)


def test_a_symlink_swapped_after_stat_is_refused_and_the_location_reads_the_stat_file(tmp_path: Path) -> None:
    root = tmp_path / "staging"
    root.mkdir()
    (root / "inside.fastq").write_bytes(DATA)
    outside = tmp_path / "outside.fastq"
    outside.write_bytes(DATA[::-1])  # same size, same mtime: only the identity tells them apart
    inside_stat = os.stat(root / "inside.fastq")
    os.utime(outside, ns=(inside_stat.st_atime_ns, inside_stat.st_mtime_ns))
    link = root / "r1.fastq"
    link.symlink_to(root / "inside.fastq")
    source = parse_source(str(link))
    fingerprint = source.stat()
    check_allowed(source, [str(root)], [])
    assert source.location == str(root / "inside.fastq")

    link.unlink()
    link.symlink_to(outside)
    with pytest.raises(SourceChangedError, match=r"the path now names another file: .*inode"):
        parse_source(str(link)).pin(fingerprint)
    # Later tasks open the location: the file that was split, whatever the symlink names now.
    with parse_source(source.location).pin(fingerprint) as pinned, pinned.open_range(0, 100) as window:
        assert window.read() == DATA[:100]


def test_a_final_name_swapped_for_a_symlink_after_resolving_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, fingerprint = staged(tmp_path / "r1.fastq")
    outside = tmp_path / "outside.fastq"
    outside.write_bytes(DATA)
    (tmp_path / "r1.fastq").unlink()
    (tmp_path / "r1.fastq").symlink_to(outside)
    # As if the swap happened between resolving the path and opening it.
    monkeypatch.setattr(os.path, "realpath", lambda path, **_: os.fspath(path))
    with pytest.raises(SourceChangedError, match=r"changed while it was being opened"):
        parse_source(str(tmp_path / "r1.fastq")).pin(fingerprint)
    with pytest.raises(SourceError, match=r"changed while it was being opened"):
        parse_source(str(tmp_path / "r1.fastq")).stat()


def test_a_pin_keeps_reading_the_pinned_file_when_another_is_renamed_over_it(tmp_path: Path) -> None:
    source, fingerprint = staged(tmp_path / "r1.fastq")
    with source.pin(fingerprint) as pinned:
        (tmp_path / "new").write_bytes(DATA[::-1])
        os.replace(tmp_path / "new", tmp_path / "r1.fastq")
        with pinned.open_range(0, len(DATA)) as window:
            assert window.read() == DATA
        with pytest.raises(SourceChangedError, match=r"now names another file"):
            pinned.check_unchanged()


def test_a_rewrite_of_the_same_size_with_its_mtime_put_back_is_seen(tmp_path: Path) -> None:
    source, fingerprint = staged(tmp_path / "r1.fastq")
    rewrite_keeping_size_and_mtime(tmp_path / "r1.fastq")
    with pytest.raises(SourceChangedError, match=r"changed since it was split \(it was modified: ctime_ns"):
        source.pin(fingerprint)
    with pytest.raises(SourceChangedError, match=r"ctime_ns"):
        source.check_unchanged(fingerprint)


def test_a_rewrite_during_the_upload_fails_the_check_after_the_last_read(tmp_path: Path) -> None:
    source, fingerprint = staged(tmp_path / "r1.fastq")
    with source.pin(fingerprint) as pinned:
        with pinned.open_range(0, 1000) as window:
            window.read()
        pinned.check_unchanged()
        rewrite_keeping_size_and_mtime(tmp_path / "r1.fastq")
        with pytest.raises(SourceChangedError, match=r"ctime_ns"):
            pinned.check_unchanged()


def test_a_file_truncated_while_its_window_is_read_fails_at_once(tmp_path: Path) -> None:
    data = os.urandom(4 * MIB)
    source, fingerprint = staged(tmp_path / "r1.fastq", data)
    with source.pin(fingerprint) as pinned, pinned.open_range(MIB, 3 * MIB) as window:
        buffer = bytearray(MIB)
        assert window.readinto(buffer) == MIB and bytes(buffer) == data[MIB : 2 * MIB]
        os.truncate(tmp_path / "r1.fastq", 2 * MIB + 1000)
        started = time.monotonic()
        with pytest.raises(SourceChangedError, match=rf"ended early at byte {2 * MIB + 1000}: the file is shorter"):
            finishes(lambda: window.readinto(buffer))
        window.seek(MIB)
        with pytest.raises(SourceChangedError, match=r"ended early"):
            finishes(lambda: window.read(MIB))
        assert time.monotonic() - started < 2
        with pytest.raises(SourceChangedError, match=r"size"):
            pinned.check_unchanged()


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(SourceError, match=r"is not a regular file\. Give the path of a file"):
        finishes(parse_source(str(tmp_path / "fifo")).stat)

    source, fingerprint = staged(tmp_path / "r1.fastq")
    (tmp_path / "r1.fastq").unlink()
    os.mkfifo(tmp_path / "r1.fastq")
    with pytest.raises(SourceChangedError, match=r"not a regular file any more"):
        finishes(lambda: source.pin(fingerprint))


def test_a_directory_is_not_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"is not a regular file"):
        parse_source(str(tmp_path)).stat()


def test_a_file_deleted_after_split_is_a_clear_error(tmp_path: Path) -> None:
    source, fingerprint = staged(tmp_path / "r1.fastq")
    (tmp_path / "r1.fastq").unlink()
    message = r"no longer exists: it was moved or deleted after it was split"
    with pytest.raises(SourceError, match=message):
        source.pin(fingerprint)
    with pytest.raises(SourceError, match=message):
        source.check_unchanged(fingerprint)
    with pytest.raises(SourceError, match=r"does not exist\. Check the path"):
        source.stat()


def test_a_file_deleted_while_pinned_fails_the_check(tmp_path: Path) -> None:
    source, fingerprint = staged(tmp_path / "r1.fastq")
    with source.pin(fingerprint) as pinned:
        (tmp_path / "r1.fastq").unlink()
        with pinned.open_stream() as stream:
            assert stream.read() == DATA
        with pytest.raises(SourceChangedError, match=r"was moved or deleted while it uploaded"):
            pinned.check_unchanged()


def test_concurrent_windows_of_one_pin_read_their_own_bytes(tmp_path: Path) -> None:
    data = os.urandom(8 * MIB + 12345)
    source, fingerprint = staged(tmp_path / "r1.fastq", data)
    part = MIB + 7

    def read_part(number: int, pinned: PinnedSource) -> bool:
        offset = number * part
        length = min(part, len(data) - offset)
        digest = hashlib.sha256()
        with pinned.open_range(offset, length) as window:
            for _ in range(2):  # botocore rewinds a body to retry it
                window.seek(0)
                digest = hashlib.sha256()
                buffer = bytearray(64 * 1024)
                while n := window.readinto(buffer):
                    digest.update(buffer[:n])
                    digest.update(window.read(333))
        return digest.digest() == hashlib.sha256(data[offset : offset + length]).digest()

    parts = range(-(-len(data) // part))
    with source.pin(fingerprint) as pinned, ThreadPoolExecutor(max_workers=8) as pool:
        assert all(finishes(lambda: list(pool.map(lambda n: read_part(n, pinned), parts))))
        pinned.check_unchanged()


def test_windows_outlive_a_closed_pin_and_a_closed_pin_opens_no_more(tmp_path: Path) -> None:
    source, fingerprint = staged(tmp_path / "r1.fastq")
    pinned = source.pin(fingerprint)
    window = pinned.open_range(10, 20)
    pinned.close()
    assert window.read() == DATA[10:30]
    window.close()
    with pytest.raises(ValueError, match=r"closed"):
        window.read()
    with pytest.raises(ValueError, match=r"no longer pinned"):
        pinned.open_range(0, 1)
    with pytest.raises(ValueError, match=r"outside the"):
        source.pin(fingerprint).open_range(len(DATA) - 1, 2)


def test_the_existing_open_range_is_pinned_too(tmp_path: Path) -> None:
    source, fingerprint = staged(tmp_path / "r1.fastq")
    with source.open_range(100, 50, fingerprint) as window:
        assert len(window) == 50 and window.read() == DATA[100:150]  # type: ignore[arg-type]
    with source.open_stream(fingerprint) as stream:
        assert stream.read() == DATA
    rewrite_keeping_size_and_mtime(tmp_path / "r1.fastq")
    with pytest.raises(SourceChangedError):
        source.open_range(0, 10, fingerprint)


# -- one file, however it is written ----------------------------------------------------------------------------


def test_the_same_file_written_differently_is_the_same_source(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    source, fingerprint = staged(tmp_path / "d" / "x.fastq")
    os.link(tmp_path / "d" / "x.fastq", tmp_path / "hard.fastq")
    (tmp_path / "soft.fastq").symlink_to(tmp_path / "d" / "x.fastq")
    (tmp_path / "copy.fastq").write_bytes(DATA)
    for spelling in (f"{tmp_path}/d/./x.fastq", f"file://{tmp_path}/d/x.fastq", tmp_path / "hard.fastq"):
        other = parse_source(str(spelling))
        assert same_source(source, fingerprint, other, other.stat()), spelling
    soft = parse_source(str(tmp_path / "soft.fastq"))
    assert same_source(source, fingerprint, soft, soft.stat())
    copy = parse_source(str(tmp_path / "copy.fastq"))
    assert not same_source(source, fingerprint, copy, copy.stat())
    # Fingerprints of older XComs have no identity: the real paths decide.
    older = Fingerprint(size=fingerprint.size, mtime_ns=fingerprint.mtime_ns)
    assert same_source(source, older, soft, older) and not same_source(source, older, copy, older)


def test_the_same_s3_object_is_the_same_source(s3_staging: Any) -> None:
    s3_staging.client.put_object(Bucket=s3_staging.bucket, Key="r1.fastq", Body=DATA)
    a = s3_source(s3_staging, "r1.fastq")
    # Another reader of the same key (a %-escaped spelling of it is refused: tests/test_staging_gateway.py).
    b = s3_source(s3_staging, "r1.fastq")
    fingerprint = a.stat()
    assert same_source(a, fingerprint, b, b.stat())
    assert not same_source(a, fingerprint, s3_source(s3_staging, "r2.fastq"), fingerprint)
    assert not same_source(a, Fingerprint(size=1, version_id="v1"), b, Fingerprint(size=1, version_id="v2")), (
        "two versions of one key"
    )


def test_an_s3_pin_checks_the_version_and_reads_ranges(s3_staging: Any) -> None:
    s3_staging.client.put_object(Bucket=s3_staging.bucket, Key="r1.fastq", Body=DATA)
    source = s3_source(s3_staging, "r1.fastq")
    fingerprint = source.stat()
    with source.pin(fingerprint) as pinned:
        assert pinned.location == source.uri
        with pinned.open_range(10, 90) as window:
            assert window.read() == DATA[10:100]
        pinned.check_unchanged()
        s3_staging.client.put_object(Bucket=s3_staging.bucket, Key="r1.fastq", Body=DATA[::-1])
        with pytest.raises(SourceChangedError, match=r"etag"):
            pinned.check_unchanged()
    with pytest.raises(SourceChangedError, match=r"changed since it was split"):
        source.pin(fingerprint)


# -- paths no file can have -------------------------------------------------------------------------------------

BAD_PATHS = {
    "NUL byte": ("/data/r1\x00.fastq", r"contains a NUL byte"),
    "NUL byte, %-escaped": ("file:///data/r1%00.fastq", r"contains a NUL byte"),
    "not UTF-8": (os.fsdecode(b"/data/r\xff1.fastq"), r"is not valid UTF-8"),
    "not UTF-8, %-escaped": ("file:///data/r%FF1.fastq", r"is not valid UTF-8"),
    "not UTF-8 in an S3 key": ("s3://bucket/" + os.fsdecode(b"r\xff1.fastq"), r"is not valid UTF-8"),
    "a name over NAME_MAX": ("/data/" + "r" * 256 + ".fastq", r"has a name too long: 262 bytes"),
    "a path over PATH_MAX": ("/data" + "/d" * 2100 + "/r1.fastq", r"is too long: 4214 bytes"),
    "a line break in a URI": ("file:///data/r1\n.fastq", r"contains a tab or a line break"),
    "an S3 key over 1024 bytes": ("s3://bucket/" + "k" * 1025, r"an S3 key is at most 1024 bytes"),
}


@pytest.mark.parametrize("row", list(BAD_PATHS))
def test_paths_no_file_can_have_are_clear_errors(row: str) -> None:
    uri, message = BAD_PATHS[row]
    with pytest.raises(SourceError, match=message) as raised:
        parse_source(uri, s3_client_factory=lambda: None)
    str(raised.value).encode("utf-8")  # the message itself must be loggable


def test_a_symlink_to_a_path_no_file_can_have_is_a_clear_error(tmp_path: Path) -> None:
    target = os.fsencode(tmp_path) + b"/r\xff1.fastq"
    with open(target, "wb") as file:
        file.write(DATA)
    (tmp_path / "r1.fastq").symlink_to(os.fsdecode(target))
    with pytest.raises(SourceError, match=r"is not valid UTF-8"):
        parse_source(str(tmp_path / "r1.fastq")).stat()


# -- allow-lists ------------------------------------------------------------------------------------------------


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, str]:
    for name in ("staging/run1", "staging-other", "elsewhere"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "staging/escape").symlink_to(tmp_path / "elsewhere")
    return {name: str(tmp_path / name) for name in ("staging", "staging/run1", "staging-other", "staging/escape")}


NARROWING = {
    "operator empty string": ("", "{staging}", ["{staging}"]),
    "operator empty list": ([], "{staging}", ["{staging}"]),
    "operator None": (None, "{staging}", ["{staging}"]),
    "operator commas only": (" , ", "{staging}", ["{staging}"]),
    "operator the admin's root": ("{staging}", "{staging}", ["{staging}"]),
    "operator a sub-directory": (["{staging/run1}"], "{staging}", ["{staging/run1}"]),
    "admin empty": ("{staging-other}", "", ["{staging-other}"]),
    "both empty": ("", None, []),
    "operator '/'": ("/", "{staging}", "'/' .* is not under \\[omics\\] allowed_local_roots"),
    "operator a sibling": ("{staging-other}", "{staging}", "staging-other' .* operators may only narrow"),
    "operator a symlink out": ("{staging/escape}", "{staging}", "resolving to .*elsewhere.* may only narrow"),
    "operator '..' out": ("{staging}/..", "{staging}", r"may only narrow \[omics\] allowed_local_roots"),
    "one of two operator entries outside": (
        ["{staging/run1}", "{staging-other}"],
        "{staging}",
        "staging-other' .* may only narrow",
    ),
    "a relative root": ("data", "{staging}", r"'data' is a relative path"),
}


@pytest.mark.parametrize("row", list(NARROWING))
def test_operator_roots_may_only_narrow_the_admin_roots(row: str, roots: dict[str, str]) -> None:
    operator, admin, expected = NARROWING[row]

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.format(**roots)
        return [fill(v) for v in value] if isinstance(value, list) else value

    if isinstance(expected, str):
        with pytest.raises(SourceError, match=expected):
            effective_allow_list(fill(operator), fill(admin))
    else:
        assert effective_allow_list(fill(operator), fill(admin)) == fill(expected)


S3_NARROWING = {
    "operator empty": ("", "s3://data/staged/", ["s3://data/staged/"]),
    "operator empty list": ([], "s3://data", ["s3://data/"]),
    "operator narrower": ("s3://data/staged/run1/", "s3://data/staged/", ["s3://data/staged/run1/"]),
    "operator the bare bucket of the admin's": ("s3://data", "s3://data", ["s3://data/"]),
    "admin empty": ("s3://other/x/", "", ["s3://other/x/"]),
    "operator the whole bucket": ("s3://data", "s3://data/staged/", r"'s3://data' is not within"),
    "operator a look-alike bucket": ("s3://data-other/", "s3://data", r"may only narrow \[omics\] allowed_s3"),
    "operator another bucket": ("s3://other/", "s3://data/staged/,s3://data2/", r"may only narrow"),
    "not an S3 prefix": ("data/staged", "s3://data/", r"is not an S3 prefix"),
}


@pytest.mark.parametrize("row", list(S3_NARROWING))
def test_operator_s3_prefixes_may_only_narrow_the_admin_prefixes(row: str) -> None:
    operator, admin, expected = S3_NARROWING[row]
    if isinstance(expected, str):
        with pytest.raises(SourceError, match=expected):
            effective_s3_prefixes(operator, admin)
    else:
        assert effective_s3_prefixes(operator, admin) == expected


def test_check_allowed_judges_the_file_stat_opened(tmp_path: Path, roots: dict[str, str]) -> None:
    (tmp_path / "elsewhere" / "r1.fastq").write_bytes(DATA)
    source = parse_source(f"{roots['staging/escape']}/r1.fastq")
    source.stat()
    with pytest.raises(SourceError, match=r"resolves to .*elsewhere/r1\.fastq, outside the allowed staging roots"):
        check_allowed(source, effective_allow_list("", roots["staging"]), [])
    check_allowed(source, [], [])


def test_check_allowed_judges_the_s3_key_as_read(s3_staging: Any) -> None:
    # A %-escaped key would be checked decoded and read escaped: refused before any allow-list is asked.
    for key in ("approved%2F..%2Fsecret.fastq", "appr%6Fved2/x"):
        with pytest.raises(SourceError, match=r"contains the percent escape '%(2F|6F)'.*rename the object"):
            s3_source(s3_staging, key)
    inside = s3_source(s3_staging, "approved/r1.fastq")
    check_allowed(inside, [], [f"s3://{s3_staging.bucket}/approved/"])
    with pytest.raises(SourceError, match=r"outside the allowed S3 staging prefixes"):
        check_allowed(s3_source(s3_staging, "approved2/x"), [], [f"s3://{s3_staging.bucket}/approved/"])


# -- locations never read ---------------------------------------------------------------------------------------


@pytest.fixture
def worker_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A worker's home and environment of its own, so no test depends on the machine's."""
    home = tmp_path / "home"
    for directory in (".aws", ".ssh", ".kube", ".docker", ".config/gcloud", "airflow", "secrets"):
        (home / directory).mkdir(parents=True)
    for file in (
        ".aws/credentials",
        ".ssh/id_ed25519",
        ".netrc",
        ".kube/config",
        ".docker/config.json",
        ".config/gcloud/application_default_credentials.json",
        "airflow/airflow.cfg",
        "airflow/airflow.db",
        "secrets/shared-credentials",
        "secrets/aws-config",
        "secrets/token",
        "secrets/gcp.json",
        "secrets/airflow.cfg",
        ".docker/other.json",
    ):
        (home / file).write_bytes(DATA)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("AIRFLOW_HOME")
    monkeypatch.setenv("AIRFLOW_CONFIG", str(home / "secrets/airflow.cfg"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "secrets/shared-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "secrets/aws-config"))
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(home / "secrets/token"))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(home / "secrets/gcp.json"))
    return home


DENIED = {
    "the default Airflow home (~/airflow)": ("{home}/airflow/airflow.db", "the Airflow home"),
    "AIRFLOW_CONFIG": ("{home}/secrets/airflow.cfg", "the Airflow configuration"),
    "~/.aws": ("{home}/.aws/credentials", "the worker's credentials"),
    "AWS_SHARED_CREDENTIALS_FILE": ("{home}/secrets/shared-credentials", r"\$AWS_SHARED_CREDENTIALS_FILE"),
    "AWS_CONFIG_FILE": ("{home}/secrets/aws-config", r"\$AWS_CONFIG_FILE"),
    "AWS_WEB_IDENTITY_TOKEN_FILE": ("{home}/secrets/token", r"\$AWS_WEB_IDENTITY_TOKEN_FILE"),
    "GOOGLE_APPLICATION_CREDENTIALS": ("{home}/secrets/gcp.json", r"\$GOOGLE_APPLICATION_CREDENTIALS"),
    "~/.ssh": ("{home}/.ssh/id_ed25519", "the worker's credentials"),
    "~/.netrc": ("{home}/.netrc", "the worker's credentials"),
    "~/.kube": ("{home}/.kube/config", "the worker's credentials"),
    "~/.docker/config.json": ("{home}/.docker/config.json", "the worker's credentials"),
    "~/.config/gcloud": ("{home}/.config/gcloud/application_default_credentials.json", "the worker's credentials"),
    "/proc": ("/proc/self/environ", "the kernel's process and system files"),
    "/sys": ("/sys/kernel/notes", "the kernel's process and system files"),
    "/dev": ("/dev/zero", "device files"),
    "/run/secrets": ("/run/secrets/db-password", "mounted secrets"),
    "/var/run/secrets": ("/var/run/secrets/kubernetes.io/serviceaccount/token", "mounted secrets"),
}


@pytest.mark.parametrize("row", list(DENIED))
def test_denied_locations_are_never_read(row: str, worker_home: Path, tmp_path: Path) -> None:
    path, why = DENIED[row]
    path = path.format(home=worker_home)
    message = rf"in .*{why}.*never allowed as a staged source, whatever the allow-lists"
    source = parse_source(path)
    with pytest.raises(SourceError, match=message):
        check_allowed(source, [], [])
    with pytest.raises(SourceError, match=message):
        check_allowed(source, ["/"], [])
    # Through a symlink from an allowed root, and when opened at all.
    (tmp_path / "staging").mkdir(exist_ok=True)
    link = tmp_path / "staging" / "r1.fastq"
    link.symlink_to(path)
    linked = parse_source(str(link))
    with pytest.raises(SourceError, match=message):
        check_allowed(linked, [str(tmp_path / "staging")], [])
    if os.path.lexists(path):
        with pytest.raises(SourceError, match=message):
            finishes(linked.stat)
        with pytest.raises(SourceError, match=message):
            finishes(lambda: linked.pin(Fingerprint(size=len(DATA))))


def test_an_airflow_home_from_the_environment_is_denied(worker_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(worker_home / "secrets"))
    with pytest.raises(SourceError, match=r"in the Airflow home"):
        check_allowed(parse_source(str(worker_home / "secrets" / "token")), [], [])
    check_allowed(parse_source(str(worker_home / ".docker" / "other.json")), [], [])


def test_a_credentials_directory_reached_through_its_symlink_is_denied(
    worker_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "vault").mkdir()
    (tmp_path / "vault" / "credentials").write_bytes(DATA)
    (worker_home / ".aws" / "credentials").unlink()
    (worker_home / ".aws").rmdir()
    (worker_home / ".aws").symlink_to(tmp_path / "vault")
    with pytest.raises(SourceError, match=r"never allowed"):
        check_allowed(parse_source(str(tmp_path / "vault" / "credentials")), [], [])


def test_a_pin_after_stat_opens_the_file_stat_opened(tmp_path: Path) -> None:
    (tmp_path / "inside.fastq").write_bytes(DATA)
    (tmp_path / "outside.fastq").write_bytes(DATA[::-1])
    (tmp_path / "r1.fastq").symlink_to(tmp_path / "inside.fastq")
    source = parse_source(str(tmp_path / "r1.fastq"))
    fingerprint = source.stat()
    (tmp_path / "r1.fastq").unlink()
    (tmp_path / "r1.fastq").symlink_to(tmp_path / "outside.fastq")
    with source.pin(fingerprint) as pinned, pinned.open_stream() as stream:
        assert pinned.location == str(tmp_path / "inside.fastq") and stream.read() == DATA
