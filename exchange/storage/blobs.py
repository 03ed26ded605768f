"""The blob store interface, and the `file` store (`documents.md`, Storage).

Blobs hold ciphertext only. Names are random (never derived from personal data) and
checked, so a name can never reach outside the store. A blob is written to a temporary
name, fsynced and renamed, so a crash never leaves half an object under a real name.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, Final, Protocol

from exchange.files import fsync_directory, write_atomically

_NAME: Final = re.compile(r"^[0-9a-f]{32}$")
READ_SIZE: Final = 1024 * 1024


class BlobMissing(FileNotFoundError):
    """No blob has that name."""


class StorageUnavailable(ConnectionError):
    """The store did not answer or refused the operation (a remote store down, a bucket
    misconfigured): nothing was half-done, and the request may be retried later."""


class BlobStore(Protocol):
    """Where encrypted content lives. A store that cannot answer raises
    StorageUnavailable (or an OSError of the local file system), never its vendor's error."""

    def write(self, name: str, pieces: Iterable[bytes]) -> int:
        """Store a blob from a stream of pieces; its size. Durable when it returns."""
        ...

    def read(self, name: str) -> Iterator[bytes]:
        """The blob's bytes, in pieces; BlobMissing if there is none."""
        ...

    def delete(self, name: str) -> None:
        """Remove a blob (no error if it is already gone)."""
        ...

    def names(self) -> Iterator[str]:
        """Every blob's name (for the sweeper)."""
        ...

    def age(self, name: str) -> timedelta | None:
        """How long ago the blob was written, or None if it is gone (for the sweeper)."""
        ...

    def clear_abandoned(self, older_than: timedelta) -> int:
        """Remove what writes that never finished left behind, untouched for longer than
        `older_than` (a process killed part-way through an upload); how many (for the
        sweeper). Never a blob: those only go by `delete`."""
        ...


def _pieces(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while piece := handle.read(READ_SIZE):
            yield piece


def new_blob_name() -> str:
    """A random blob name."""
    return secrets.token_hex(16)


def check_name(name: str) -> str:
    """`name` if it is a blob name this service makes; ValueError otherwise."""
    if not _NAME.fullmatch(name):
        raise ValueError("not a blob name")
    return name


class FileBlobStore:
    """Blobs as files under `<data dir>/blobs/`, fanned out by the first two characters."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._temporary = root / ".incoming"

    def _path(self, name: str) -> Path:
        name = check_name(name)
        return self._root / name[:2] / name

    def write(self, name: str, pieces: Iterable[bytes]) -> int:
        """Write to a temporary file, fsync, then rename into place and fsync the folder."""
        path = self._path(name)
        self._temporary.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.parent.is_dir():
            # The fan-out folder's own entry is made durable too: without it, a crash
            # could lose the folder, and with it a blob a committed row names.
            path.parent.mkdir(mode=0o700, exist_ok=True)
            fsync_directory(self._root)
        return write_atomically(path, pieces, self._temporary)

    def read(self, name: str) -> Iterator[bytes]:
        """Stream the file in 1 MiB pieces (opened now: a missing blob fails here)."""
        try:
            handle = self._path(name).open("rb")
        except FileNotFoundError:
            raise BlobMissing(name) from None
        return _pieces(handle)

    def delete(self, name: str) -> None:
        """Remove the file."""
        self._path(name).unlink(missing_ok=True)

    def age(self, name: str) -> timedelta | None:
        """Time since the file was written."""
        try:
            return timedelta(seconds=time.time() - self._path(name).stat().st_mtime)
        except FileNotFoundError:
            return None

    def clear_abandoned(self, older_than: timedelta) -> int:
        """Remove temporary files (`.incoming/`) no write has touched for `older_than`: a
        process killed while writing leaves its file there, under no blob's name."""
        removed = 0
        limit = time.time() - older_than.total_seconds()
        try:
            entries = os.scandir(self._temporary)
        except FileNotFoundError:
            return 0
        with entries:
            for entry in entries:
                if not entry.name.endswith(".tmp"):
                    continue
                try:
                    if entry.stat(follow_symlinks=False).st_mtime < limit:
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    continue  # its write failed and removed it meanwhile
        return removed

    def names(self) -> Iterator[str]:
        """Every stored blob (temporary files are not blobs)."""
        for path in self._root.glob("??/*"):
            if _NAME.fullmatch(path.name):
                yield path.name
