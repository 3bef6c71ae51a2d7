"""Full-disk facts the streamer acts on: which errors mean "no space", a reservation of space
taken at start, and writing a file so that it is either complete on disk or not there.

A full disk shows up differently per layer: ``OSError`` ENOSPC/EDQUOT from the OS, SQLite's
``SQLITE_FULL`` ("database or disk is full") from sqlite3, error code 14031 (OutOfDiskSpace)
or the OS text in a MongoDB reply. ``is_disk_full`` reads them all, so a full disk becomes one
clear log line instead of an unexplained write error.
"""

import errno
import os
import sqlite3
from pathlib import Path

_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_SQLITE_FULL = 13
_TEXTS = ("database or disk is full", "no space left on device", "disk quota exceeded",
          "outofdiskspace", "file too large")


class DiskFullError(OSError):
    """No space to write ``path``; the message says what could not be written."""

    def __init__(self, message: str, path: Path | None = None):
        super().__init__(errno.ENOSPC, message)
        self.path = path

    def __str__(self) -> str:
        return self.strerror


def is_disk_full(exc: BaseException) -> bool:
    seen = 0
    while exc is not None and seen < 5:  # the cause chain: a wrapped OSError counts too
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return True
        if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL:
            return True
        if getattr(exc, "code", None) == 14031:  # pymongo OperationFailure OutOfDiskSpace
            return True
        text = str(exc).lower()
        if any(t in text for t in _TEXTS):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable (POSIX: the directory entry is data too)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def reserve(path: Path, size: int) -> int:
    """Make ``path`` a file of ``size`` bytes whose blocks are allocated now (posix_fallocate:
    a sparse file would be no reservation at all). Returns the size; DiskFullError when the
    filesystem cannot give it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            if exc.errno in _FULL_ERRNOS:
                raise DiskFullError(f"no space to reserve {size} bytes at {path}", path) from None
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            _fill(fd, size)  # filesystems without fallocate: write the bytes out
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)
    return size


def _fill(fd: int, size: int) -> None:
    block = b"\0" * 65536
    os.lseek(fd, 0, os.SEEK_SET)
    left = size
    while left > 0:
        try:
            left -= os.write(fd, block[: min(left, len(block))])
        except OSError as exc:
            if exc.errno in _FULL_ERRNOS:
                raise DiskFullError(f"no space to reserve {size} bytes", None) from None
            raise


def write_into_reservation(reservation: Path, target: Path, data: bytes) -> None:
    """Overwrite the reserved file in place with ``data`` (its blocks exist: no allocation can
    fail), cut it to length, fsync, and rename it to ``target``. The caller checks the size."""
    fd = os.open(reservation, os.O_RDWR)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.ftruncate(fd, len(data))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(reservation, target)
    fsync_dir(target.parent)


def write_atomically(target: Path, data: bytes) -> None:
    """temp file + fsync + rename: ``target`` is either the whole of ``data`` or absent. On
    failure the temp file is removed (a half-written spill must not eat the space it lacked)."""
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
