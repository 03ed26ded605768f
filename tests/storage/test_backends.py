"""The production backends against real servers on loopback: S3 (SeaweedFS), AWS KMS
(moto's server) and Vault transit (OpenBao)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from exchange.app import create_app
from exchange.backends import blob_store, key_provider
from exchange.crypto.aead import TamperedError, decrypt_stream, encrypt_stream
from exchange.crypto.cloud_keys import AwsKmsKeyProvider, VaultTransitKeyProvider
from exchange.crypto.keys import KeyUnwrapError
from exchange.db import Database
from exchange.settings import Settings
from exchange.storage.blobs import BlobMissing, StorageUnavailable, new_blob_name
from exchange.storage.s3 import IN_FLIGHT, PART_SIZE, S3BlobStore
from tests.factories import FrozenClock
from tests.servers import S3Server, VaultServer, moto_kms, openbao, seaweedfs


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


def _s3_client(server: S3Server, secret: str | None = None) -> object:
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=secret or server.secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


@pytest.fixture
def s3_store(s3_server: S3Server) -> S3BlobStore:
    client = _s3_client(s3_server)
    bucket = f"exchange-{os.urandom(4).hex()}"
    client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    return S3BlobStore(bucket, "blobs", client=client)


@pytest.mark.parametrize(
    "size",
    [1, 64 * 1024 - 1, 64 * 1024 + 1, PART_SIZE + 3 * 1024 * 1024, 3 * PART_SIZE + 5],
)
def test_s3_round_trip_encrypted(s3_store: S3BlobStore, size: int) -> None:
    key, name, data = os.urandom(32), new_blob_name(), os.urandom(size)
    pieces = (data[i : i + 1_000_000] for i in range(0, size, 1_000_000))
    written = s3_store.write(name, encrypt_stream(key, name, pieces))
    assert written > size
    assert b"".join(decrypt_stream(key, name, s3_store.read(name))) == data
    assert name in list(s3_store.names())
    s3_store.delete(name)
    with pytest.raises(BlobMissing):
        s3_store.read(name)


def _open_uploads(store: S3BlobStore) -> list[str]:
    listed = store._s3.list_multipart_uploads(Bucket=store._bucket, Prefix="blobs/")
    return [upload["UploadId"] for upload in listed.get("Uploads", [])]


@pytest.mark.parametrize("size", [64 * 1024 + 1, PART_SIZE + 3 * 1024 * 1024])
def test_s3_object_altered_in_the_bucket_fails_its_tag(
    s3_server: S3Server, s3_store: S3BlobStore, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """The store as the service builds it (its own client, which leaves botocore's CRC32 of
    GET bodies off): an object whose bytes were changed in the bucket (re-uploaded whole,
    so the bucket's own checksums agree with it) is refused by the AEAD on read."""
    for variable, value in s3_server.exchange_env(s3_store._bucket).items():
        monkeypatch.setenv(variable, value)
    store = S3BlobStore(s3_store._bucket, "blobs", endpoint_url=s3_server.endpoint)
    asked: list[str | None] = []
    store._s3.meta.events.register(
        "before-send.s3.GetObject",
        lambda request, **_: asked.append(request.headers.get("x-amz-checksum-mode")),
    )
    key, name, data = os.urandom(32), new_blob_name(), os.urandom(size)
    store.write(name, encrypt_stream(key, name, [data]))
    stored = bytearray(b"".join(store.read(name)))
    stored[len(stored) // 2] ^= 0x01
    s3_store._s3.put_object(Bucket=s3_store._bucket, Key=f"blobs/{name}", Body=bytes(stored))
    with pytest.raises(TamperedError):
        b"".join(decrypt_stream(key, name, store.read(name)))
    assert asked == [None, None]  # no CRC asked of S3: the tag is the check


@contextmanager
def _hooked(store: S3BlobStore, hooks: dict[str, Callable[..., None]]) -> Iterator[None]:
    """boto3's `event: hook`s on the store's client for the block."""
    events = store._s3.meta.events
    for event, hook in hooks.items():
        events.register(event, hook)
    try:
        yield
    finally:
        for event, hook in hooks.items():
            events.unregister(event, hook)


def _part_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("s3-part")]


def test_s3_failed_multipart_upload_leaves_no_object(s3_store: S3BlobStore) -> None:
    """The source failing while parts are on their way: the upload is aborted only once
    every part begun has had its answer (none lands after the abort), leaving neither an
    object, nor an open multipart upload, nor a thread."""
    name = new_blob_name()
    calls: list[str] = []
    hooks = {
        "after-call.s3.UploadPart": lambda **_: calls.append("part answered"),
        "before-call.s3.AbortMultipartUpload": lambda **_: calls.append("abort"),
    }

    def broken() -> Iterator[bytes]:
        for _ in range(3):
            yield os.urandom(PART_SIZE + 10)
        raise ConnectionResetError("the client went away")

    with _hooked(s3_store, hooks), pytest.raises(ConnectionResetError):
        s3_store.write(name, broken())
    assert calls[-1] == "abort" and calls.count("abort") == 1
    assert calls.count("part answered") >= 1
    assert name not in list(s3_store.names())
    assert _open_uploads(s3_store) == []
    assert _part_threads() == []


def test_s3_part_refused_by_the_store_is_unavailable(s3_store: S3BlobStore) -> None:
    """The store refusing a part (here: the multipart upload aborted under the writer by
    someone else) is StorageUnavailable, and no object appears."""
    name = new_blob_name()

    def source() -> Iterator[bytes]:
        yield os.urandom(PART_SIZE + 10)
        for upload in _open_uploads(s3_store):
            s3_store._s3.abort_multipart_upload(
                Bucket=s3_store._bucket, Key=f"blobs/{name}", UploadId=upload
            )
        for _ in range(3):
            yield os.urandom(PART_SIZE)

    with pytest.raises(StorageUnavailable):
        s3_store.write(name, source())
    assert name not in list(s3_store.names())
    assert _open_uploads(s3_store) == []
    assert _part_threads() == []


def test_s3_upload_reads_at_most_a_few_parts_ahead_of_the_store(s3_store: S3BlobStore) -> None:
    """Parts are sent while the next is read, but the writer never holds more than
    `IN_FLIGHT` parts on their way and one being filled: a source far faster than the
    store is read only as fast as the store takes the parts (memory stays flat)."""
    name, piece = new_blob_name(), os.urandom(1024 * 1024)
    stored, ahead, counting = [0], [], threading.Lock()

    def part_stored(**_: object) -> None:  # boto3's event once a part's answer is in
        with counting:
            stored[0] += 1

    pieces = 5 * PART_SIZE // len(piece)

    def source() -> Iterator[bytes]:
        for n in range(pieces):
            ahead.append(n * len(piece) - stored[0] * PART_SIZE)
            yield piece

    with _hooked(s3_store, {"after-call.s3.UploadPart": part_stored}):
        assert s3_store.write(name, source()) == pieces * len(piece)
    assert max(ahead) <= (IN_FLIGHT + 1) * PART_SIZE
    assert max(ahead) >= 2 * PART_SIZE  # it read on while parts were on their way
    s3_store.delete(name)


def test_s3_multipart_uploads_never_finished_are_aborted_past_the_grace(
    s3_store: S3BlobStore,
) -> None:
    """A process killed part-way through a large upload leaves a multipart upload open
    (its parts stored, and billed); the sweeper's `clear_abandoned` aborts it once it is
    older than the grace period given, never a younger one, never a blob."""
    client = s3_store._s3
    blob = new_blob_name()
    s3_store.write(blob, [b"ciphertext"])
    key = f"blobs/{new_blob_name()}"
    started = client.create_multipart_upload(Bucket=s3_store._bucket, Key=key)["UploadId"]
    client.upload_part(
        Bucket=s3_store._bucket, Key=key, UploadId=started, PartNumber=1, Body=b"part"
    )

    assert _open_uploads(s3_store) == [started]
    assert s3_store.clear_abandoned(timedelta(hours=1)) == 0
    assert _open_uploads(s3_store) == [started]
    assert s3_store.clear_abandoned(timedelta(0)) == 1
    assert _open_uploads(s3_store) == []
    assert list(s3_store.names()) == [blob]


def test_s3_enforces_signatures(s3_server: S3Server, s3_store: S3BlobStore) -> None:
    from exchange.storage.blobs import StorageUnavailable

    name = new_blob_name()
    s3_store.write(name, [b"ciphertext"])
    forged = S3BlobStore(
        s3_store._bucket, "blobs", client=_s3_client(s3_server, secret="not-the-secret")
    )
    with pytest.raises(StorageUnavailable):
        forged.read(name)


def test_aws_kms_provider(tmp_path: Path) -> None:
    with moto_kms(tmp_path) as endpoint:
        client = boto3.client(
            "kms",
            endpoint_url=endpoint,
            region_name="eu-west-2",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        key_id = client.create_key(Description="exchange test KEK")["KeyMetadata"]["KeyId"]
        provider = AwsKmsKeyProvider(key_id, client=client)
        data_key, wrapped = provider.new_data_key("binary-1")
        assert len(data_key) == 32
        assert wrapped.key_ref.startswith("aws-kms:")
        assert provider.unwrap(wrapped, "binary-1") == data_key
        with pytest.raises(KeyUnwrapError):
            provider.unwrap(wrapped, "binary-2")  # the encryption context binds the object


def test_vault_transit_provider(tmp_path: Path) -> None:
    with openbao(tmp_path) as vault:
        provider = _vault(vault)
        provider.ensure_key()
        data_key, wrapped = provider.new_data_key("binary-1")
        assert len(data_key) == 32
        assert wrapped.wrapped.startswith(b"vault:v1:")
        assert provider.unwrap(wrapped, "binary-1") == data_key
        with pytest.raises(KeyUnwrapError):
            provider.unwrap(wrapped, "binary-2")  # derived keys: another object's context fails


def _vault(vault: VaultServer) -> VaultTransitKeyProvider:
    return VaultTransitKeyProvider(vault.address, "exchange-test", token=vault.token)


def _ready(settings: Settings, db: Database, clock: FrozenClock) -> tuple[int, dict[str, str]]:
    response = create_app(settings, clock=clock, database=db).test_client().get("/readyz")
    return response.status_code, response.get_json()["checks"]


def test_readiness_probes_s3(
    s3_server: S3Server,
    s3_store: S3BlobStore,
    settings: Settings,
    db: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    configured = replace(
        settings, blob_store="s3", s3_bucket=s3_store._bucket, s3_endpoint_url=s3_server.endpoint
    )
    assert _ready(configured, db, clock) == (
        200,
        {"database": "ok", "document-store": "ok", "key-provider": "ok", "audit-sealer": "ok"},
    )
    status, checks = _ready(replace(configured, s3_bucket="no-such-bucket"), db, clock)
    assert status == 503
    assert checks["document-store"].startswith("the S3 bucket is not usable")
    store = blob_store(configured)
    assert isinstance(store, S3BlobStore)


def test_readiness_probes_kms_and_vault(
    tmp_path: Path,
    settings: Settings,
    db: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-2")
    with moto_kms(tmp_path) as endpoint:
        client = boto3.client(
            "kms",
            endpoint_url=endpoint,
            region_name="eu-west-2",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        key_id = client.create_key()["KeyMetadata"]["KeyId"]
        kms = replace(
            settings, key_provider="aws-kms", kms_key_id=key_id, kms_endpoint_url=endpoint
        )
        assert _ready(kms, db, clock)[0] == 200
        client.disable_key(KeyId=key_id)
        status, checks = _ready(kms, db, clock)
        assert (status, checks["key-provider"]) == (503, "the KMS key is Disabled")
    with openbao(tmp_path) as vault:
        transit = replace(
            settings,
            key_provider="vault-transit",
            vault_addr=vault.address,
            vault_token=vault.token,
            vault_transit_key="exchange-ready",
        )
        status, checks = _ready(transit, db, clock)
        assert status == 503 and checks["key-provider"].startswith("Vault transit is not usable")
        provider = key_provider(transit)
        assert isinstance(provider, VaultTransitKeyProvider)
        provider.ensure_key()
        assert _ready(transit, db, clock)[0] == 200
