"""Sealed small secrets (`crypto.sealed`): envelope-encrypted, bound to their row,
re-wrapped by a key rotation without changing the value."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from exchange.crypto.keyring import Keyring
from exchange.crypto.keys import LocalKeyProvider
from exchange.crypto.sealed import (
    SealedValueError,
    is_sealed,
    open_sealed,
    rewrap_sealed,
    seal,
    sealed_key_ref,
)

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def _provider() -> LocalKeyProvider:
    return LocalKeyProvider(Keyring.generate(datetime.now(UTC)))


def test_a_sealed_value_opens_for_its_row_only_and_holds_no_plain_text() -> None:
    keys = _provider()
    stored = seal(keys, SECRET, "console-user/1/totp")
    assert is_sealed(stored) and not is_sealed(SECRET)
    assert SECRET not in stored
    assert base64.b32decode(SECRET) not in stored.encode()
    assert stored.isascii() and len(stored) < 1024
    assert open_sealed(keys, stored, "console-user/1/totp") == SECRET
    with pytest.raises(SealedValueError):
        open_sealed(keys, stored, "console-user/2/totp")  # copied to another person's row
    assert seal(keys, SECRET, "console-user/1/totp") != stored  # a new data key and nonce


@pytest.mark.parametrize("part", [1, 2, 3])
def test_an_altered_sealed_value_does_not_open(part: int) -> None:
    keys = _provider()
    stored = seal(keys, SECRET, "row")
    fields = stored.split(".")
    raw = bytearray(base64.urlsafe_b64decode(fields[part] + "=" * (-len(fields[part]) % 4)))
    raw[-1] ^= 1
    fields[part] = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(SealedValueError):
        open_sealed(keys, ".".join(fields), "row")


@pytest.mark.parametrize("stored", ["sealed-v1.", "sealed-v1.a.b", "sealed-v1.!.!.!", SECRET])
def test_what_is_not_a_sealed_value_is_refused(stored: str) -> None:
    with pytest.raises(SealedValueError):
        open_sealed(_provider(), stored, "row")


def test_another_keyring_cannot_open_it() -> None:
    stored = seal(_provider(), SECRET, "row")
    with pytest.raises(SealedValueError):
        open_sealed(_provider(), stored, "row")


def test_rotation_rewraps_the_key_and_keeps_the_value() -> None:
    keyring = Keyring.generate(datetime.now(UTC))
    stored = seal(LocalKeyProvider(keyring), SECRET, "row")
    assert sealed_key_ref(stored) == "local:1"
    rotated = keyring.with_new_kek()
    rewrapped = rewrap_sealed(LocalKeyProvider(rotated), stored, "row")
    assert sealed_key_ref(rewrapped) == "local:2"
    assert rewrapped.split(".")[3] == stored.split(".")[3]  # the value is not re-encrypted
    assert open_sealed(LocalKeyProvider(rotated), rewrapped, "row") == SECRET
    with pytest.raises(SealedValueError):
        rewrap_sealed(LocalKeyProvider(rotated), stored, "another row")
