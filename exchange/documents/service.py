"""Storing and opening document content: encrypt while streaming, blob first, then the row.

`store_content` checks the bytes as they pass (type, size, digests), encrypts them under a
fresh data key bound to the Binary id, and writes the ciphertext to the blob store; only
then is the row added to the caller's transaction, so a failure at any step leaves nothing
visible (an orphan blob at worst, which the sweeper removes). `open_content` unwraps the
key and returns the plaintext stream with its first chunk already verified, so a document
that fails authentication at its start is refused before any response begins.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime

from sqlalchemy.orm import Session

from exchange.crypto.aead import decrypt_stream, encrypt_stream
from exchange.crypto.keys import KeyProvider, WrappedKey
from exchange.documents.content import CheckedContent, ContentError
from exchange.documents.models import BinaryRow
from exchange.storage.blobs import BlobStore, new_blob_name


class ContentGone(Exception):
    """The document's key was destroyed (retention): its content no longer exists."""


def store_content(
    session: Session,
    store: BlobStore,
    keys: KeyProvider,
    pieces: Iterable[bytes],
    declared_type: str,
    max_bytes: int,
    uploader_id: uuid.UUID,
    now: datetime,
    expected_sha256: str | None = None,
) -> BinaryRow:
    """Encrypt and store a document's bytes; add its Binary row to the session."""
    binary_id = uuid.uuid4()
    blob = new_blob_name()
    checked = CheckedContent(pieces, declared_type, max_bytes)
    data_key, wrapped = keys.new_data_key(str(binary_id))
    store.write(blob, encrypt_stream(data_key, str(binary_id), checked))
    if expected_sha256 is not None and expected_sha256.lower() != checked.sha256_hex:
        store.delete(blob)
        raise ContentError(422, "the content does not match X-Content-SHA256")
    row = BinaryRow(
        id=binary_id, blob_name=blob, content_type=declared_type, size=checked.size, sha256=checked.sha256_hex,
        sha1=checked.sha1_digest, wrapped_key=wrapped.wrapped, key_ref=wrapped.key_ref, uploader_id=uploader_id,
        created=now, document_id=None, destroyed=None,
    )
    session.add(row)
    session.flush()
    return row


def open_content(row: BinaryRow, store: BlobStore, keys: KeyProvider) -> Iterator[bytes]:
    """The plaintext stream, its first chunk verified before this returns. A later bad
    chunk raises TamperedError as it is reached, before any of its bytes are yielded."""
    if row.wrapped_key is None or row.destroyed is not None:
        raise ContentGone(str(row.id))
    data_key = keys.unwrap(WrappedKey(row.wrapped_key, row.key_ref), str(row.id))
    stream = decrypt_stream(data_key, str(row.id), store.read(row.blob_name))
    first = next(stream)
    return itertools.chain([first], stream)


__all__ = ["ContentError", "ContentGone", "open_content", "store_content"]
