"""The local keyring: versioned key-encryption keys and the audit-checkpoint signing key,
in one JSON file in the data directory, mode 0600 (`documents.md`, `audit.md`).

The file is written atomically (temporary file, fsync, rename), so a crash never leaves a
half keyring; a keyring readable by group or others is refused (fail closed).
"""

from __future__ import annotations

import base64
import json
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from exchange.files import file_lock, write_atomically


class KeyringError(RuntimeError):
    """The keyring is missing, unreadable, too widely readable or malformed."""


@dataclass(frozen=True)
class Keyring:
    """Versioned 256-bit KEKs and an Ed25519 signing key."""

    keks: dict[int, bytes]
    signing_key: Ed25519PrivateKey
    signing_key_id: str

    @property
    def current_kek_version(self) -> int:
        """The KEK version new data keys are wrapped with."""
        return max(self.keks)

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The checkpoint verification key."""
        return self.signing_key.public_key()

    @classmethod
    def generate(cls, now: datetime) -> Keyring:
        """A new keyring with KEK version 1 and a fresh signing key."""
        return cls(
            keks={1: secrets.token_bytes(32)},
            signing_key=Ed25519PrivateKey.generate(),
            signing_key_id=f"local-ed25519-{now:%Y%m%d%H%M%S}",
        )

    def with_new_kek(self) -> Keyring:
        """This keyring plus a new KEK version (for `exchange keys rotate`)."""
        keks = dict(self.keks)
        keks[self.current_kek_version + 1] = secrets.token_bytes(32)
        return Keyring(keks, self.signing_key, self.signing_key_id)

    def to_json(self) -> dict[str, Any]:
        """The file form (base64 key material)."""
        raw_signing = self.signing_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return {
            "format": 1,
            "keks": {
                str(v): base64.b64encode(k).decode("ascii") for v, k in sorted(self.keks.items())
            },
            "signing_key": {
                "kid": self.signing_key_id,
                "alg": "Ed25519",
                "private": base64.b64encode(raw_signing).decode("ascii"),
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Keyring:
        """Parse the file form."""
        try:
            keks = {int(v): base64.b64decode(k) for v, k in data["keks"].items()}
            signing = data["signing_key"]
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(signing["private"]))
            if not keks or any(len(k) != 32 for k in keks.values()):
                raise ValueError("KEKs must be 256-bit")
            return cls(keks, key, str(signing["kid"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyringError(f"the keyring is malformed ({type(exc).__name__})") from None


def load_keyring(path: Path) -> Keyring:
    """Read the keyring; refuse one that others can read."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyringError(f"no keyring at {path}: run `exchange init`") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyringError(f"the keyring {path} is readable by other users: chmod 600 it")
    try:
        return Keyring.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as exc:
        raise KeyringError(f"the keyring {path} cannot be read ({type(exc).__name__})") from None


def save_keyring(path: Path, keyring: Keyring) -> None:
    """Write the keyring atomically with mode 0600."""
    write_secret_file(path, json.dumps(keyring.to_json(), indent=2).encode("utf-8"))


@contextmanager
def keyring_changing(path: Path) -> Iterator[None]:
    """The keyring at `path` changed by this process alone for the block (an exclusive
    `flock` on a lock file beside it). Two rotations at once would each add "the next"
    KEK version and the later save would drop the other's, with the keys it had wrapped:
    their documents could never be opened again. A second one waits its turn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.with_name(f".{path.name}.lock")):
        yield


def write_secret_file(path: Path, content: bytes) -> None:
    """Write a file only the owner can read, atomically (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, [content])
