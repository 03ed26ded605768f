"""`exchange serve` runs the real service under gunicorn with several workers, and each
worker's background sealer seals audit records within seconds."""

from __future__ import annotations

import time
from pathlib import Path

import requests
from sqlalchemy import select

from exchange.audit.models import AuditRecord
from exchange.audit.service import record
from exchange.clock import SystemClock
from exchange.db import Database
from tests.cli_runner import exchange
from tests.factories import EXAMPLE_BOOTSTRAP, audit_entry
from tests.server import running_server


def test_serve_answers_and_seals_in_the_background(tmp_path: Path, fresh_database_url: str) -> None:
    data_dir = tmp_path / "var"
    assert exchange("init", data_dir=data_dir, database_url=fresh_database_url).returncode == 0
    assert exchange("bootstrap", str(EXAMPLE_BOOTSTRAP), data_dir=data_dir, database_url=fresh_database_url).returncode == 0
    with running_server(data_dir, fresh_database_url, workers=2) as base:
        assert requests.get(f"{base}/readyz", timeout=5).json()["status"] == "ok"
        metadata = requests.get(f"{base}/fhir/metadata", timeout=5)
        assert metadata.headers["Content-Type"] == "application/fhir+json; charset=utf-8"
        assert metadata.json()["implementation"]["url"] == f"{base}/fhir"
        database = Database(fresh_database_url)
        with database.transaction() as session:
            event_id = record(session, audit_entry(1), SystemClock()).event_id
        deadline = time.monotonic() + 5
        sequence = None
        while sequence is None and time.monotonic() < deadline:
            time.sleep(0.2)
            with database.transaction() as session:
                sequence = session.scalar(select(AuditRecord.sequence).where(AuditRecord.event_id == event_id))
        database.dispose()
        assert sequence == 2  # the bootstrap's record is 1
