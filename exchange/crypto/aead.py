"""Streaming authenticated encryption of documents (`documents.md`, Encryption).

The STREAM construction (Hoang, Reyhanitabar, Rogaway and Vizár, 2015) over AES-256-GCM:
the plaintext is cut into chunks, each sealed with its own nonce
`prefix (7 bytes, random per object) || chunk index (4 bytes) || final flag (1 byte)` and
associated data binding the object id, the chunk index and the final flag. So:

- a flipped bit fails that chunk's tag;
- moving chunks changes their index, swapping objects changes the object id, cutting the
  stream at a chunk boundary leaves a last chunk not sealed as final — each fails a tag;
- a chunk's plaintext is released only after its tag has been verified (AESGCM.decrypt
  verifies before it returns), so nothing of a bad chunk is ever served.

Layout: a 16-byte header (`EXAD`, version 1, chunk size as 4 bytes, the 7-byte nonce
prefix), then the sealed chunks (chunk size + 16 bytes each; the
last may be shorter). Memory use is bounded by one chunk, whatever the document's size.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC: Final = b"EXAD"
VERSION: Final = 1
HEADER_SIZE: Final = 16
TAG_SIZE: Final = 16
PREFIX_SIZE: Final = 7
DEFAULT_CHUNK: Final = 256 * 1024
MIN_CHUNK: Final = 64 * 1024
MAX_CHUNK: Final = 1024 * 1024
MAX_CHUNKS: Final = 2**32 - 1


class TamperedError(Exception):
    """The ciphertext is not what was written for this object: refused, nothing released."""


def _nonce(prefix: bytes, index: int, final: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if final else 0)


def _complete_chunks(
    buffer: bytearray,
    view: memoryview,
    size: int,
    process: Callable[[bytes | bytearray | memoryview, bool], bytes],
) -> list[bytes]:
    """`process` (seal or open, not final) every chunk of `size` bytes that `view`
    completes and that more bytes follow: the last chunk must be processed as final, so at
    least one byte is always held back. A chunk begun in an earlier call is completed in
    `buffer`; whole chunks are taken straight from `view`; the rest is kept in `buffer`,
    so it never holds more than one chunk."""
    done: list[bytes] = []
    offset = 0
    if buffer:
        offset = size - len(buffer)
        buffer += view[:offset]
        if len(view) <= offset:
            return done  # no byte follows the chunk yet: it may be the last
        done.append(process(buffer, False))
        buffer.clear()
    while len(view) - offset > size:
        done.append(process(view[offset : offset + size], False))
        offset += size
    buffer += view[offset:]
    return done


def _associated_data(header: bytes, object_id: bytes, index: int, final: bool) -> bytes:
    return header + struct.pack(">QB", index, 1 if final else 0) + object_id


class StreamEncryptor:
    """Encrypts a stream for one object with its data key; feed with `update`, end with
    `finalize`. The output of `header()`, the updates and `finalize()` concatenated is the
    object's ciphertext."""

    def __init__(self, key: bytes, object_id: str, chunk_size: int = DEFAULT_CHUNK) -> None:
        if len(key) != 32:
            raise ValueError("the data key must be 256 bits")
        if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
            raise ValueError("the chunk size must be between 64 KiB and 1 MiB")
        self._aead = AESGCM(key)
        self._object = object_id.encode("utf-8")
        self._chunk = chunk_size
        self._prefix = os.urandom(PREFIX_SIZE)
        self._header = MAGIC + struct.pack(">BI", VERSION, chunk_size) + self._prefix
        self._buffer = bytearray()
        self._index = 0
        self._done = False

    def header(self) -> bytes:
        """The 16-byte header, written first."""
        return self._header

    def _seal(self, plaintext: bytes | bytearray | memoryview, final: bool) -> bytes:
        if self._index > MAX_CHUNKS:
            raise ValueError("the object is too large for this chunk size")
        sealed = self._aead.encrypt(
            _nonce(self._prefix, self._index, final),
            plaintext,
            _associated_data(self._header, self._object, self._index, final),
        )
        self._index += 1
        return sealed

    def update(self, data: bytes) -> bytes:
        """Sealed chunks for everything but the last (possibly partial) chunk so far."""
        return b"".join(self.sealed_chunks(data))

    def sealed_chunks(self, data: bytes) -> list[bytes]:
        """`update`, one sealed chunk at a time. Whole chunks are sealed straight from a
        view of `data`; only a chunk that spans two calls is gathered in the buffer, which
        never holds more than one chunk (buffering every byte, then compacting, cost more
        than the sealing itself: bench/profiles/documents.md, "Twelfth pass")."""
        if self._done:
            raise ValueError("the stream is finalised")
        with memoryview(data) as view:
            return _complete_chunks(self._buffer, view, self._chunk, self._seal)

    def finalize(self) -> bytes:
        """The final chunk (sealed as final even when empty)."""
        if self._done:
            raise ValueError("the stream is finalised")
        self._done = True
        sealed = self._seal(bytes(self._buffer), final=True)
        self._buffer.clear()
        return sealed


class StreamDecryptor:
    """Decrypts one object's ciphertext, chunk by chunk, releasing a chunk's plaintext only
    once its tag verifies; `finalize` fails unless the stream ended with its final chunk."""

    def __init__(self, key: bytes, object_id: str) -> None:
        if len(key) != 32:
            raise ValueError("the data key must be 256 bits")
        self._aead = AESGCM(key)
        self._object = object_id.encode("utf-8")
        self._header: bytes | None = None
        self._prefix = b""
        self._sealed_chunk = 0
        self._buffer = bytearray()
        self._index = 0
        self._done = False

    def _read_header(self, view: memoryview) -> int:
        """Take the header from the buffer and `view`; how many bytes of `view` it took
        (all of them while the header is still incomplete)."""
        missing = HEADER_SIZE - len(self._buffer)
        self._buffer += view[:missing]
        if len(self._buffer) < HEADER_SIZE:
            return len(view)
        header = bytes(self._buffer)
        magic, version, size = header[:4], header[4], struct.unpack(">I", header[5:9])[0]
        if magic != MAGIC or version != VERSION or not MIN_CHUNK <= size <= MAX_CHUNK:
            raise TamperedError("the ciphertext header is not valid")
        self._header, self._prefix = header, header[9:HEADER_SIZE]
        self._sealed_chunk = size + TAG_SIZE
        self._buffer.clear()
        return missing

    def _open(self, sealed: bytes | bytearray | memoryview, final: bool) -> bytes:
        if self._header is None:
            raise TamperedError("the ciphertext header is missing")
        try:
            plaintext = self._aead.decrypt(
                _nonce(self._prefix, self._index, final),
                sealed,
                _associated_data(self._header, self._object, self._index, final),
            )
        except InvalidTag:
            raise TamperedError(f"chunk {self._index} failed authentication") from None
        self._index += 1
        return plaintext

    def update(self, data: bytes) -> bytes:
        """Plaintext of every chunk that is complete, verified and known not to be last."""
        return b"".join(self.plaintext_chunks(data))

    def plaintext_chunks(self, data: bytes) -> list[bytes]:
        """`update`, one verified chunk at a time: whole chunks are opened straight from a
        view of `data`, and only a chunk that spans two calls is gathered in the buffer
        (never more than one chunk)."""
        if self._done:
            raise ValueError("the stream is finalised")
        with memoryview(data) as view:
            start = 0 if self._header is not None else self._read_header(view)
            if self._header is None:
                return []
            return _complete_chunks(self._buffer, view[start:], self._sealed_chunk, self._open)

    def finalize(self) -> bytes:
        """The last chunk's plaintext; TamperedError if the stream was cut or altered."""
        if self._done:
            raise ValueError("the stream is finalised")
        self._done = True
        if self._header is None or len(self._buffer) < TAG_SIZE:
            raise TamperedError("the ciphertext is truncated")
        plaintext = self._open(bytes(self._buffer), final=True)
        self._buffer.clear()
        return plaintext


def encrypt_stream(
    key: bytes, object_id: str, chunks: Iterable[bytes], chunk_size: int = DEFAULT_CHUNK
) -> Iterator[bytes]:
    """Ciphertext pieces for a plaintext stream."""
    encryptor = StreamEncryptor(key, object_id, chunk_size)
    yield encryptor.header()
    for piece in chunks:
        yield from encryptor.sealed_chunks(piece)
    yield encryptor.finalize()


def decrypt_stream(key: bytes, object_id: str, pieces: Iterable[bytes]) -> Iterator[bytes]:
    """Plaintext pieces for a ciphertext stream; raises TamperedError at the first bad
    chunk, before yielding any of it."""
    decryptor = StreamDecryptor(key, object_id)
    for piece in pieces:
        yield from decryptor.plaintext_chunks(piece)
    yield decryptor.finalize()
