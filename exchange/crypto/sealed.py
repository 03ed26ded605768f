"""Small secrets sealed for storage: values the service must read back but a copy of the
database must not reveal (the console's TOTP secrets, `console.md`).

Envelope encryption with the configured key provider, as for document content: a fresh
data key per value, kept only wrapped by the provider's key-encryption key, and the value
under AES-256-GCM. Both the wrap and the ciphertext are bound to `context` (the row the
value belongs to), so a sealed value copied to another row does not open there.

Stored form, ASCII: `sealed-v1.<key ref>.<wrapped key>.<nonce + ciphertext>`, the last
three in unpadded base64url.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from exchange.crypto.keys import KeyProvider, KeyUnwrapError, LocalKeyProvider, WrappedKey

PREFIX: Final = "sealed-v1"
_NONCE: Final = 12


class SealedValueError(ValueError):
    """A stored value is not a sealed value, or does not open for its row (altered, moved
    from another row, or its key-encryption key is gone)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _associated(context: str) -> bytes:
    return b"exchange-sealed\x1f" + context.encode("utf-8")


def is_sealed(stored: str) -> bool:
    """Whether `stored` is in the sealed form (older rows may hold a value in plain)."""
    return stored.startswith(PREFIX + ".")


def seal(keys: KeyProvider, value: str, context: str) -> str:
    """`value` sealed under a new data key for `context`, in its stored form."""
    data_key, wrapped = keys.new_data_key(context)
    nonce = os.urandom(_NONCE)
    sealed = AESGCM(data_key).encrypt(nonce, value.encode("utf-8"), _associated(context))
    return _stored(wrapped, nonce + sealed)


def _stored(wrapped: WrappedKey, sealed: bytes) -> str:
    """The stored form of a value sealed (nonce and ciphertext) under `wrapped`."""
    return ".".join(
        (PREFIX, _b64(wrapped.key_ref.encode("utf-8")), _b64(wrapped.wrapped), _b64(sealed))
    )


def _parts(stored: str) -> tuple[WrappedKey, bytes]:
    prefix, _, rest = stored.partition(".")
    fields = rest.split(".")
    if prefix != PREFIX or len(fields) != 3:
        raise SealedValueError("not a sealed value")
    try:
        key_ref, wrapped, sealed = (_unb64(field) for field in fields)
        return WrappedKey(wrapped, key_ref.decode("utf-8")), sealed
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise SealedValueError("not a sealed value") from None


def sealed_key_ref(stored: str) -> str:
    """Which key-encryption key wraps a sealed value's data key (`local:2`, a KMS key...)."""
    return _parts(stored)[0].key_ref


def open_sealed(keys: KeyProvider, stored: str, context: str) -> str:
    """The value sealed in `stored` for `context`. Raises SealedValueError if it does not
    open; a key service that does not answer raises its KeyServiceUnavailable."""
    wrapped, sealed = _parts(stored)
    try:
        data_key = keys.unwrap(wrapped, context)
        plain = AESGCM(data_key).decrypt(sealed[:_NONCE], sealed[_NONCE:], _associated(context))
    except (KeyUnwrapError, InvalidTag, ValueError):
        raise SealedValueError("the sealed value does not open for this row") from None
    return plain.decode("utf-8")


def rewrap_sealed(provider: LocalKeyProvider, stored: str, context: str) -> str:
    """The same sealed value with its data key wrapped by the keyring's current KEK
    (`exchange keys rotate`); the value itself is not re-encrypted."""
    wrapped, sealed = _parts(stored)
    try:
        rewrapped = provider.rewrap(wrapped, context)
    except KeyUnwrapError:
        raise SealedValueError("the sealed value does not open for this row") from None
    return _stored(rewrapped, sealed)
