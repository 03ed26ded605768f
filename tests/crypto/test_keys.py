"""The local key provider: data keys wrapped per object, rotation re-wraps."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exchange.crypto.keyring import Keyring, KeyringError, load_keyring, save_keyring
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


def test_a_provider_made_from_the_keyring_file_follows_a_rotation(tmp_path: Path) -> None:
    """A running server's provider sees `exchange keys rotate`'s new keyring file: keys
    re-wrapped under the new KEK open, new keys are wrapped by it."""
    path = tmp_path / "keyring.json"
    save_keyring(path, Keyring.generate(datetime.now(UTC)))
    provider = LocalKeyProvider.from_file(path)
    data_key, before = provider.new_data_key("binary-1")
    assert before.key_ref == "local:1"
    rotated = load_keyring(path).with_new_kek()
    save_keyring(path, rotated)
    rewrapped = LocalKeyProvider(rotated).rewrap(before, "binary-1")
    assert rewrapped.key_ref == "local:2"
    assert provider.unwrap(rewrapped, "binary-1") == data_key
    assert provider.new_data_key("binary-2")[1].key_ref == "local:2"
    path.unlink()
    with pytest.raises(KeyringError):
        provider.new_data_key("binary-3")  # fails closed, never on a stale keyring
