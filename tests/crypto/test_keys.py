"""The local key provider: data keys wrapped per object, rotation re-wraps."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from exchange.crypto.keyring import Keyring
from exchange.crypto.keys import KeyUnwrapError, LocalKeyProvider, WrappedKey


def test_wrap_and_unwrap_bound_to_the_object() -> None:
    provider = LocalKeyProvider(Keyring.generate(datetime.now(UTC)))
    data_key, wrapped = provider.new_data_key("binary-1")
    assert len(data_key) == 32
    assert data_key not in wrapped.wrapped
    assert provider.unwrap(wrapped, "binary-1") == data_key
    with pytest.raises(KeyUnwrapError):
        provider.unwrap(wrapped, "binary-2")  # a wrapped key moved to another object
    flipped = WrappedKey(bytes([wrapped.wrapped[0] ^ 1]) + wrapped.wrapped[1:], wrapped.key_ref)
    with pytest.raises(KeyUnwrapError):
        provider.unwrap(flipped, "binary-1")
    with pytest.raises(KeyUnwrapError):
        provider.unwrap(replace(wrapped, key_ref="aws-kms:x"), "binary-1")


def test_rotation_rewraps_with_the_new_kek_and_old_versions_can_be_retired() -> None:
    keyring = Keyring.generate(datetime.now(UTC))
    data_key, wrapped = LocalKeyProvider(keyring).new_data_key("binary-1")
    rotated = keyring.with_new_kek()
    provider = LocalKeyProvider(rotated)
    rewrapped = provider.rewrap(wrapped, "binary-1")
    assert (wrapped.key_ref, rewrapped.key_ref) == ("local:1", "local:2")
    assert provider.unwrap(rewrapped, "binary-1") == data_key
    retired = LocalKeyProvider(
        Keyring({2: rotated.keks[2]}, rotated.signing_key, rotated.signing_key_id)
    )
    assert retired.unwrap(rewrapped, "binary-1") == data_key
    with pytest.raises(KeyUnwrapError, match="no longer in the keyring"):
        retired.unwrap(wrapped, "binary-1")  # crypto-shredding by retiring a KEK version
