"""Reports written next to a manifest (a run's summary CSV), judged where they are written: a canonical S3 object
within the allowed prefixes, or a local file within the allowed roots and outside the never-read locations whose
directory is opened from ``/`` one name at a time without following a symlink."""

from __future__ import annotations

import contextlib
import errno
import os
import stat as stat_module
import threading
from collections.abc import Callable, Sequence
from typing import Any

from airflow_provider_omics.staging.sources import S3Source, SourceError, denied_locations, is_under, parse_source


def write_report(
    location: str,
    data: bytes,
    *,
    s3_client_factory: Callable[[], Any],
    allowed_local_roots: Sequence[str] = (),
    allowed_s3_prefixes: Sequence[str] = (),
) -> str:
    """Write a small report at ``location`` (an ``s3://`` URI, written with PutObject through a client of
    ``s3_client_factory``, or a local path: :func:`write_report_beneath`); returns where it was written (for S3,
    the canonical URI).

    :raises SourceError: a target outside the allow-lists, in a denied location, or reached through a symlink.
    """
    if location[:5].lower() == "s3://":
        target = parse_source(location, s3_client_factory=s3_client_factory)
        assert isinstance(target, S3Source)
        prefixes = list(allowed_s3_prefixes)
        if prefixes and not any(target.location.startswith(prefix) for prefix in prefixes):
            raise SourceError(
                f"{target.location} is outside the allowed S3 prefixes ({', '.join(prefixes)}): nothing is "
                "written there. Keep the manifest under one of them, or ask an administrator to extend "
                "[omics] allowed_s3_prefixes."
            )
        target.client.put_object(Bucket=target.bucket, Key=target.key, Body=data, ContentType="text/csv")
        return target.location
    write_report_beneath(location, data, allowed_local_roots)
    return location


# Each directory of a report's path is opened relative to its parent and never through a symlink. O_PATH (Linux)
# needs only search permission on a directory, as the kernel's own path walk does.
_DIRECTORY_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


_REPORT_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def write_report_beneath(location: str, data: bytes, allowed_local_roots: Sequence[str] = ()) -> None:
    """Write ``data`` at the local path ``location``, created beside it and renamed into place, within the open
    directory :func:`open_directory_nofollow` reached: never through a symlink, never in a denied location.

    :raises SourceError: the path is not canonical, lies outside ``allowed_local_roots`` (real paths, as
        ``allow_lists`` returns them) or in a never-read location, or a directory on it is now a symlink.
    :raises OSError: the directory or the file cannot be written.
    """
    if not os.path.isabs(location) or os.path.normpath(location) != location or location.endswith("/"):
        raise SourceError(
            f"{location} is not a canonical absolute file path (no '.', '..' or doubled '/'): nothing is written "
            "there. Give the manifest by its absolute path."
        )
    # The path as written is the real path: the walk below refuses any symlink on it.
    for entry, what in denied_locations():
        if is_under(location, os.path.abspath(entry)) or is_under(location, os.path.realpath(entry)):
            raise SourceError(
                f"{location} lies in {what} ({entry}), where no report is ever written. Keep the manifest "
                "somewhere else."
            )
    roots = list(allowed_local_roots)
    if roots and not any(is_under(location, root) for root in roots):
        raise SourceError(
            f"{location} is outside the allowed local roots ({', '.join(roots)}): nothing is written there. Keep the "
            "manifest under one of them, or ask an administrator to extend [omics] allowed_local_roots."
        )
    directory, name = os.path.split(location)
    partial = f".{name}.{os.getpid()}.{threading.get_ident()}.partial"
    directory_fd = open_directory_nofollow(directory)
    try:
        fd = os.open(partial, _REPORT_FLAGS, 0o644, dir_fd=directory_fd)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(partial, name, src_dir_fd=directory_fd, dst_dir_fd=directory_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(partial, dir_fd=directory_fd)
            raise
    finally:
        os.close(directory_fd)


def open_directory_nofollow(directory: str) -> int:
    """A descriptor of the absolute ``directory``, opened from ``/`` one name at a time, each relative to its
    parent's descriptor and without following a symlink; the caller closes it.

    :raises SourceError: a name on the path is a symlink (or not a directory): its message names that directory.
    :raises OSError: a directory cannot be opened (missing, no permission).
    """
    fd = os.open("/", _DIRECTORY_FLAGS)
    walked = ""
    try:
        for name in directory.split("/"):
            if not name:
                continue
            walked += "/" + name
            try:
                child = os.open(name, _DIRECTORY_FLAGS, dir_fd=fd)
            except OSError as err:
                if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                raise _not_a_directory(walked, name, fd) from None
            # O_PATH with O_NOFOLLOW may open a symlink itself instead of failing: what was opened must be a directory.
            if not stat_module.S_ISDIR(os.fstat(child).st_mode):
                os.close(child)
                raise _not_a_directory(walked, name, fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _not_a_directory(walked: str, name: str, parent_fd: int) -> SourceError:
    try:
        link = os.readlink(name, dir_fd=parent_fd)
    except OSError:
        return SourceError(f"{walked} is not a directory: nothing is written under it.")
    return SourceError(
        f"directory {walked} is now a symlink (to {link}), and a report is never written through a symlink: the "
        "link could lead anywhere (the manifest's directory was a real one when the plan read it). Put the real "
        "directory back, or take the summary from the task's log."
    )
