"""Console passwords: argon2id hashes only (argon2-cffi's defaults follow RFC 9106)."""

from __future__ import annotations

from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

#: The shortest password a console user may have (the registry and the console both ask).
MIN_PASSWORD_LENGTH: Final = 12

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of `password`."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether `password` matches the stored hash (constant-time inside argon2)."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def is_argon2id_hash(value: str) -> bool:
    """Whether a string looks like an encoded argon2id hash."""
    return value.startswith("$argon2id$")
