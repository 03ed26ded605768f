"""The streaming AEAD: any chunking round-trips; any single-bit change, truncation, moved
chunk, object swap or wrong key is refused before a byte of the bad chunk is released."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.crypto.aead import (
    HEADER_SIZE,
    MIN_CHUNK,
    TAG_SIZE,
    TamperedError,
    decrypt_stream,
    encrypt_stream,
)

KEY = bytes(range(32))
CHUNK = MIN_CHUNK
SEALED = CHUNK + TAG_SIZE


def _pieces(data: bytes, sizes: random.Random) -> Iterator[bytes]:
    position = 0
    while position < len(data):
        step = sizes.randint(1, 3 * CHUNK)
        yield data[position : position + step]
        position += step


def _encrypt(data: bytes, object_id: str = "binary-1", key: bytes = KEY, seed: int = 0) -> bytes:
    return b"".join(encrypt_stream(key, object_id, _pieces(data, random.Random(seed)), CHUNK))


def _released(
    ciphertext: bytes, object_id: str = "binary-1", key: bytes = KEY
) -> tuple[bytes, bool]:
    """The plaintext released before any failure, and whether it failed."""
    out = bytearray()
    try:
        for piece in decrypt_stream(
            key, object_id, [ciphertext[i : i + 5000] for i in range(0, len(ciphertext), 5000)]
        ):
            out += piece
    except TamperedError:
        return bytes(out), True
    return bytes(out), False


@settings(max_examples=40, deadline=None)
@given(size=st.integers(0, 4 * CHUNK + 7), seed=st.integers(0, 2**16))
def test_any_chunking_round_trips(size: int, seed: int) -> None:
    data = random.Random(seed).randbytes(size)
    ciphertext = _encrypt(data, seed=seed)
    chunks = max(1, -(-len(data) // CHUNK))  # the last chunk, full or not, is the final one
    assert len(ciphertext) == HEADER_SIZE + len(data) + TAG_SIZE * chunks
    released, failed = _released(ciphertext)
    assert not failed
    assert released == data


#: Piece sizes a caller may hand either side: a few bytes (the header split), the sizes
#: around a chunk's and a sealed chunk's boundaries, and anything up to three chunks.
PIECE_SIZES = st.one_of(
    st.integers(0, HEADER_SIZE + 1),
    st.sampled_from([CHUNK - 1, CHUNK, CHUNK + 1, SEALED - 1, SEALED, SEALED + 1, 2 * SEALED]),
    st.integers(1, 3 * SEALED),
)


def _cut(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    """`data` in pieces of `sizes`, taken in turn and over again (0: an empty piece)."""
    sizes = sizes if any(sizes) else [*sizes, 1]
    position, turn = 0, 0
    while position < len(data):
        step = sizes[turn % len(sizes)]
        yield data[position : position + step]
        position, turn = position + step, turn + 1


@settings(max_examples=80, deadline=None)
@given(
    size=st.integers(0, 4 * CHUNK + 7),
    writes=st.lists(PIECE_SIZES, min_size=1, max_size=6),
    reads=st.lists(PIECE_SIZES, min_size=1, max_size=6),
)
def test_pieces_of_any_size_on_both_sides_round_trip(
    size: int, writes: list[int], reads: list[int]
) -> None:
    # Whole chunks are taken straight from a piece and only a chunk spanning two pieces is
    # gathered: pieces ending on, just before and just after a boundary, empty pieces and
    # a header arriving a few bytes at a time all meet that logic at its edges.
    data = random.Random(size).randbytes(size)
    ciphertext = b"".join(encrypt_stream(KEY, "binary-1", _cut(data, writes), CHUNK))
    chunks = max(1, -(-len(data) // CHUNK))
    assert len(ciphertext) == HEADER_SIZE + len(data) + TAG_SIZE * chunks
    assert b"".join(decrypt_stream(KEY, "binary-1", _cut(ciphertext, reads))) == data


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(1, 3 * CHUNK),
    seed=st.integers(0, 2**16),
    bit=st.integers(0, 7),
    where=st.floats(0, 1),
)
def test_any_single_bit_change_is_detected_before_release(
    size: int, seed: int, bit: int, where: float
) -> None:
    data = random.Random(seed).randbytes(size)
    ciphertext = bytearray(_encrypt(data))
    position = min(int(where * len(ciphertext)), len(ciphertext) - 1)
    ciphertext[position] ^= 1 << bit
    released, failed = _released(bytes(ciphertext))
    assert failed
    # Only chunks before the damaged one were released, and they are genuine.
    damaged_chunk = max(0, (position - HEADER_SIZE) // SEALED)
    assert released == data[: damaged_chunk * CHUNK][: len(released)]
    assert len(released) <= damaged_chunk * CHUNK


@pytest.mark.parametrize("cut", [1, TAG_SIZE, SEALED, SEALED + 1, 2 * SEALED])
def test_truncation_is_detected(cut: int) -> None:
    data = os.urandom(3 * CHUNK + 100)
    ciphertext = _encrypt(data)
    _, failed = _released(ciphertext[:-cut])
    assert failed


def test_truncation_at_a_chunk_boundary_is_detected() -> None:
    data = os.urandom(3 * CHUNK)
    ciphertext = _encrypt(data)
    released, failed = _released(ciphertext[: HEADER_SIZE + 2 * SEALED])
    assert failed
    assert released == data[:CHUNK]  # the last intact chunk is held back: it is not final


def test_moved_chunk_is_detected() -> None:
    data = os.urandom(3 * CHUNK + 10)
    ciphertext = _encrypt(data)
    first, second = (
        slice(HEADER_SIZE, HEADER_SIZE + SEALED),
        slice(HEADER_SIZE + SEALED, HEADER_SIZE + 2 * SEALED),
    )
    swapped = bytearray(ciphertext)
    swapped[first], swapped[second] = ciphertext[second], ciphertext[first]
    released, failed = _released(bytes(swapped))
    assert failed
    assert released == b""


def test_blobs_swapped_between_objects_are_detected() -> None:
    one, two = os.urandom(CHUNK + 5), os.urandom(CHUNK + 5)
    assert _released(_encrypt(two, "binary-2"), "binary-1") == (b"", True)
    assert _released(_encrypt(one, "binary-1"), "binary-2") == (b"", True)


def test_wrong_key_is_detected() -> None:
    ciphertext = _encrypt(os.urandom(100))
    assert _released(ciphertext, key=bytes(32)) == (b"", True)


def test_header_damage_and_garbage_are_refused() -> None:
    assert _released(b"not a ciphertext at all")[1]
    assert _released(b"")[1]
    ciphertext = bytearray(_encrypt(os.urandom(10)))
    ciphertext[5] ^= 0xFF  # the chunk size field
    assert _released(bytes(ciphertext))[1]


def test_same_plaintext_encrypts_differently() -> None:
    data = os.urandom(1000)
    assert _encrypt(data) != _encrypt(data)
