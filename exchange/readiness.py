"""Readiness probes of the document store and key provider (`/readyz`).

Only the embedded backends (file store, local keyring) exist so far; a deployment
configured for S3, AWS KMS or Vault is reported not ready rather than pretended ready.
"""

from __future__ import annotations

import os

from exchange.crypto.keyring import KeyringError, load_keyring
from exchange.settings import Settings


def check_document_store(settings: Settings) -> str:
    """`ok`, or why the document store cannot take documents."""
    if settings.blob_store != "file":
        return f"the {settings.blob_store} document store is not available in this version"
    blobs = settings.data_dir / "blobs"
    if not blobs.is_dir():
        return "the blob directory is missing: run `exchange init`"
    if not os.access(blobs, os.W_OK | os.X_OK):
        return "the blob directory is not writable"
    return "ok"


def check_key_provider(settings: Settings) -> str:
    """`ok`, or why the key provider cannot wrap or unwrap keys."""
    if settings.key_provider != "local":
        return f"the {settings.key_provider} key provider is not available in this version"
    try:
        load_keyring(settings.keyring_path)
    except KeyringError as exc:
        return str(exc)
    return "ok"
