"""The document pipeline: encrypt while streaming, blob first, then the row.

`seal_content` checks the bytes as they pass (type, size, digests), encrypts them under a
fresh data key bound to the Binary id, and writes the ciphertext to the blob store, before
any transaction begins; `add_binary` then records the row in the use case's transaction,
so a failure at any step leaves nothing visible (an orphan blob at worst: deleted at once
when the use case is refused, else by the sweeper). `open_content` unwraps the
key and returns the plaintext stream with its first chunk already verified, so a document
that fails authentication at its start is refused before any response begins.

Backends fail in their own words (`StorageUnavailable`, `KeyServiceUnavailable`, an
unreadable keyring, a tampered chunk); `backends_answering` and `content_intact` turn those
into the domain's `Unavailable` and `Corrupted`, so no front door knows a vendor.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from sqlalchemy.orm import Session

from exchange.audit.events import Entity
from exchange.crypto.aead import TamperedError, decrypt_stream, encrypt_stream
from exchange.crypto.keyring import KeyringError
from exchange.crypto.keys import KeyProvider, KeyServiceUnavailable, KeyUnwrapError, WrappedKey
from exchange.db import Write, core_connection, row_insert, values_of
from exchange.documents.content import CheckedContent
from exchange.documents.models import BinaryRow
from exchange.errors import (
    Corrupted,
    DigestMismatch,
    DomainError,
    Gone,
    Subject,
    Unavailable,
)
from exchange.storage.blobs import BlobMissing, BlobStore, StorageUnavailable, new_blob_name

log = logging.getLogger("exchange.documents")

#: A backend that cannot answer now: the store or key service is down, the keyring cannot
#: be read, or the file system failed (OSError; the first two are ConnectionErrors).
_UNAVAILABLE: Final = (StorageUnavailable, KeyServiceUnavailable, KeyringError, OSError)


class ContentBackends(Protocol):
    """Where document content lives and what opens it, made on first use (so a missing
    keyring or a key service that is down refuses the requests that need it, 503, rather
    than stopping the service from starting)."""

    def blob_store(self) -> BlobStore:
        """The configured document store."""
        ...

    def key_provider(self) -> KeyProvider:
        """The configured key provider."""
        ...


@contextmanager
def backends_answering() -> Iterator[None]:
    """A store or key service that does not answer is Unavailable (nothing was stored or
    disclosed)."""
    try:
        yield
    except _UNAVAILABLE:
        raise _unavailable() from None


def _unavailable() -> Unavailable:
    return Unavailable(
        "the document store or key service is unavailable; nothing was stored or disclosed"
    )


@contextmanager
def content_intact(binary_id: uuid.UUID) -> Iterator[None]:
    """Stored content that fails its integrity check (a blob altered, truncated, swapped or
    gone; a data key that is not this object's) is Corrupted, and logged for the operator;
    a backend that does not answer is Unavailable."""
    try:
        yield
    except (TamperedError, KeyUnwrapError, BlobMissing) as error:  # BlobMissing is an OSError too
        log.error(
            "document failed its integrity check",
            extra={"binary": str(binary_id), "error": type(error).__name__},
        )
        raise Corrupted(
            "the document could not be served", subject=Subject((Entity(f"Binary/{binary_id}"),))
        ) from None
    except _UNAVAILABLE:
        raise _unavailable() from None


_INSERT_BINARY: Final = row_insert(BinaryRow)


@dataclass(frozen=True, slots=True)
class SealedContent:
    """Checked content, encrypted and written to the store under `blob`, that no row names
    yet: `add_binary` records it in a transaction (until then only the sweeper, after its
    grace period, would remove it)."""

    binary_id: uuid.UUID
    blob: str
    content_type: str
    size: int
    #: Lowercase hex SHA-256 of the plaintext.
    sha256: str
    #: Raw SHA-1 of the plaintext (R4 `Attachment.hash`).
    sha1: bytes
    wrapped: WrappedKey


def seal_content(
    store: BlobStore,
    keys: KeyProvider,
    pieces: Iterable[bytes],
    declared_type: str,
    max_bytes: int,
    expected_sha256: str | None = None,
) -> SealedContent:
    """Check, encrypt and store a document's bytes, touching no database: a use case seals
    content before its transaction begins, so on SQLite the writer lock is not held while
    the bytes stream, are encrypted and fsynced (bench/profiles/api-load.md, "Fourth
    pass"). UnsupportedContent, TooLarge, EmptyContent or DigestMismatch leave nothing
    stored."""
    binary_id = uuid.uuid4()
    blob = new_blob_name()
    checked = CheckedContent(pieces, declared_type, max_bytes)
    data_key, wrapped = keys.new_data_key(str(binary_id))
    store.write(blob, encrypt_stream(data_key, str(binary_id), checked))
    if expected_sha256 is not None and expected_sha256.lower() != checked.sha256_hex:
        store.delete(blob)
        raise DigestMismatch("the content does not match X-Content-SHA256")
    return SealedContent(
        binary_id,
        blob,
        declared_type,
        checked.size,
        checked.sha256_hex,
        checked.sha1_digest,
        wrapped,
    )


def add_binary(
    session: Session,
    content: SealedContent,
    uploader_id: uuid.UUID,
    now: datetime,
    document_id: uuid.UUID | None = None,
) -> BinaryRow:
    """Record sealed content as a Binary in the session's transaction (attached to
    `document_id` already when it is a new document's inline content)."""
    row, write = binary_write(content, uploader_id, now, document_id)
    # A Core insert: the unit of work's flush was a fifth of a document upload's server
    # time (bench/profiles/api-load.md, "Third pass"). The row is returned unattached to
    # the session; a later read loads it afresh.
    write.run(core_connection(session))
    return row


def binary_write(
    content: SealedContent,
    uploader_id: uuid.UUID,
    now: datetime,
    document_id: uuid.UUID | None = None,
) -> tuple[BinaryRow, Write]:
    """`add_binary` as one of a use case's writes (`db.write_together`), and the row it
    writes (unattached to any session)."""
    row = BinaryRow(
        id=content.binary_id,
        blob_name=content.blob,
        content_type=content.content_type,
        size=content.size,
        sha256=content.sha256,
        sha1=content.sha1,
        wrapped_key=content.wrapped.wrapped,
        key_ref=content.wrapped.key_ref,
        uploader_id=uploader_id,
        created=now,
        document_id=document_id,
        destroyed=None,
    )
    return row, Write(_INSERT_BINARY, values_of(row))


@contextmanager
def discarded_if_refused(
    backends: ContentBackends, content: SealedContent | None
) -> Iterator[None]:
    """Sealed content whose use case is refused (a domain error) is deleted at once, since
    no row will name it. Any other failure leaves it to the sweeper: a commit that failed
    in transit may still have committed the row that names it."""
    try:
        yield
    except DomainError:
        if content is not None:
            try:
                backends.blob_store().delete(content.blob)
            except _UNAVAILABLE:
                log.warning("a refused upload's blob is left to the sweeper")
        raise


def seal_from(
    backends: ContentBackends,
    pieces: Iterable[bytes],
    declared_type: str,
    max_bytes: int,
    expected_sha256: str | None = None,
) -> SealedContent:
    """`seal_content` into the configured store under a data key of the configured
    provider; a backend that does not answer is Unavailable (nothing was stored)."""
    with backends_answering():
        return seal_content(
            backends.blob_store(),
            backends.key_provider(),
            pieces,
            declared_type,
            max_bytes,
            expected_sha256,
        )


def open_content(row: BinaryRow, store: BlobStore, keys: KeyProvider) -> Iterator[bytes]:
    """The plaintext stream, its first chunk verified before this returns (Gone if the
    content was crypto-shredded). A later bad chunk raises TamperedError as it is reached,
    before any of its bytes are yielded."""
    if row.wrapped_key is None or row.destroyed is not None:
        raise Gone("the document's content was destroyed under the retention policy")
    data_key = keys.unwrap(WrappedKey(row.wrapped_key, row.key_ref), str(row.id))
    stream = decrypt_stream(data_key, str(row.id), store.read(row.blob_name))
    first = next(stream)
    return itertools.chain([first], stream)


def logged_while_streaming(stream: Iterator[bytes], binary_id: uuid.UUID) -> Iterator[bytes]:
    """Pass the content on; a chunk failing authentication once the response has begun
    ends it (the client sees a short body against Content-Length) and is logged, never
    sent."""
    try:
        yield from stream
    except TamperedError:
        log.error(
            "document failed authentication while streaming", extra={"binary": str(binary_id)}
        )
        raise


__all__ = [
    "ContentBackends",
    "SealedContent",
    "add_binary",
    "backends_answering",
    "content_intact",
    "discarded_if_refused",
    "logged_while_streaming",
    "open_content",
    "seal_content",
    "seal_from",
]
