"""The document pipeline (encrypt while streaming, blob first, then the row) on the file
store and the local keyring: round trips, refusals that leave nothing, tamper detection,
and no plaintext at rest."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from exchange.crypto.aead import DEFAULT_CHUNK, HEADER_SIZE, TAG_SIZE, TamperedError
from exchange.crypto.keyring import Keyring
from exchange.crypto.keys import KeyUnwrapError, LocalKeyProvider
from exchange.db import Database
from exchange.documents.models import BinaryRow
from exchange.documents.pipeline import (
    add_binary,
    backends_answering,
    content_intact,
    open_content,
    seal_content,
)
from exchange.errors import (
    Corrupted,
    DigestMismatch,
    DomainError,
    EmptyContent,
    Gone,
    TooLarge,
    Unavailable,
    UnsupportedContent,
)
from exchange.storage.blobs import FileBlobStore, StorageUnavailable
from tests.factories import make_organisation, pdf_bytes

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
PDF = "application/pdf"
LIMIT = 100 * 1024 * 1024


@pytest.fixture
def store(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


@pytest.fixture
def keys() -> LocalKeyProvider:
    return LocalKeyProvider(Keyring.generate(NOW))


@pytest.fixture
def uploader(db: Database) -> object:
    return make_organisation(db, "PRV77")


def pdf(size: int) -> bytes:
    return pdf_bytes(size)


def _store(
    db: Database,
    store: FileBlobStore,
    keys: LocalKeyProvider,
    uploader: object,
    data: bytes,
    content_type: str = PDF,
    piece: int = 100_000,
    max_bytes: int = LIMIT,
    expected_sha256: str | None = None,
) -> BinaryRow:
    pieces = (data[i : i + piece] for i in range(0, len(data), piece))
    content = seal_content(store, keys, pieces, content_type, max_bytes, expected_sha256)
    with db.transaction() as session:
        return add_binary(session, content, uploader, NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "size", [16, 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, DEFAULT_CHUNK + 1, 5 * 1024 * 1024]
)
def test_round_trip(
    db: Database, store: FileBlobStore, keys: LocalKeyProvider, uploader: object, size: int
) -> None:
    data = pdf(size)
    row = _store(db, store, keys, uploader, data)
    assert (row.size, row.content_type) == (size, PDF)
    assert b"".join(open_content(row, store, keys)) == data
    assert row.sha256 == hashlib.sha256(data).hexdigest()


def test_one_byte_text(
    db: Database, store: FileBlobStore, keys: LocalKeyProvider, uploader: object
) -> None:
    row = _store(db, store, keys, uploader, b"x", "text/plain")
    assert b"".join(open_content(row, store, keys)) == b"x"


@pytest.mark.parametrize(
    ("data", "content_type", "refusal"),
    [
        (b"", PDF, EmptyContent),  # 400
        (
            b"MZ\x90\x00\x03\x00\x00\x00" + os.urandom(5000),
            PDF,
            UnsupportedContent,
        ),  # 415: an executable labelled PDF
        (b"%PDF-1.7" + os.urandom(100), "image/png", UnsupportedContent),
        (b"caf\xe9 au lait", "text/plain", UnsupportedContent),  # Latin-1, not UTF-8
        (b"%PDF-1.7", "application/x-msdownload", UnsupportedContent),
    ],
)
def test_refusals_leave_nothing(
    db: Database,
    store: FileBlobStore,
    keys: LocalKeyProvider,
    uploader: object,
    data: bytes,
    content_type: str,
    refusal: type[DomainError],
) -> None:
    with pytest.raises(DomainError) as caught:
        _store(db, store, keys, uploader, data, content_type)
    assert type(caught.value) is refusal
    assert list(store.names()) == []
    with db.transaction() as session:
        assert session.scalars(select(BinaryRow)).all() == []


def test_too_large_stops_reading(
    db: Database, store: FileBlobStore, keys: LocalKeyProvider, uploader: object
) -> None:
    pulled = 0

    def endless() -> Iterator[bytes]:
        nonlocal pulled
        yield b"%PDF-1.7\n"
        while True:
            pulled += 1
            yield b"\0" * 65536

    with pytest.raises(TooLarge):
        seal_content(store, keys, endless(), PDF, 1024 * 1024)
    assert pulled == 16  # stopped as soon as the limit was passed
    assert list(store.names()) == []


def test_digest_mismatch_is_422_and_removes_the_blob(
    db: Database, store: FileBlobStore, keys: LocalKeyProvider, uploader: object
) -> None:
    with pytest.raises(DigestMismatch):
        _store(db, store, keys, uploader, pdf(1000), expected_sha256="0" * 64)
    assert list(store.names()) == []


def _until_failure(stream: Iterator[bytes], served: bytearray) -> Iterator[bytes]:
    """Record each piece as it is released, so what came before a failure is known."""
    for piece in stream:
        served.extend(piece)
        yield b""


def _blob_path(store: FileBlobStore, row: BinaryRow) -> Path:
    return store._root / row.blob_name[:2] / row.blob_name


def test_flipped_bit_in_a_later_chunk_stops_before_it(
    db: Database, store: FileBlobStore, keys: LocalKeyProvider, uploader: object
) -> None:
    data = pdf(3 * DEFAULT_CHUNK)
    row = _store(db, store, keys, uploader, data)
    path = _blob_path(store, row)
    blob = bytearray(path.read_bytes())
    blob[HEADER_SIZE + 2 * (DEFAULT_CHUNK + TAG_SIZE) + 10] ^= 0x01  # inside the third chunk
    path.write_bytes(bytes(blob))
    served = bytearray()
    stream = open_content(row, store, keys)
    with pytest.raises(TamperedError):
        served.extend(b"".join(_until_failure(stream, served)))
    assert bytes(served) == data[: len(served)]
    assert len(served) <= 2 * DEFAULT_CHUNK


def test_damage_at_the_start_is_refused_before_any_byte(
    db: Database, store: FileBlobStore, keys: LocalKeyProvider, uploader: object
) -> None:
    row = _store(db, store, keys, uploader, pdf(1000))
    path = _blob_path(store, row)
    blob = bytearray(path.read_bytes())
    blob[HEADER_SIZE + 3] ^= 0x80
    path.write_bytes(bytes(blob))
    with pytest.raises(TamperedError):
        open_content(row, store, keys)
    path.write_bytes(path.read_bytes()[:-5])  # and truncated
    with pytest.raises(TamperedError):
        open_content(row, store, keys)


def test_blobs_swapped_between_documents_are_refused(
    db: Database, store: FileBlobStore, keys: LocalKeyProvider, uploader: object
) -> None:
    one, two = (
        _store(db, store, keys, uploader, pdf(5000)),
        _store(db, store, keys, uploader, pdf(5000)),
    )
    one_path, two_path = _blob_path(store, one), _blob_path(store, two)
    one_bytes, two_bytes = one_path.read_bytes(), two_path.read_bytes()
    one_path.write_bytes(two_bytes)
    two_path.write_bytes(one_bytes)
    for row in (one, two):
        with pytest.raises(TamperedError):
            open_content(row, store, keys)


def test_a_data_key_unwrapped_for_another_document_is_refused(
    db: Database, store: FileBlobStore, keys: LocalKeyProvider, uploader: object
) -> None:
    one, two = (
        _store(db, store, keys, uploader, pdf(5000)),
        _store(db, store, keys, uploader, pdf(5000)),
    )
    one.wrapped_key, two.wrapped_key = two.wrapped_key, one.wrapped_key
    with pytest.raises(KeyUnwrapError):
        open_content(one, store, keys)


def test_no_plaintext_at_rest(
    db: Database, store: FileBlobStore, keys: LocalKeyProvider, uploader: object, tmp_path: Path
) -> None:
    marker = b"PLAINTEXT-MARKER-" + os.urandom(8).hex().encode()
    for size in (100, 70_000, 600_000):
        body = (marker + b" ") * (size // (len(marker) + 1))
        _store(db, store, keys, uploader, body, "text/plain")
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert marker not in path.read_bytes(), path
    with db.transaction() as session:
        for row in session.scalars(select(BinaryRow)):
            assert marker not in (row.wrapped_key or b"") and marker not in row.sha1
    if db.dialect == "sqlite":
        database_file = Path(db.url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal"):
            candidate = Path(f"{database_file}{suffix}")
            if candidate.exists():
                assert marker not in candidate.read_bytes()


class _StoreDown(FileBlobStore):
    """A store whose backend does not answer."""

    def write(self, name: str, pieces: object) -> int:
        raise StorageUnavailable("the object store did not answer")

    def read(self, name: str) -> Iterator[bytes]:
        raise StorageUnavailable("the object store did not answer")


def test_a_store_that_does_not_answer_is_unavailable(
    db: Database, keys: LocalKeyProvider, uploader: object, tmp_path: Path
) -> None:
    down = _StoreDown(tmp_path / "down")
    with pytest.raises(Unavailable), backends_answering():
        _store(db, down, keys, uploader, pdf(1000))
    with db.transaction() as session:
        assert session.scalars(select(BinaryRow)).all() == []


def test_content_that_cannot_be_opened_is_corrupted_or_unavailable(
    db: Database, store: FileBlobStore, keys: LocalKeyProvider, uploader: object, tmp_path: Path
) -> None:
    row = _store(db, store, keys, uploader, pdf(1000))
    with pytest.raises(Unavailable), content_intact(row.id):
        open_content(row, _StoreDown(tmp_path / "down"), keys)
    _blob_path(store, row).unlink()
    # A missing blob is an OSError too, but the store answered: the content is gone wrong.
    with pytest.raises(Corrupted) as caught, content_intact(row.id):
        open_content(row, store, keys)
    assert caught.value.subject.entities[0].reference == f"Binary/{row.id}"


def test_shredded_content_is_gone(
    db: Database, store: FileBlobStore, keys: LocalKeyProvider, uploader: object
) -> None:
    row = _store(db, store, keys, uploader, pdf(1000))
    row.wrapped_key = None
    with pytest.raises(Gone):
        open_content(row, store, keys)
