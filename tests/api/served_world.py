"""A served instance of the test world for black-box suites (the bad-input corpus, the
OpenAPI fuzz run): `exchange serve` with rate limits off, tokens from its real token
endpoint, a child registered through the API, and what the instance has stored."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select, text

from exchange.audit.models import AuditRecord
from exchange.auth.client import request_token
from exchange.db import Database, make_engine
from tests.conftest import world_client
from tests.factories import consent_json, nhs_number, patient_json, task_json
from tests.server import world_server

#: What a request can leave behind: every resource table, every version, tokens.
STORED_TABLES = (
    "patient",
    "patient_access",
    "consent",
    "task",
    "task_party",
    "document_reference",
    "binary",
    "resource_version",
    "access_token",
)
TOKEN_REUSE_SECONDS = 240  # access tokens live 300 s


@dataclass
class ServedWorld:
    """A served instance, the child set up in it (ids and NHS number), and cached tokens."""

    base: str
    database_url: str
    data_dir: Path
    child: dict[str, str] = field(default_factory=dict)
    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict)

    def bearer(self, client_id: str) -> dict[str, str]:
        """An Authorization header for a world client, renewed before the token expires."""
        cached = self._tokens.get(client_id)
        if cached is not None and time.monotonic() - cached[1] <= TOKEN_REUSE_SECONDS:
            token = cached[0]
        else:
            answer = request_token(
                client_id, world_client(client_id).key, f"{self.base}/oauth2/token"
            )
            token = answer["access_token"]
            self._tokens[client_id] = (token, time.monotonic())
        return {"Authorization": f"Bearer {token}"}

    def stored(self) -> dict[str, int]:
        """How many rows each resource table holds, and how many files the blob store holds."""
        engine = make_engine(self.database_url)
        try:
            with engine.connect() as connection:
                counts = {
                    table: connection.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one()
                    for table in STORED_TABLES
                }
        finally:
            engine.dispose()
        counts["blob files"] = sum(
            1 for path in (self.data_dir / "blobs").rglob("*") if path.is_file()
        )
        return counts


def register_child(world: ServedWorld) -> dict[str, str]:
    """The LA registers a child, records a parent's consent and asks PRV01 for advice."""
    la = world.bearer("la01-everything")
    number = nhs_number(4201)

    def created(path: str, resource: dict[str, Any]) -> str:
        response = requests.post(f"{world.base}/fhir/{path}", json=resource, headers=la, timeout=30)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    patient_id = created("Patient", patient_json(number, "2015-03-02"))
    consent_id = created("Consent", consent_json(patient_id, "2026-10-01T10:00:00+01:00"))
    task_id = created("Task", task_json(patient_id))
    return {
        "patient_id": patient_id,
        "consent_id": consent_id,
        "task_id": task_id,
        "registered_nhs_number": number,
    }


@contextmanager
def served_world(directory: Path, database_url: str) -> Iterator[ServedWorld]:
    """Serve the test world with rate limits off (black-box suites send faster than the
    default per-client limit allows) and register a child in it."""
    with world_server(
        directory, database_url, EXCHANGE_RATE_LIMIT="off", EXCHANGE_TOKEN_RATE_LIMIT="off"
    ) as base:
        world = ServedWorld(base, database_url, directory / "var")
        world.child = register_child(world)
        yield world


@dataclass(frozen=True)
class Answered:
    """One of `gets_at_once`' requests: its status, and its audit records as they stood
    in the database the moment its answer arrived."""

    request_id: str
    status: int
    records: list[AuditRecord]


def gets_at_once(
    base: str, database_url: str, path: str, headers: dict[str, str], count: int = 64
) -> list[Answered]:
    """`count` GETs of `path` from eight clients at once, each sending its own
    `X-Request-ID` (`{request_id}` in a header value is replaced by it)."""
    database = Database(database_url)

    def get(_: int) -> Answered:
        request_id = str(uuid.uuid4())
        sent = {name: value.replace("{request_id}", request_id) for name, value in headers.items()}
        with requests.Session() as client:
            answer = client.get(
                f"{base}{path}", headers={**sent, "X-Request-ID": request_id}, timeout=30
            )
        with database.read_session() as session:
            records = list(
                session.scalars(select(AuditRecord).where(AuditRecord.request_id == request_id))
            )
        return Answered(request_id, answer.status_code, records)

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(get, range(count)))
    finally:
        database.dispose()
