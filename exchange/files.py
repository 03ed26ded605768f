"""Durable file writes: a temporary file, fsync, rename into place, fsync the folder, so a
crash never leaves half a file under its real name (keyring, secrets, blobs)."""

from __future__ import annotations

import ctypes
import fcntl
import os
import secrets
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

#: Bytes written before the kernel is asked to start writing them to disk (PostgreSQL's
#: `wal_writer_flush_after` default); a large file then reaches the disk while the rest of
#: it is still arriving, and the final fsync waits for the last piece only.
FLUSH_AFTER: Final = 1024 * 1024
_SYNC_FILE_RANGE_WRITE: Final = 2


def _sync_file_range() -> Callable[[int, int, int], int] | None:
    """Linux's `sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)`: start writing
    the dirty pages of a range to disk without waiting for them (what PostgreSQL's
    `*_flush_after` settings use); None where the C library has no such call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    function.restype = ctypes.c_int

    def start(descriptor: int, offset: int, length: int) -> int:
        return int(function(descriptor, offset, length, _SYNC_FILE_RANGE_WRITE))

    return start


#: The call, or None: then the fsync alone writes a file's pages (no write-behind).
start_writeback: Final = _sync_file_range()


def write_atomically(path: Path, pieces: Iterable[bytes], temporary_dir: Path | None = None) -> int:
    """Write `pieces` to `path` (mode 0600) atomically; the bytes written. The temporary
    file lives in `temporary_dir` (same file system as `path`) or beside `path`.

    Every `FLUSH_AFTER` bytes the kernel is asked to start writing what came before
    (write-behind), so the disk works while the next pieces arrive. That promises nothing
    (its result is not needed: a write error stays pending for the fsync, which reports
    it); the fsync before the rename is what makes the file durable."""
    folder = temporary_dir or path.parent
    temporary = folder / f".{path.name}.{secrets.token_hex(8)}.tmp"
    size = flushed = 0
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            for piece in pieces:
                handle.write(piece)
                size += len(piece)
                if start_writeback is not None and size - flushed >= FLUSH_AFTER:
                    handle.flush()
                    start_writeback(descriptor, flushed, size - flushed)
                    flushed = size
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return size


def fsync_directory(path: Path) -> None:
    """Make the entries of the folder `path` durable (a file or folder created or renamed
    there survives a crash once this returns)."""
    directory = os.open(path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextmanager
def file_lock(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """An exclusive `flock` on the file at `path` (made if missing, mode 0600) for the
    block: True while this holds it; False at once if another open file holds it and
    `wait` is false, else wait for it. Closing the file releases the lock, so a process
    that dies gives it back."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(descriptor)
