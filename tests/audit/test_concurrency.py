"""8 processes append concurrently while two of them also run the sealer: the chain is
gap-free, holds every record exactly once, and verifies (`quality.md`, Concurrency)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from exchange.audit.chain import verify_chain
from exchange.audit.models import AuditRecord
from exchange.audit.sealer import seal_all
from exchange.db import Database

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 8
PER_PROCESS = 60


def test_eight_processes_append_into_one_gap_free_chain(fresh_database_url: str) -> None:
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.audit.appender",
                fresh_database_url,
                str(worker),
                str(PER_PROCESS),
                "sealer" if worker < 2 else "plain",
            ],
            cwd=ROOT,
        )
        for worker in range(PROCESSES)
    ]
    assert [worker.wait(timeout=300) for worker in workers] == [0] * PROCESSES
    database = Database(fresh_database_url)
    seal_all(database)
    with database.transaction() as session:
        sequences = session.scalars(
            select(AuditRecord.sequence).order_by(AuditRecord.sequence)
        ).all()
        distinct_requests = session.scalar(
            select(func.count(func.distinct(AuditRecord.request_id)))
        )
        result = verify_chain(session)
    database.dispose()
    assert sequences == list(range(1, PROCESSES * PER_PROCESS + 1))
    assert distinct_requests == PROCESSES * PER_PROCESS
    assert result.ok, result.problem
    assert result.checked == PROCESSES * PER_PROCESS
