"""Key providers backed by a key service: AWS KMS (`aws-kms`) and HashiCorp Vault /
OpenBao transit (`vault-transit`). Both bind each data key to its object: KMS through the
encryption context, transit through a derived key (context = the object id), so a wrapped
key unwraps only for the object it was made for."""

from __future__ import annotations

import base64
from typing import Any, Final

import boto3
import hvac
from botocore.exceptions import BotoCoreError, ClientError
from hvac.exceptions import VaultError

from exchange.crypto.keys import KeyServiceUnavailable, KeyUnwrapError, WrappedKey

_CONTEXT_KEY: Final = "exchange:object"


class AwsKmsKeyProvider:
    """Data keys from KMS `GenerateDataKey`, unwrapped with `Decrypt`."""

    def __init__(
        self, key_id: str, endpoint_url: str | None = None, client: Any | None = None
    ) -> None:
        self._key_id = key_id
        self._kms = client or boto3.session.Session().client("kms", endpoint_url=endpoint_url)

    def new_data_key(self, context: str) -> tuple[bytes, WrappedKey]:
        """A fresh AES-256 data key bound to `context` by the encryption context."""
        try:
            answer = self._kms.generate_data_key(
                KeyId=self._key_id, KeySpec="AES_256", EncryptionContext={_CONTEXT_KEY: context}
            )
        except (ClientError, BotoCoreError) as error:
            raise KeyServiceUnavailable(
                f"KMS did not make a data key ({type(error).__name__})"
            ) from None
        return bytes(answer["Plaintext"]), WrappedKey(
            bytes(answer["CiphertextBlob"]), f"aws-kms:{answer['KeyId']}"
        )

    def unwrap(self, key: WrappedKey, context: str) -> bytes:
        """KMS `Decrypt` with the object's encryption context."""
        kind, _, key_id = key.key_ref.partition(":")
        if kind != "aws-kms":
            raise KeyUnwrapError("the data key was not wrapped by AWS KMS")
        try:
            answer = self._kms.decrypt(
                CiphertextBlob=key.wrapped, KeyId=key_id, EncryptionContext={_CONTEXT_KEY: context}
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in (
                "InvalidCiphertextException",
                "IncorrectKeyException",
                "AccessDeniedException",
            ):
                raise KeyUnwrapError("KMS refused to unwrap the data key for this object") from None
            raise KeyServiceUnavailable(f"KMS did not answer ({code})") from None
        except BotoCoreError as error:
            raise KeyServiceUnavailable(f"KMS did not answer ({type(error).__name__})") from None
        return bytes(answer["Plaintext"])


class VaultTransitKeyProvider:
    """Data keys from transit `datakey/plaintext` on a derived key, unwrapped with `decrypt`."""

    def __init__(
        self,
        address: str,
        key_name: str,
        token: str | None = None,
        role_id: str | None = None,
        secret_id: str | None = None,
    ) -> None:
        self._key = key_name
        self._client = hvac.Client(url=address, token=token, timeout=10)
        if token is None and role_id and secret_id:
            self._client.auth.approle.login(role_id=role_id, secret_id=secret_id)

    def ensure_key(self) -> None:
        """Create the transit key (derived, so every object gets its own) if missing."""
        try:
            self._client.secrets.transit.create_key(
                name=self._key, derived=True, key_type="aes256-gcm96"
            )
        except VaultError as error:
            raise KeyServiceUnavailable(
                f"Vault did not create the transit key ({type(error).__name__})"
            ) from None

    def read_key(self) -> None:
        """Raise unless the transit key exists and this token may use it (readiness)."""
        self._client.secrets.transit.read_key(name=self._key)

    @staticmethod
    def _context(context: str) -> str:
        return base64.b64encode(context.encode("utf-8")).decode("ascii")

    def new_data_key(self, context: str) -> tuple[bytes, WrappedKey]:
        """A fresh 256-bit data key wrapped by the object's derived transit key."""
        try:
            answer = self._client.secrets.transit.generate_data_key(
                name=self._key, key_type="plaintext", context=self._context(context), bits=256
            )
        except VaultError as error:
            raise KeyServiceUnavailable(
                f"Vault did not make a data key ({type(error).__name__})"
            ) from None
        data = answer["data"]
        return base64.b64decode(data["plaintext"]), WrappedKey(
            data["ciphertext"].encode("ascii"), f"vault-transit:{self._key}"
        )

    def unwrap(self, key: WrappedKey, context: str) -> bytes:
        """Transit `decrypt` with the object's context."""
        kind, _, name = key.key_ref.partition(":")
        if kind != "vault-transit":
            raise KeyUnwrapError("the data key was not wrapped by Vault transit")
        try:
            answer = self._client.secrets.transit.decrypt_data(
                name=name, ciphertext=key.wrapped.decode("ascii"), context=self._context(context)
            )
        except hvac.exceptions.InvalidRequest:
            raise KeyUnwrapError("Vault refused to unwrap the data key for this object") from None
        except VaultError as error:
            raise KeyServiceUnavailable(f"Vault did not answer ({type(error).__name__})") from None
        return base64.b64decode(answer["data"]["plaintext"])
