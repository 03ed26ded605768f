"""Service configuration, read once from `EXCHANGE_*` environment variables (`operations.md`).

`Settings.from_env()` is the only place the environment is read. An invalid value raises
`SettingsError` naming the variable, and start-up stops there: a service that guessed
its configuration could store documents in the wrong place or talk to the wrong key service.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values

BlobStoreKind = Literal["file", "s3"]
KeyProviderKind = Literal["local", "aws-kms", "vault-transit"]
LogFormat = Literal["json", "text"]

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_RATE_LIMIT = re.compile(
    r"^\s*(?P<rate>\d+(?:\.\d+)?)\s*(?:/\s*s)?\s*(?:[:,]\s*(?P<burst>\d+))?\s*$", re.ASCII
)
_SIZE = re.compile(r"^\s*(?P<n>\d+)\s*(?P<unit>|B|KiB|MiB|GiB)\s*$", re.ASCII)
_SIZE_UNITS = {"": 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


class SettingsError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket: `rate` requests per second sustained, `burst` at once. 0 disables."""

    rate: float
    burst: int

    @property
    def enabled(self) -> bool:
        """Whether requests are limited at all."""
        return self.rate > 0


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service is configured with. Immutable: build a new one to change it."""

    data_dir: Path = Path("./var")
    database_url: str = ""
    public_base_url: str = "http://127.0.0.1:8000"
    blob_store: BlobStoreKind = "file"
    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_endpoint_url: str | None = None
    key_provider: KeyProviderKind = "local"
    kms_key_id: str | None = None
    kms_endpoint_url: str | None = None
    vault_addr: str | None = None
    vault_token: str | None = field(default=None, repr=False)
    vault_role_id: str | None = None
    vault_secret_id: str | None = field(default=None, repr=False)
    vault_transit_key: str | None = None
    max_document_bytes: int = 100 * 1024**2
    rate_limit: RateLimit = RateLimit(rate=50.0, burst=200)
    token_rate_limit: RateLimit = RateLimit(rate=20.0, burst=100)
    log_level: str = "INFO"
    log_format: LogFormat = "json"
    #: How many reverse proxies in front of the service to trust for X-Forwarded-For/-Proto
    #: (0: none, so a client cannot forge its audited address).
    proxy_hops: int = 0

    def __post_init__(self) -> None:
        if not self.database_url:
            object.__setattr__(
                self, "database_url", f"sqlite:///{(self.data_dir / 'exchange.db').as_posix()}"
            )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, dotenv_path: Path | None = None
    ) -> Settings:
        """Read the settings from the environment, over a `.env` file in the working directory.

        Real environment variables win over the `.env` file, as operators expect.
        """
        env: dict[str, str] = {}
        dotenv_file = dotenv_path if dotenv_path is not None else Path.cwd() / ".env"
        if dotenv_file.is_file():
            env.update({k: v for k, v in dotenv_values(dotenv_file).items() if v is not None})
        env.update(os.environ if environ is None else environ)
        return cls._parse(env)

    @classmethod
    def _parse(cls, env: Mapping[str, str]) -> Settings:
        def get(name: str) -> str | None:
            value = env.get(f"EXCHANGE_{name}")
            return value.strip() if value is not None and value.strip() else None

        data_dir = Path(get("DATA_DIR") or "./var")
        database_url = get("DATABASE_URL") or ""
        if database_url and not database_url.startswith(("sqlite", "postgresql")):
            raise SettingsError(
                "EXCHANGE_DATABASE_URL must be a sqlite:/// or postgresql+psycopg:// URL."
            )
        public_base_url = (get("PUBLIC_BASE_URL") or "http://127.0.0.1:8000").rstrip("/")
        parts = urlsplit(public_base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise SettingsError(
                "EXCHANGE_PUBLIC_BASE_URL must be an absolute http(s) URL without a query."
            )
        blob_store = _choice(get("BLOB_STORE") or "file", "EXCHANGE_BLOB_STORE", ("file", "s3"))
        key_provider = _choice(
            get("KEY_PROVIDER") or "local",
            "EXCHANGE_KEY_PROVIDER",
            ("local", "aws-kms", "vault-transit"),
        )
        settings = cls(
            data_dir=data_dir,
            database_url=database_url,
            public_base_url=public_base_url,
            blob_store=blob_store,  # type: ignore[arg-type]
            s3_bucket=get("S3_BUCKET"),
            s3_prefix=get("S3_PREFIX") or "",
            s3_endpoint_url=get("S3_ENDPOINT_URL"),
            key_provider=key_provider,  # type: ignore[arg-type]
            kms_key_id=get("KMS_KEY_ID"),
            kms_endpoint_url=get("KMS_ENDPOINT_URL"),
            vault_addr=get("VAULT_ADDR"),
            vault_token=get("VAULT_TOKEN"),
            vault_role_id=get("VAULT_ROLE_ID"),
            vault_secret_id=get("VAULT_SECRET_ID"),
            vault_transit_key=get("VAULT_TRANSIT_KEY"),
            max_document_bytes=_size(get("MAX_DOCUMENT_BYTES"), "EXCHANGE_MAX_DOCUMENT_BYTES"),
            rate_limit=_rate_limit(get("RATE_LIMIT"), "EXCHANGE_RATE_LIMIT", RateLimit(50.0, 200)),
            token_rate_limit=_rate_limit(
                get("TOKEN_RATE_LIMIT"), "EXCHANGE_TOKEN_RATE_LIMIT", RateLimit(20.0, 100)
            ),
            log_level=_choice(
                (get("LOG_LEVEL") or "INFO").upper(), "EXCHANGE_LOG_LEVEL", _LOG_LEVELS
            ),
            log_format=_choice(  # type: ignore[arg-type]
                (get("LOG_FORMAT") or "json").lower(), "EXCHANGE_LOG_FORMAT", ("json", "text")
            ),
            proxy_hops=_small_count(get("PROXY_HOPS"), "EXCHANGE_PROXY_HOPS"),
        )
        settings._check_backends()
        return settings

    def _check_backends(self) -> None:
        """Refuse a backend chosen without what it needs, before anything is opened."""
        if self.blob_store == "s3":
            from exchange.storage.s3 import LARGEST_DOCUMENT

            if not self.s3_bucket:
                raise SettingsError("EXCHANGE_S3_BUCKET is required when EXCHANGE_BLOB_STORE=s3.")
            if self.max_document_bytes > LARGEST_DOCUMENT:
                raise SettingsError(
                    "EXCHANGE_MAX_DOCUMENT_BYTES must be at most 64GiB when "
                    "EXCHANGE_BLOB_STORE=s3 (S3 takes an object in 10,000 parts at most)."
                )
        if self.key_provider == "aws-kms" and not self.kms_key_id:
            raise SettingsError(
                "EXCHANGE_KMS_KEY_ID is required when EXCHANGE_KEY_PROVIDER=aws-kms."
            )
        if self.key_provider == "vault-transit":
            if not self.vault_addr:
                raise SettingsError(
                    "EXCHANGE_VAULT_ADDR is required when EXCHANGE_KEY_PROVIDER=vault-transit."
                )
            if not self.vault_transit_key:
                raise SettingsError(
                    "EXCHANGE_VAULT_TRANSIT_KEY is required when "
                    "EXCHANGE_KEY_PROVIDER=vault-transit."
                )
            if not self.vault_token and not (self.vault_role_id and self.vault_secret_id):
                raise SettingsError(
                    "EXCHANGE_VAULT_TOKEN (or EXCHANGE_VAULT_ROLE_ID and "
                    "EXCHANGE_VAULT_SECRET_ID) is required when "
                    "EXCHANGE_KEY_PROVIDER=vault-transit."
                )

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is the embedded SQLite default."""
        return self.database_url.startswith("sqlite")

    @property
    def token_url(self) -> str:
        """The exact token endpoint URL client assertions must name as `aud`."""
        return f"{self.public_base_url}/oauth2/token"

    @property
    def keyring_path(self) -> Path:
        """The local keyring file (KEKs, audit signing key), mode 0600."""
        return self.data_dir / "keyring.json"

    @property
    def console_secret_path(self) -> Path:
        """The console's session-signing secret, mode 0600."""
        return self.data_dir / "console-secret"


def _choice(value: str, variable: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise SettingsError(f"{variable} must be one of {', '.join(allowed)} (got {value!r}).")
    return value


def _small_count(value: str | None, variable: str) -> int:
    if value is None:
        return 0
    if not value.isdigit() or int(value) > 5:
        raise SettingsError(f"{variable} must be a whole number from 0 to 5.")
    return int(value)


def _size(value: str | None, variable: str) -> int:
    if value is None:
        return 100 * 1024**2
    match = _SIZE.fullmatch(value)
    if match is None or int(match["n"]) <= 0:
        raise SettingsError(
            f"{variable} must be a positive number of bytes, optionally with B, KiB, MiB or GiB."
        )
    return int(match["n"]) * _SIZE_UNITS[match["unit"]]


def _rate_limit(value: str | None, variable: str, default: RateLimit) -> RateLimit:
    """Parse a rate limit: `50/s:200` or `50:200` (rate, burst), `50`, or `off`."""
    if value is None:
        return default
    if value.lower() in ("off", "0"):
        return RateLimit(rate=0.0, burst=0)
    match = _RATE_LIMIT.fullmatch(value)
    if match is None or float(match["rate"]) <= 0:
        raise SettingsError(
            f"{variable} must be 'RATE[:BURST]' requests per second (e.g. 50:200), or 'off'."
        )
    rate = float(match["rate"])
    burst = int(match["burst"]) if match["burst"] else max(1, int(rate * 4))
    if burst < 1:
        raise SettingsError(f"{variable} burst must be at least 1.")
    return RateLimit(rate=rate, burst=burst)
