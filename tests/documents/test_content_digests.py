"""A document's digests while it streams (`content.CheckedContent`): large pieces are
hashed in a thread of the stream's own, beside the encryption and the writes. The digests
must be those of the whole content whatever the pieces, and the thread must end with the
stream, whether it finished, was refused or was abandoned."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator

import pytest

from exchange.documents.content import CheckedContent
from exchange.errors import TooLarge, UnsupportedContent
from tests.factories import pdf_bytes

PDF = "application/pdf"
MIB = 1024 * 1024


def _digest_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "digests"]


def _consume(checked: CheckedContent) -> int:
    return sum(len(piece) for piece in checked)


@pytest.mark.parametrize(
    "sizes",
    [
        [64 * 1024],  # inline content: one small piece
        [5 * MIB],  # inline content: one large piece
        [MIB] * 5 + [123],  # a request body read 1 MiB at a time
        [1000, 70_000, MIB, 17, 3 * MIB, 5],  # small pieces before and after large ones
    ],
)
def test_digests_are_the_whole_contents(sizes: list[int]) -> None:
    data = pdf_bytes(sum(sizes))
    pieces, offset = [], 0
    for size in sizes:
        pieces.append(data[offset : offset + size])
        offset += size
    checked = CheckedContent(iter(pieces), PDF, 100 * MIB)
    assert _consume(checked) == len(data)
    assert checked.sha256_hex == hashlib.sha256(data).hexdigest()
    assert checked.sha1_digest == hashlib.sha1(data, usedforsecurity=False).digest()
    assert not _digest_threads()


def test_a_piece_changed_after_it_was_passed_on_does_not_change_the_digest() -> None:
    """A producer reusing its buffer (a bytearray) must not race the digest thread."""
    data = pdf_bytes(3 * MIB)
    buffer = bytearray(MIB)

    def pieces() -> Iterator[bytearray]:
        for start in range(0, len(data), MIB):
            buffer[:] = data[start : start + MIB]
            yield buffer

    checked = CheckedContent(pieces(), PDF, 100 * MIB)  # type: ignore[arg-type]
    for _ in checked:
        pass
    assert checked.sha256_hex == hashlib.sha256(data).hexdigest()


def test_the_thread_ends_when_the_content_is_refused() -> None:
    data = pdf_bytes(8 * MIB)
    pieces = (data[i : i + MIB] for i in range(0, len(data), MIB))
    checked = CheckedContent(pieces, PDF, 3 * MIB)
    with pytest.raises(TooLarge):
        _consume(checked)
    for thread in _digest_threads():
        thread.join(timeout=5)
    assert not _digest_threads()


def test_the_thread_ends_when_the_stream_is_abandoned() -> None:
    """The store failed mid-write: whoever read the stream closes it unfinished."""
    data = pdf_bytes(6 * MIB)
    stream = iter(
        CheckedContent((data[i : i + MIB] for i in range(0, len(data), MIB)), PDF, 100 * MIB)
    )
    next(stream), next(stream), next(stream)
    assert len(_digest_threads()) == 1
    stream.close()  # type: ignore[attr-defined]
    for thread in _digest_threads():
        thread.join(timeout=5)
    assert not _digest_threads()


def test_a_refusal_at_the_end_still_ends_the_thread() -> None:
    """The PDF trailer is checked after the last piece: its refusal stops the thread too."""
    data = b"%PDF-1.7\n" + bytes(4 * MIB)
    checked = CheckedContent((data[i : i + MIB] for i in range(0, len(data), MIB)), PDF, 100 * MIB)
    with pytest.raises(UnsupportedContent, match="EOF"):
        _consume(checked)
    for thread in _digest_threads():
        thread.join(timeout=5)
    assert not _digest_threads()


def test_ending_never_waits_for_the_digest_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """An abandoned stream may be closed by the garbage collector in any thread, the
    digests' own included: ending it must not wait for room in the queue (the thread
    would wait on itself). The thread is held inside a hash (a fault that cannot be
    caused otherwise) while a producer fills the queue, and the stream is ended from
    another thread."""
    from exchange.documents import content

    hashing, go_on = threading.Event(), threading.Event()
    real_hash = content._Digests._hash

    def held_hash(self: content._Digests, piece: bytes) -> None:
        if threading.current_thread().name == "digests":
            hashing.set()
            go_on.wait(timeout=10)
        real_hash(self, piece)

    monkeypatch.setattr(content._Digests, "_hash", held_hash)
    digests = content._Digests()

    def produce() -> None:
        for n in range(1 + content._Digests.WAITING):
            digests.update(bytes([n]) * MIB)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    assert hashing.wait(timeout=5)
    producer.join(timeout=0.5)  # the queue fills up behind the held hash
    ender = threading.Thread(target=digests.end, daemon=True)
    ender.start()
    ender.join(timeout=2)
    ended_at_once = not ender.is_alive()
    go_on.set()
    producer.join(timeout=5)
    for thread in _digest_threads():
        thread.join(timeout=5)
    assert ended_at_once
    assert not _digest_threads()
