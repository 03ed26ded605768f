"""Durable file writes: a temporary file, fsync, rename into place, fsync the folder, so a
crash never leaves half a file under its real name (keyring, secrets, blobs)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path


def write_atomically(path: Path, pieces: Iterable[bytes], temporary_dir: Path | None = None) -> int:
    """Write `pieces` to `path` (mode 0600) atomically; the bytes written. The temporary
    file lives in `temporary_dir` (same file system as `path`) or beside `path`."""
    folder = temporary_dir or path.parent
    temporary = folder / f".{path.name}.{secrets.token_hex(8)}.tmp"
    size = 0
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            for piece in pieces:
                handle.write(piece)
                size += len(piece)
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
