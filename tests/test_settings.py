"""Settings.from_env: defaults, `.env`, and an invalid value naming its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.settings import RateLimit, Settings, SettingsError
from exchange.storage.s3 import LARGEST_DOCUMENT, PART_SIZE


def test_defaults(tmp_path: Path) -> None:
    settings = Settings.from_env({}, dotenv_path=tmp_path / "none")
    assert settings.data_dir == Path("var")
    assert settings.database_url == "sqlite:///var/exchange.db"
    assert settings.public_base_url == "http://127.0.0.1:8000"
    assert settings.token_url == "http://127.0.0.1:8000/oauth2/token"
    assert (settings.blob_store, settings.key_provider) == ("file", "local")
    assert settings.max_document_bytes == 100 * 1024**2
    assert settings.rate_limit == RateLimit(50.0, 200)
    assert (settings.log_level, settings.log_format) == ("INFO", "json")


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = Settings.from_env({}, dotenv_path=tmp_path / "none")
    with pytest.raises(AttributeError):
        settings.data_dir = Path("/elsewhere")  # type: ignore[misc]


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("EXCHANGE_DATA_DIR=/srv/from-dotenv\nEXCHANGE_LOG_FORMAT=text\n")
    settings = Settings.from_env({"EXCHANGE_LOG_FORMAT": "json"}, dotenv_path=dotenv)
    assert settings.data_dir == Path("/srv/from-dotenv")
    assert settings.database_url == "sqlite:////srv/from-dotenv/exchange.db"
    assert settings.log_format == "json"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("100MiB", 100 * 1024**2), ("1GiB", 1024**3), ("5000", 5000), ("64 KiB", 65536)],
)
def test_document_size(value: str, expected: int, tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"EXCHANGE_MAX_DOCUMENT_BYTES": value}, dotenv_path=tmp_path / "none"
    )
    assert settings.max_document_bytes == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("50:200", RateLimit(50, 200)),
        ("10/s:20", RateLimit(10, 20)),
        ("5", RateLimit(5, 20)),
        ("off", RateLimit(0, 0)),
    ],
)
def test_rate_limit(value: str, expected: RateLimit, tmp_path: Path) -> None:
    assert (
        Settings.from_env({"EXCHANGE_RATE_LIMIT": value}, dotenv_path=tmp_path / "none").rate_limit
        == expected
    )


@pytest.mark.parametrize(
    ("environment", "variable"),
    [
        ({"EXCHANGE_DATABASE_URL": "mysql://x"}, "EXCHANGE_DATABASE_URL"),
        ({"EXCHANGE_PUBLIC_BASE_URL": "ftp://x"}, "EXCHANGE_PUBLIC_BASE_URL"),
        ({"EXCHANGE_BLOB_STORE": "tape"}, "EXCHANGE_BLOB_STORE"),
        ({"EXCHANGE_BLOB_STORE": "s3"}, "EXCHANGE_S3_BUCKET"),
        ({"EXCHANGE_KEY_PROVIDER": "hsm"}, "EXCHANGE_KEY_PROVIDER"),
        ({"EXCHANGE_KEY_PROVIDER": "aws-kms"}, "EXCHANGE_KMS_KEY_ID"),
        (
            {"EXCHANGE_KEY_PROVIDER": "vault-transit", "EXCHANGE_VAULT_TRANSIT_KEY": "k"},
            "EXCHANGE_VAULT_ADDR",
        ),
        (
            {
                "EXCHANGE_KEY_PROVIDER": "vault-transit",
                "EXCHANGE_VAULT_ADDR": "http://v",
                "EXCHANGE_VAULT_TRANSIT_KEY": "k",
            },
            "EXCHANGE_VAULT_TOKEN",
        ),
        ({"EXCHANGE_MAX_DOCUMENT_BYTES": "-1"}, "EXCHANGE_MAX_DOCUMENT_BYTES"),
        ({"EXCHANGE_MAX_DOCUMENT_BYTES": "1TB"}, "EXCHANGE_MAX_DOCUMENT_BYTES"),
        (
            {
                "EXCHANGE_BLOB_STORE": "s3",
                "EXCHANGE_S3_BUCKET": "b",
                "EXCHANGE_MAX_DOCUMENT_BYTES": "65GiB",
            },
            "EXCHANGE_MAX_DOCUMENT_BYTES",
        ),
        ({"EXCHANGE_RATE_LIMIT": "fast"}, "EXCHANGE_RATE_LIMIT"),
        ({"EXCHANGE_LOG_LEVEL": "LOUD"}, "EXCHANGE_LOG_LEVEL"),
        ({"EXCHANGE_LOG_FORMAT": "xml"}, "EXCHANGE_LOG_FORMAT"),
        ({"EXCHANGE_PROXY_HOPS": "many"}, "EXCHANGE_PROXY_HOPS"),
    ],
)
def test_invalid_values_name_the_variable(
    environment: dict[str, str], variable: str, tmp_path: Path
) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env(environment, dotenv_path=tmp_path / "none")


def test_vault_approle_is_enough(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "EXCHANGE_KEY_PROVIDER": "vault-transit",
            "EXCHANGE_VAULT_ADDR": "http://127.0.0.1:8200",
            "EXCHANGE_VAULT_TRANSIT_KEY": "exchange",
            "EXCHANGE_VAULT_ROLE_ID": "role",
            "EXCHANGE_VAULT_SECRET_ID": "secret",
        },
        dotenv_path=tmp_path / "none",
    )
    assert "secret" not in repr(settings)


def test_the_largest_document_s3_takes(tmp_path: Path) -> None:
    """64 GiB is S3's ceiling (10,000 parts of 8 MiB, with room for the encryption's
    framing); the file store has none of its own."""
    s3 = {"EXCHANGE_BLOB_STORE": "s3", "EXCHANGE_S3_BUCKET": "b"}
    largest = Settings.from_env(
        {**s3, "EXCHANGE_MAX_DOCUMENT_BYTES": "64GiB"}, dotenv_path=tmp_path / "none"
    )
    assert largest.max_document_bytes == 64 * 1024**3 == LARGEST_DOCUMENT
    assert 10_000 * PART_SIZE > LARGEST_DOCUMENT * 1.01
    files = Settings.from_env(
        {"EXCHANGE_MAX_DOCUMENT_BYTES": "65GiB"}, dotenv_path=tmp_path / "none"
    )
    assert files.max_document_bytes == 65 * 1024**3
