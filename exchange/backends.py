"""The document store and key provider the settings choose, and their readiness probes.

Each backend sits behind a small interface (`storage.blobs.BlobStore`,
`crypto.keys.KeyProvider`); this is the one place that knows which one is configured.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from typing import Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from hvac.exceptions import VaultError
from requests import RequestException
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from exchange.audit.chain import UNSEALED_ALARM_AGE, oldest_unsealed
from exchange.crypto.cloud_keys import AwsKmsKeyProvider, VaultTransitKeyProvider
from exchange.crypto.keyring import KeyringError, load_keyring
from exchange.crypto.keys import KeyProvider, LocalKeyProvider
from exchange.db import Database
from exchange.settings import Settings
from exchange.storage.blobs import BlobStore, FileBlobStore
from exchange.storage.s3 import S3BlobStore

_PROBE = Config(
    connect_timeout=2, read_timeout=3, retries={"max_attempts": 1}, s3={"addressing_style": "path"}
)


def blob_store(settings: Settings) -> BlobStore:
    """The configured document store."""
    if settings.blob_store == "s3":
        return S3BlobStore(settings.s3_bucket or "", settings.s3_prefix, settings.s3_endpoint_url)
    return FileBlobStore(settings.data_dir / "blobs")


def key_provider(settings: Settings) -> KeyProvider:
    """The configured key provider (the local keyring is read now)."""
    if settings.key_provider == "aws-kms":
        return AwsKmsKeyProvider(settings.kms_key_id or "", settings.kms_endpoint_url)
    if settings.key_provider == "vault-transit":
        return VaultTransitKeyProvider(
            settings.vault_addr or "",
            settings.vault_transit_key or "",
            settings.vault_token,
            settings.vault_role_id,
            settings.vault_secret_id,
        )
    return LocalKeyProvider.from_file(settings.keyring_path)


#: Less free space than this where the file store keeps its blobs, and readiness says the
#: store is full: uploads would fail (503); reads still work.
LOW_SPACE: Final = 16 * 1024 * 1024


def check_document_store(settings: Settings) -> str:
    """`ok`, or why the document store cannot take documents (for `/readyz`)."""
    if settings.blob_store == "s3":
        client = boto3.session.Session().client(
            "s3", endpoint_url=settings.s3_endpoint_url, config=_PROBE
        )
        try:
            client.head_bucket(Bucket=settings.s3_bucket)
        except ClientError as error:
            return (
                "the S3 bucket is not usable "
                f"({error.response.get('Error', {}).get('Code', 'error')})"
            )
        except BotoCoreError as error:
            return f"the S3 endpoint does not answer ({type(error).__name__})"
        return "ok"
    blobs = settings.data_dir / "blobs"
    if not blobs.is_dir():
        return "the blob directory is missing: run `exchange init`"
    if not os.access(blobs, os.W_OK | os.X_OK):
        return "the blob directory is not writable"
    free = shutil.disk_usage(blobs).free
    if free < LOW_SPACE:
        return f"the blob directory's file system is full ({free // (1024 * 1024)} MiB free)"
    return "ok"


def check_key_provider(settings: Settings) -> str:
    """`ok`, or why the key provider cannot wrap or unwrap keys (for `/readyz`)."""
    if settings.key_provider == "aws-kms":
        client = boto3.session.Session().client(
            "kms", endpoint_url=settings.kms_endpoint_url, config=_PROBE
        )
        try:
            state = client.describe_key(KeyId=settings.kms_key_id)["KeyMetadata"].get("KeyState")
        except ClientError as error:
            return (
                "the KMS key is not usable "
                f"({error.response.get('Error', {}).get('Code', 'error')})"
            )
        except BotoCoreError as error:
            return f"KMS does not answer ({type(error).__name__})"
        return "ok" if state in (None, "Enabled") else f"the KMS key is {state}"
    if settings.key_provider == "vault-transit":
        try:
            provider = VaultTransitKeyProvider(
                settings.vault_addr or "",
                settings.vault_transit_key or "",
                settings.vault_token,
                settings.vault_role_id,
                settings.vault_secret_id,
            )
            provider.read_key()
        except (VaultError, RequestException) as error:
            return f"Vault transit is not usable ({type(error).__name__})"
        return "ok"
    try:
        load_keyring(settings.keyring_path)
    except KeyringError as exc:
        return str(exc)
    return "ok"


def check_database(database: Database, now: datetime) -> dict[str, str]:
    """`ok`, or what is wrong, for the database and for the audit sealer keeping up."""
    try:
        with database.transaction() as session:
            session.execute(text("SELECT 1"))
            oldest = oldest_unsealed(session)
    except SQLAlchemyError:
        return {"database": "unreachable"}
    lag = now - oldest if oldest is not None else None
    sealer = (
        "ok"
        if lag is None or lag <= UNSEALED_ALARM_AGE
        else "unsealed audit records older than a minute"
    )
    return {"database": "ok", "audit-sealer": sealer}


def readiness(settings: Settings, database: Database, now: datetime) -> dict[str, str]:
    """Every part the service needs, `ok` or why not (`/readyz`)."""
    return {
        **check_database(database, now),
        "document-store": check_document_store(settings),
        "key-provider": check_key_provider(settings),
    }
