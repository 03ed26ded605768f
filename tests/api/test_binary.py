"""`Binary` over HTTP: streaming upload and download with the headers of documents.md,
refusals that store nothing, tampered content refused and audited."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from exchange.app import create_app
from exchange.audit.models import AuditRecord
from exchange.db import Database
from exchange.documents.models import BinaryRow
from exchange.settings import Settings
from tests.conftest import Tokens
from tests.factories import FrozenClock, pdf_bytes

PROVIDER, LA = "prv01-epr", "la01-case-system"


def pdf(size: int) -> bytes:
    return pdf_bytes(size)


def upload(
    client: FlaskClient,
    tokens: Tokens,
    data: bytes,
    content_type: str = "application/pdf",
    who: str = PROVIDER,
    **headers: str,
) -> Any:
    return client.post(
        "/fhir/Binary",
        data=data,
        headers={**tokens.headers(who), "Content-Type": content_type, **headers},
    )


def _blobs(settings: Settings) -> list[Path]:
    return [p for p in (settings.data_dir / "blobs").rglob("*") if p.is_file()]


@pytest.mark.parametrize("size", [1, 64 * 1024 - 1, 64 * 1024 + 1, 5 * 1024 * 1024])
def test_upload_and_download(client: FlaskClient, tokens: Tokens, size: int) -> None:
    data = pdf(size) if size >= 16 else b"x" * size
    content_type = "application/pdf" if size >= 16 else "text/plain"
    created = upload(
        client, tokens, data, content_type, **{"X-Content-SHA256": hashlib.sha256(data).hexdigest()}
    )
    assert created.status_code == 201, created.get_json()
    binary = created.get_json()
    assert binary["resourceType"] == "Binary" and "data" not in binary
    assert created.headers["Location"].endswith(f"/fhir/Binary/{binary['id']}/_history/1")
    read = client.get(f"/fhir/Binary/{binary['id']}", headers=tokens.headers(PROVIDER))
    assert read.status_code == 200
    assert read.data == data
    assert read.headers["Content-Type"].startswith(content_type)
    assert read.headers["Content-Length"] == str(size)
    assert read.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert (
        read.headers["Repr-Digest"]
        == f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:"
    )
    assert read.headers["Content-Disposition"].startswith("attachment; filename=")
    assert read.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "accept", ["*/*", "application/pdf", "application/octet-stream", "application/*"]
)
def test_raw_bytes_unless_fhir_json_is_asked_for(
    client: FlaskClient, tokens: Tokens, accept: str
) -> None:
    data = pdf(3000)
    binary_id = upload(client, tokens, data).get_json()["id"]
    read = client.get(
        f"/fhir/Binary/{binary_id}", headers={**tokens.headers(PROVIDER), "Accept": accept}
    )
    assert read.data == data


def test_fhir_json_form(client: FlaskClient, tokens: Tokens) -> None:
    data = pdf(2000)
    binary_id = upload(client, tokens, data).get_json()["id"]
    read = client.get(
        f"/fhir/Binary/{binary_id}",
        headers={**tokens.headers(PROVIDER), "Accept": "application/fhir+json"},
    )
    assert read.get_json()["contentType"] == "application/pdf"
    assert base64.b64decode(read.get_json()["data"]) == data


def test_only_the_uploader_reads_an_unattached_binary(client: FlaskClient, tokens: Tokens) -> None:
    binary_id = upload(client, tokens, pdf(100)).get_json()["id"]
    assert client.get(f"/fhir/Binary/{binary_id}", headers=tokens.headers(LA)).status_code == 404
    assert client.get(f"/fhir/Binary/{binary_id}").status_code == 401
    assert (
        client.get(
            f"/fhir/Binary/{binary_id}", headers=tokens.headers(PROVIDER, "system/Patient.rs")
        ).status_code
        == 403
    )


@pytest.mark.parametrize(
    ("data", "content_type", "headers", "status"),
    [
        (b"", "application/pdf", {}, 400),
        (
            b"MZ\x90\x00\x03" + os.urandom(3000),
            "application/pdf",
            {},
            415,
        ),  # an executable labelled PDF
        (b"%PDF-1.7 ...", "application/x-msdownload", {}, 415),
        (b"\xff\xfe\x00t\x00e", "text/plain", {}, 415),
        (pdf_bytes(200), "application/pdf", {"X-Content-SHA256": "0" * 64}, 422),
        (pdf_bytes(200), "application/pdf", {"X-Content-SHA256": "zz"}, 400),
    ],
)
def test_refused_uploads_store_nothing(
    client: FlaskClient,
    tokens: Tokens,
    settings: Settings,
    db: Database,
    data: bytes,
    content_type: str,
    headers: dict[str, str],
    status: int,
) -> None:
    response = upload(client, tokens, data, content_type, **headers)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert _blobs(settings) == []


def test_too_large_is_413_and_stores_nothing(
    db: Database, clock: FrozenClock, settings: Settings, world: None
) -> None:
    app = create_app(replace(settings, max_document_bytes=100_000), clock=clock, database=db)
    http = app.test_client()
    response = upload(http, Tokens(http, clock), pdf(100_001))
    assert response.status_code == 413
    assert _blobs(settings) == []


def _flip(blob: Path, _other: Path) -> None:
    damaged = bytearray(blob.read_bytes())
    damaged[40] ^= 0x04
    blob.write_bytes(bytes(damaged))


def _truncate(blob: Path, _other: Path) -> None:
    blob.write_bytes(blob.read_bytes()[:-7])


def _swap(blob: Path, other: Path) -> None:
    first, second = blob.read_bytes(), other.read_bytes()
    blob.write_bytes(second)
    other.write_bytes(first)


def _remove(blob: Path, _other: Path) -> None:
    blob.unlink()


@pytest.mark.parametrize(
    "tamper",
    [_flip, _truncate, _swap, _remove],
    ids=["flipped-bit", "truncated", "swapped-blobs", "removed-blob"],
)
def test_tampered_content_is_refused_and_audited(
    client: FlaskClient, tokens: Tokens, settings: Settings, db: Database, tamper: Any
) -> None:
    binary_id = upload(client, tokens, pdf(5000)).get_json()["id"]
    other_id = upload(client, tokens, pdf(5000)).get_json()["id"]
    with db.transaction() as session:
        blobs = {str(r.id): r.blob_name for r in session.scalars(select(BinaryRow))}
    path = settings.data_dir / "blobs" / blobs[binary_id][:2] / blobs[binary_id]
    other = settings.data_dir / "blobs" / blobs[other_id][:2] / blobs[other_id]
    tamper(path, other)
    response = client.get(f"/fhir/Binary/{binary_id}", headers=tokens.headers(PROVIDER))
    assert response.status_code == 500
    assert b"%PDF" not in response.data
    with db.transaction() as session:
        payloads = [
            json.loads(p)
            for p in session.scalars(select(AuditRecord.payload).where(AuditRecord.outcome == "8"))
        ]
    assert payloads[-1]["outcomeDesc"] == "corrupted"
    assert payloads[-1]["entity"][0]["what"]["reference"] == f"Binary/{binary_id}"


def test_data_key_wrapped_for_another_document_is_refused_and_audited(
    client: FlaskClient, tokens: Tokens, db: Database
) -> None:
    binary_id = upload(client, tokens, pdf(5000)).get_json()["id"]
    other_id = upload(client, tokens, pdf(5000)).get_json()["id"]
    with db.transaction() as session:
        one, two = (
            session.get(BinaryRow, uuid.UUID(binary_id)),
            session.get(BinaryRow, uuid.UUID(other_id)),
        )
        assert one is not None and two is not None
        one.wrapped_key, two.wrapped_key = two.wrapped_key, one.wrapped_key
    response = client.get(f"/fhir/Binary/{binary_id}", headers=tokens.headers(PROVIDER))
    assert response.status_code == 500
    with db.transaction() as session:
        payloads = [
            json.loads(p)
            for p in session.scalars(select(AuditRecord.payload).where(AuditRecord.outcome == "8"))
        ]
    assert payloads[-1]["outcomeDesc"] == "corrupted"


def test_a_key_provider_that_cannot_answer_is_503_and_stores_nothing(
    client: FlaskClient, tokens: Tokens, settings: Settings, db: Database
) -> None:
    settings.keyring_path.unlink()
    response = upload(client, tokens, pdf(5000))
    assert response.status_code == 503
    assert response.get_json()["issue"][0]["code"] == "transient"
    assert _blobs(settings) == []
    with db.transaction() as session:
        assert session.scalars(select(BinaryRow)).all() == []


def test_a_read_when_the_key_provider_cannot_answer_is_503(
    client: FlaskClient, tokens: Tokens, settings: Settings, db: Database, clock: FrozenClock
) -> None:
    binary_id = upload(client, tokens, pdf(5000)).get_json()["id"]
    settings.keyring_path.unlink()
    restarted = create_app(
        settings, clock=clock, database=db
    ).test_client()  # its keys not yet loaded
    response = restarted.get(
        f"/fhir/Binary/{binary_id}", headers=Tokens(restarted, clock).headers(PROVIDER)
    )
    assert response.status_code == 503
    assert b"%PDF" not in response.data
    with db.transaction() as session:
        outcomes = [
            json.loads(p)["outcome"]
            for p in session.scalars(
                select(AuditRecord.payload)
                .where(AuditRecord.kind == "rest:read")
                .order_by(AuditRecord.id)
            )
        ]
    assert outcomes == ["0", "8"]  # the read was allowed (and audited first); serving it failed
