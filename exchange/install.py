"""`exchange init`: everything a data directory and database need before the first start."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from exchange import migrate
from exchange.clock import Clock
from exchange.crypto.keyring import Keyring, save_keyring, write_secret_file
from exchange.settings import Settings


def initialise(settings: Settings, clock: Clock) -> list[str]:
    """Create or migrate what is missing; return what was done. Idempotent."""
    done = prepare_data_directory(settings, clock)
    before = migrate.current_revision(settings.database_url)
    migrate.upgrade(settings.database_url)
    after = migrate.current_revision(settings.database_url)
    if before != after:
        done.append(f"migrated database from {before or 'empty'} to {after}")
    if settings.is_sqlite:
        # The embedded database holds personal data: owner-only, like the keyring.
        for suffix in ("", "-wal", "-shm"):
            database_file = Path(settings.database_url.removeprefix("sqlite:///") + suffix)
            if database_file.exists():
                os.chmod(database_file, 0o600)
    return done


def prepare_data_directory(settings: Settings, clock: Clock) -> list[str]:
    """Create the data directory, document store, keyring and console secret if missing."""
    done: list[str] = []
    data_dir = settings.data_dir
    if not data_dir.is_dir():
        data_dir.mkdir(parents=True, mode=0o700)
        done.append(f"created data directory {data_dir}")
    os.chmod(data_dir, 0o700)
    blobs = data_dir / "blobs"
    if not blobs.is_dir():
        blobs.mkdir(mode=0o700)
        done.append(f"created document store {blobs}")
    if settings.key_provider == "local" and not settings.keyring_path.exists():
        save_keyring(settings.keyring_path, Keyring.generate(clock.now()))
        done.append(f"created keyring {settings.keyring_path} (KEK v1, audit signing key)")
    if not settings.console_secret_path.exists():
        write_secret_file(settings.console_secret_path, secrets.token_hex(32).encode("ascii"))
        done.append(f"created console secret {settings.console_secret_path}")
    return done
