"""Documents through the API on both stores (file, and S3 on SeaweedFS): byte-identical
round trips with the right Repr-Digest, up to 300 MiB (the large one in the slow suite)."""

from __future__ import annotations

import base64
import hashlib
import io
import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from exchange.app import create_app
from exchange.db import Database
from exchange.settings import Settings
from tests.conftest import Tokens
from tests.factories import FrozenClock, pdf_bytes
from tests.servers import S3Server, seaweedfs

PROVIDER = "prv01-epr"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs-api")) as server:
        yield server


@pytest.fixture(params=["file", "s3"])
def store_settings(
    request: pytest.FixtureRequest, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    if request.param == "file":
        return replace(settings, max_document_bytes=400 * MIB)
    server: S3Server = request.getfixturevalue("s3_server")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"exchange-{os.urandom(4).hex()}"
    server.client().create_bucket(Bucket=bucket)
    return replace(
        settings,
        blob_store="s3",
        s3_bucket=bucket,
        s3_endpoint_url=server.endpoint,
        max_document_bytes=400 * MIB,
    )


def _round_trip(store_settings: Settings, db: Database, clock: FrozenClock, size: int) -> None:
    app = create_app(store_settings, clock=clock, database=db)
    http = app.test_client()
    tokens = Tokens(http, clock)
    if size >= 16:
        data, content_type = pdf_bytes(size), "application/pdf"
    else:
        data, content_type = b"x" * size, "text/plain"
    created = http.post(
        "/fhir/Binary",
        input_stream=io.BytesIO(data),
        headers={
            **tokens.headers(PROVIDER),
            "Content-Type": content_type,
            "Content-Length": str(size),
        },
    )
    assert created.status_code == 201, created.get_json()
    response = http.get(
        f"/fhir/Binary/{created.get_json()['id']}", headers=tokens.headers(PROVIDER), buffered=False
    )
    digest = hashlib.sha256()
    received = 0
    for piece in response.response:
        digest.update(piece)
        received += len(piece)
    response.close()
    assert received == size
    assert digest.digest() == hashlib.sha256(data).digest()
    assert (
        response.headers["Repr-Digest"] == f"sha-256=:{base64.b64encode(digest.digest()).decode()}:"
    )


@pytest.mark.parametrize("size", [1, 64 * 1024 - 1, 64 * 1024 + 1, 5 * MIB])
def test_round_trip(
    store_settings: Settings, db: Database, clock: FrozenClock, world: None, size: int
) -> None:
    _round_trip(store_settings, db, clock, size)


@pytest.mark.slow
def test_round_trip_300_mib(
    store_settings: Settings, db: Database, clock: FrozenClock, world: None
) -> None:
    _round_trip(store_settings, db, clock, 300 * MIB)


def test_zero_bytes_is_refused(
    store_settings: Settings, db: Database, clock: FrozenClock, world: Any
) -> None:
    http = create_app(store_settings, clock=clock, database=db).test_client()
    response = http.post(
        "/fhir/Binary",
        data=b"",
        headers={**Tokens(http, clock).headers(PROVIDER), "Content-Type": "application/pdf"},
    )
    assert response.status_code == 400
