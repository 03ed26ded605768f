"""`exchange serve` runs the real service under gunicorn with several workers, and each
worker's background sealer seals audit records within seconds."""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest
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
    assert (
        exchange(
            "bootstrap", str(EXAMPLE_BOOTSTRAP), data_dir=data_dir, database_url=fresh_database_url
        ).returncode
        == 0
    )
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
                sequence = session.scalar(
                    select(AuditRecord.sequence).where(AuditRecord.event_id == event_id)
                )
        database.dispose()
        assert sequence == 2  # the bootstrap's record is 1


def test_demo_token_command_works_against_the_served_api(tmp_path: Path) -> None:
    """What the demo prints is what works: `exchange token ... --print-token`, then a FHIR call."""
    data_dir = tmp_path / "var"
    demo = exchange("demo", data_dir=data_dir)
    assert demo.returncode == 0, demo.stderr
    assert "exchange token la01-case-system --key" in demo.stdout
    database_url = f"sqlite:///{data_dir / 'exchange.db'}"
    with running_server(data_dir, database_url, workers=1) as base:
        key = data_dir / "demo" / "la01-case-system.private.jwk.json"
        got = exchange(
            "token",
            "la01-case-system",
            "--key",
            str(key),
            "--print-token",
            data_dir=data_dir,
            EXCHANGE_PUBLIC_BASE_URL=base,
        )
        assert got.returncode == 0, got.stderr
        token = got.stdout.strip()
        response = requests.get(
            f"{base}/fhir/Organization", headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert response.status_code == 200
        assert response.json()["total"] == 4
        refused = exchange(
            "token",
            "la01-case-system",
            "--key",
            str(data_dir / "demo" / "prv01-epr.private.jwk.json"),
            data_dir=data_dir,
            EXCHANGE_PUBLIC_BASE_URL=base,
        )
        assert refused.returncode == 1
        assert "invalid_client" in refused.stderr


#: A request's life in miniature: six 1 MiB pieces live at once, then freed, fifty times;
#: prints the page faults of a second such run (the first may fault its pages in).
_CHURN = """
import os, resource, sys
if sys.argv[1] == "steady":
    from exchange.server import steady_heap
    assert steady_heap()
def churn():
    for _ in range(50):
        held = [os.urandom(1 << 20) for _ in range(6)]
        del held
        spare = bytes(3 << 20)
        del spare
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_server_reuses_freed_document_buffers_instead_of_faulting_in_new_pages() -> None:
    def faults(mode: str) -> int:
        run = [sys.executable, "-c", _CHURN, mode]
        return int(subprocess.run(run, check=True, capture_output=True, text=True).stdout)

    # glibc's defaults hand each round's buffers back to the kernel and fault them in
    # again (what a streamed document's pieces cost the server: profiles/documents.md).
    assert faults("default") > 10_000
    assert faults("steady") < 1_000
