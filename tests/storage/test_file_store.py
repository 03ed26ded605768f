"""The file blob store: atomic, durable writes; streamed reads; names that cannot escape."""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from exchange import files
from exchange.storage.blobs import BlobMissing, FileBlobStore, new_blob_name


def test_write_read_delete(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    name = new_blob_name()
    data = os.urandom(3 * 1024 * 1024 + 5)
    assert store.write(name, (data[i : i + 100_000] for i in range(0, len(data), 100_000))) == len(
        data
    )
    assert b"".join(store.read(name)) == data
    assert list(store.names()) == [name]
    path = tmp_path / name[:2] / name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store.delete(name)
    with pytest.raises(BlobMissing):
        store.read(name)
    store.delete(name)  # already gone: fine


def test_a_failed_write_leaves_nothing_under_the_name(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    name = new_blob_name()

    def broken() -> Iterator[bytes]:
        yield b"x" * 1000
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        store.write(name, broken())
    assert list(store.names()) == []
    assert list((tmp_path / ".incoming").iterdir()) == []
    with pytest.raises(BlobMissing):
        store.read(name)


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "ab/../../x", "A" * 32, "", "0" * 31, "0" * 32 + "/x"]
)
def test_names_cannot_escape(tmp_path: Path, name: str) -> None:
    store = FileBlobStore(tmp_path)
    with pytest.raises(ValueError, match="not a blob name"):
        store.write(name, [b"x"])
    with pytest.raises(ValueError, match="not a blob name"):
        store.read(name)


def test_a_new_fan_out_folder_is_made_durable_with_the_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first blob under a two-character folder fsyncs the store's root (the folder's
    entry) as well as the folder and the file; a crash cannot be caused here, so the
    fsyncs are recorded (through the real call) by what they were given."""
    synced: list[str] = []
    real = os.fsync

    def recording(descriptor: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        real(descriptor)

    monkeypatch.setattr(os, "fsync", recording)
    store = FileBlobStore(tmp_path)
    name = new_blob_name()
    store.write(name, [b"first"])
    folder = str(tmp_path / name[:2])
    assert str(tmp_path) in synced and folder in synced
    assert synced.index(str(tmp_path)) < synced.index(folder)
    synced.clear()
    store.write(name[:2] + new_blob_name()[2:], [b"second"])  # the folder exists now
    assert str(tmp_path) not in synced and folder in synced


linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="sync_file_range is a Linux call"
)


@linux_only
def test_the_write_behind_call_is_the_kernels() -> None:
    """The binding reaches the real system call: a file's range is accepted, a descriptor
    that is not open is refused with EBADF (wrong argument types would not get there)."""
    assert files.start_writeback is not None
    read_end, write_end = os.pipe()
    os.close(read_end)
    os.close(write_end)
    assert files.start_writeback(write_end, 0, 4096) == -1
    assert ctypes.get_errno() == errno.EBADF


@linux_only
def test_a_large_blob_reaches_the_disk_while_it_is_still_arriving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every FLUSH_AFTER bytes, the kernel is asked (through the real call) to start
    writing what came before, in order and without gaps, before the next piece is taken;
    the blob is whole afterwards."""
    kicked: list[tuple[int, int, int]] = []
    taken = 0
    real = files.start_writeback
    assert real is not None

    def recording(descriptor: int, offset: int, length: int) -> int:
        # The file holds every byte of the range when the kernel is asked.
        assert os.fstat(descriptor).st_size >= offset + length
        result = real(descriptor, offset, length)
        assert result == 0
        kicked.append((offset, length, taken))
        return result

    monkeypatch.setattr(files, "start_writeback", recording)
    data = os.urandom(5 * files.FLUSH_AFTER + 12_345)

    def arriving() -> Iterator[bytes]:
        nonlocal taken
        for start in range(0, len(data), 300_000):
            taken = start + 300_000
            yield data[start : start + 300_000]

    store = FileBlobStore(tmp_path)
    name = new_blob_name()
    assert store.write(name, arriving()) == len(data)
    assert b"".join(store.read(name)) == data
    assert [offset for offset, _, _ in kicked] == [0] + [
        offset + length for offset, length, _ in kicked[:-1]
    ]
    flushed = sum(length for _, length, _ in kicked)
    assert len(data) - files.FLUSH_AFTER < flushed <= len(data)
    assert all(length >= files.FLUSH_AFTER for _, length, _ in kicked)
    # Each range was handed over while later pieces had still to come.
    assert all(when < len(data) for _, _, when in kicked[:-1])


def test_what_a_killed_write_left_is_cleared_past_the_grace(tmp_path: Path) -> None:
    """A process killed while writing leaves its temporary file under `.incoming/`, under
    no blob's name; `clear_abandoned` removes such a file once no write has touched it for
    the grace period, never a younger one (a write still going on), never a blob."""
    store = FileBlobStore(tmp_path)
    blob = new_blob_name()
    store.write(blob, [b"ciphertext"])
    incoming = tmp_path / ".incoming"
    stale, fresh = incoming / f".{new_blob_name()}.0a1b.tmp", incoming / f".{blob}.2c3d.tmp"
    stale.write_bytes(b"half a blob")
    fresh.write_bytes(b"a blob being written")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    os.utime(tmp_path / blob[:2] / blob, (two_hours_ago, two_hours_ago))
    assert store.clear_abandoned(timedelta(hours=1)) == 1
    assert not stale.exists() and fresh.exists()
    assert list(store.names()) == [blob]
    assert FileBlobStore(tmp_path / "never-written").clear_abandoned(timedelta(0)) == 0
