"""Key providers: fresh 256-bit data keys (DEKs), kept only wrapped by a key-encryption key
(`documents.md`, Encryption). The wrap is bound to the object it protects (the Binary id
as associated data / encryption context), so a wrapped key moved to another object does
not unwrap. This module holds the `local` provider; `aws-kms` and `vault-transit` follow
the same protocol.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from exchange.crypto.keyring import Keyring, KeyringError, load_keyring

_NONCE: Final = 12


class KeyUnwrapError(Exception):
    """A wrapped data key does not unwrap (wrong object, altered, or its KEK is gone)."""


class KeyServiceUnavailable(ConnectionError):
    """The key service did not answer: no key was made or unwrapped, nothing half-done.
    (A local keyring that cannot be read is `crypto.keyring.KeyringError`.)"""


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key as stored: the wrapped bytes and which key-encryption key wrapped them."""

    wrapped: bytes
    key_ref: str


class KeyProvider(Protocol):
    """Makes and unwraps data keys for objects. A provider whose service does not answer
    raises KeyServiceUnavailable, never its vendor's error."""

    def new_data_key(self, context: str) -> tuple[bytes, WrappedKey]:
        """A fresh data key for the object `context`, in plaintext and wrapped."""
        ...

    def unwrap(self, key: WrappedKey, context: str) -> bytes:
        """The plaintext data key; KeyUnwrapError if it is not the object's."""
        ...


def _associated(context: str, version: int) -> bytes:
    return b"exchange-dek\x1f" + context.encode("utf-8") + b"\x1f" + str(version).encode("ascii")


def _stamp(path: Path) -> tuple[int, int, int]:
    """What changes when the keyring file is replaced (`save_keyring` renames a new file
    over it): its inode, size and modification time."""
    status = path.stat()
    return status.st_ino, status.st_size, status.st_mtime_ns


class LocalKeyProvider:
    """Data keys wrapped with AES-256-GCM by the keyring's versioned KEKs.

    Made `from_file`, it follows the keyring file: a running server's workers pick up
    `exchange keys rotate` at their next key operation (a `stat` each), so they open keys
    re-wrapped under the new KEK and wrap new ones with it, with no restart."""

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring
        self._source: Path | None = None
        self._seen: tuple[int, int, int] | None = None

    @classmethod
    def from_file(cls, path: Path) -> LocalKeyProvider:
        """The provider of the keyring file at `path` (read now, re-read when replaced)."""
        seen = _stamp(path) if path.exists() else None  # before the read: a race re-reads
        provider = cls(load_keyring(path))
        provider._source, provider._seen = path, seen
        return provider

    def _current(self) -> Keyring:
        """The keyring, re-read first if its file has been replaced since it was read."""
        if self._source is not None:
            try:
                stamp = _stamp(self._source)
            except FileNotFoundError:
                raise KeyringError(f"no keyring at {self._source}") from None
            if stamp != self._seen:
                self._keyring, self._seen = load_keyring(self._source), stamp
        return self._keyring

    def new_data_key(self, context: str) -> tuple[bytes, WrappedKey]:
        """A fresh data key wrapped by the current KEK."""
        data_key = os.urandom(32)
        return data_key, self._wrap(data_key, context)

    def _wrap(self, data_key: bytes, context: str) -> WrappedKey:
        keyring = self._current()
        version = keyring.current_kek_version
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(keyring.keks[version]).encrypt(
            nonce, data_key, _associated(context, version)
        )
        return WrappedKey(nonce + sealed, f"local:{version}")

    def unwrap(self, key: WrappedKey, context: str) -> bytes:
        """Unwrap with the KEK version named in `key_ref`."""
        kind, _, version_text = key.key_ref.partition(":")
        if kind != "local" or not version_text.isdigit():
            raise KeyUnwrapError("the data key was not wrapped by the local keyring")
        version = int(version_text)
        kek = self._current().keks.get(version)
        if kek is None:
            raise KeyUnwrapError(f"KEK version {version} is no longer in the keyring")
        try:
            return AESGCM(kek).decrypt(
                key.wrapped[:_NONCE], key.wrapped[_NONCE:], _associated(context, version)
            )
        except InvalidTag:
            raise KeyUnwrapError("the data key does not unwrap for this object") from None

    def rewrap(self, key: WrappedKey, context: str) -> WrappedKey:
        """The same data key wrapped by the current KEK (`exchange keys rotate`): no
        content is re-encrypted."""
        return self._wrap(self.unwrap(key, context), context)
